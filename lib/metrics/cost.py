"""Cost: spend over time by any dimension, unit costs, token mix, cache savings, top spenders,
month to date against budgets, and what-if re-pricing on another model.

Units: US dollars (``*_usd``), token counts (``*_tokens``). ``cost_usd`` is the cost engine's
(lib.pricing) per-request cost; unpriced requests (null cost) are counted in ``unpriced_requests``
and never as $0 in a unit cost: cost per request divides by *priced* requests.
"""

from __future__ import annotations

import calendar
import math
import threading
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import polars as pl

from lib import pricing
from lib.filters import Filters
from lib.metrics.buckets import MIN_REQUESTS_FOR_RATE, bucket_seconds, bucket_sql, grid_sql
from lib.metrics.dims import NONE_LABEL, OTHER_LABEL, dimension_sql
from lib.schema import sql_literal
from lib.store.engine import Engine

# Models offered as what-if targets (those with a price in genai-prices are kept); models present
# in the store are offered too.
WHATIF_MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"), ("openai", "gpt-4.1-nano"), ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-20250514"), ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-opus-4-20250514"), ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-pro"), ("google", "gemini-2.0-flash"),
    # priced by the time of day: the what-if prices each call at its own hour
    ("deepseek", "deepseek-v4-pro"), ("deepseek", "deepseek-v4-flash"),
]
TOKEN_KINDS = [("uncached_input", "Uncached input"), ("cached_input", "Cached input"),
               ("cache_write", "Cache write"), ("cache_write_1h", "Cache write (1 h)"),
               ("output", "Output (visible)"), ("reasoning", "Reasoning")]


def totals(engine: Engine, filters: Filters) -> dict:
    """``requests, priced_requests, unpriced_requests, cost_usd, cost_per_request_usd,
    cost_per_1k_requests_usd`` for the window (unit costs over priced requests; None if none).
    ``cost_usd`` is the priced requests' spend: None when there are requests but none has a
    price (unknown, not $0), 0 when there is no request."""
    where, params = filters.where("requests")
    row = engine.query(
        f"SELECT count(*) AS requests, count(cost_usd) AS priced_requests, "
        f"count(*) - count(cost_usd) AS unpriced_requests, "
        f"CASE WHEN count(cost_usd) > 0 OR count(*) = 0 THEN coalesce(sum(cost_usd), 0) END "
        f"AS cost_usd FROM requests WHERE {where}", params).row(0, named=True)
    priced = row["priced_requests"]
    per = row["cost_usd"] / priced if priced else None
    return {**row, "cost_per_request_usd": per,
            "cost_per_1k_requests_usd": None if per is None else per * 1000}


def spend_over_time(engine: Engine, filters: Filters, by: str = "model", top: int = 8,
                    seconds: int | None = None) -> pl.DataFrame:
    """Long frame ``bucket, group, cost_usd, requests, unpriced_requests``: spend per time bucket
    (UTC start) and per value of ``by``; the ``top`` values by spend in the window are kept, the
    rest is ``(other)``, null is ``(none)``. Every (bucket, group) pair is present: cost 0 where
    there was no request, null where there were requests but none had a price (unknown, not
    $0)."""
    seconds = seconds or bucket_seconds(filters.duration)
    clock = filters.bucket_clock(seconds)
    expr = dimension_sql(by)
    where, params = filters.where("requests")
    params.update(bstart=filters.start, bend=filters.end)
    # One scan: aggregate per (bucket, value) first, then pick the top values from that.
    return engine.query(
        f"""
        WITH agg0 AS (SELECT {bucket_sql(clock)} AS bucket, {expr} AS dim,
                             sum(cost_usd) AS cost_usd, count(*) AS requests,
                             count(*) - count(cost_usd) AS unpriced
                      FROM requests WHERE {where} GROUP BY ALL),
        top AS (SELECT dim FROM agg0 WHERE dim IS NOT NULL GROUP BY dim
                ORDER BY sum(cost_usd) DESC NULLS LAST, dim LIMIT {int(top)}),
        agg AS (SELECT bucket, CASE WHEN dim IS NULL THEN '{NONE_LABEL}'
                                    WHEN dim IN (SELECT dim FROM top) THEN dim
                                    ELSE '{OTHER_LABEL}' END AS "group",
                       sum(cost_usd) AS cost_usd, sum(requests)::BIGINT AS requests,
                       sum(unpriced)::BIGINT AS unpriced
                FROM agg0 GROUP BY ALL),
        grid AS ({grid_sql(clock)}),
        groups AS (SELECT DISTINCT "group" FROM agg)
        SELECT grid.bucket, groups."group",
               CASE WHEN agg.requests IS NULL THEN 0 ELSE agg.cost_usd END AS cost_usd,
               coalesce(agg.requests, 0) AS requests,
               coalesce(agg.unpriced, 0) AS unpriced_requests
        FROM grid CROSS JOIN groups LEFT JOIN agg USING (bucket, "group")
        ORDER BY grid.bucket, groups."group"
        """, params)


RANKS = ("spend", "per_request")


def breakdown(engine: Engine, filters: Filters, by: str = "customer", top: int | None = 10,
              rank: str = "spend") -> pl.DataFrame:
    """``group, requests, unpriced_requests, cost_usd, share, cost_per_request_usd`` per value
    of ``by`` (``unpriced_requests``: those without a cost, which ``cost_usd`` leaves out),
    ranked by spend, or with ``rank="per_request"`` by USD per priced request (groups of fewer than
    MIN_REQUESTS_FOR_RATE priced requests after the others: one $0.05 call is no customer's
    typical cost); with ``top``, the rest is summed into one ``(other)`` row (last). ``share`` is
    of the window's total spend. A group none of whose requests has a price has a null cost (not
    $0), and comes after the priced ones."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, not {rank!r}")
    expr = dimension_sql(by)
    where, params = filters.where("requests")
    order = ("cost_usd DESC NULLS LAST" if rank == "spend" else
             f"count(cost_usd) >= {MIN_REQUESTS_FOR_RATE} DESC, "
             "sum(cost_usd) / nullif(count(cost_usd), 0) DESC NULLS LAST")
    frame = engine.query(
        f"SELECT coalesce({expr}, '{NONE_LABEL}') AS \"group\", count(*) AS requests, "
        f"sum(cost_usd) AS cost_usd, count(cost_usd) AS priced "
        f"FROM requests WHERE {where} GROUP BY 1 ORDER BY {order}, "
        f"requests DESC, \"group\"", params)
    if top is not None and frame.height > top:
        rest = frame.slice(top)
        frame = pl.concat([frame.head(top), pl.DataFrame({
            "group": [OTHER_LABEL], "requests": [rest["requests"].sum()],
            "cost_usd": [rest["cost_usd"].sum() if rest["priced"].sum() else None],
            "priced": [rest["priced"].sum()]}, schema=frame.schema)])
    total = frame["cost_usd"].sum()
    return frame.with_columns(
        (pl.col("cost_usd") / total if total else pl.lit(None, pl.Float64)).alias("share"),
        (pl.col("cost_usd") / pl.when(pl.col("priced") > 0).then(pl.col("priced")))
        .alias("cost_per_request_usd"),
        (pl.col("requests") - pl.col("priced")).alias("unpriced_requests"),
    ).select("group", "requests", "unpriced_requests", "cost_usd", "share",
             "cost_per_request_usd")


_PER_MODEL_DAY: dict[tuple, pl.DataFrame] = {}
# (the server's sessions run the Cost page in threads of their own, at once)
_PER_MODEL_DAY_LOCK = threading.Lock()


def _tokens_by_model_day(engine: Engine, filters: Filters) -> pl.DataFrame:
    """Requests, cost and tokens of each kind per (provider, model, price period ``at``, price
    context): the one scan behind the
    token mix and the what-if (memoized per store version and filters, 32 entries)."""
    if engine.auto_refresh:  # (the key's version is then that of the views queried)
        # Not the app's engine: it is refreshed once at the top of a page run, which must see
        # one version; a refresh here moved the Cost page to a batch that landed mid-run, below
        # its tiles (and every other session's page with it).
        engine.refresh()
    key = (id(engine), engine.version, repr(filters))
    # Under a lock: two sessions at once evicted one entry twice, or one the other had just
    # stored, and the Cost page failed with a KeyError. The query runs outside it.
    with _PER_MODEL_DAY_LOCK:
        found = _PER_MODEL_DAY.get(key)
    if found is None:
        found = _tokens_query(engine, filters)
        with _PER_MODEL_DAY_LOCK:
            if key not in _PER_MODEL_DAY and len(_PER_MODEL_DAY) >= 32:
                _PER_MODEL_DAY.pop(next(iter(_PER_MODEL_DAY)))
            _PER_MODEL_DAY[key] = found
    return found


# Each kind of token counted once (design §3: input holds cached, output holds reasoning).
_TOKEN_SUMS = [
    ("uncached_input", "greatest(coalesce(input_tokens, 0) - coalesce(cached_input_tokens, 0) "
                       "- coalesce(cache_write_tokens, 0), 0)"),
    ("cached_input", "cached_input_tokens"),
    # writes to a five-minute cache, and to a one-hour one (Anthropic's, priced higher)
    ("cache_write", "coalesce(cache_write_tokens, 0) - coalesce(cache_write_1h_tokens, 0)"),
    ("cache_write_1h", "cache_write_1h_tokens"),
    # (not tokens: billed per search; the what-if prices them, the token mix does not list them)
    ("web_searches", "web_searches"),
    ("output", "coalesce(output_tokens, 0) - coalesce(reasoning_tokens, 0)"),
    ("reasoning", "reasoning_tokens")]


def _tokens_query(engine: Engine, filters: Filters) -> pl.DataFrame:
    where, params = pricing.billed_where(filters)
    billed = f"NOT coalesce(({pricing.failed_without_usage_sql('')}), false)"
    # The price context (a batch, a service tier: lib.pricing.context_sql) is part of the key,
    # so unit prices are those the rows were priced at.
    return engine.query(
        f"""SELECT provider, model, {pricing.period_sql('ts')} AS price_period,
               {pricing.context_sql('CAST(attributes AS VARCHAR)')} AS price_context,
               count(*) AS requests,
               count(cost_usd) AS priced_requests, coalesce(sum(cost_usd), 0) AS cost_usd,
               -- the calls a fee per call is billed for: not those the provider rejected
               count(*) FILTER (WHERE {billed}) AS billed_requests,
               count(cost_usd) FILTER (WHERE {billed}) AS priced_billed_requests,
               {", ".join(f"coalesce(sum({expr}), 0)::BIGINT AS {name}"
                          for name, expr in _TOKEN_SUMS)},
               -- the same of the priced requests alone: the what-if compares like with like
               {", ".join(f"coalesce(sum({expr}) FILTER (WHERE cost_usd IS NOT NULL), 0)::BIGINT"
                          f" AS priced_{name}" for name, expr in _TOKEN_SUMS)}
            FROM requests WHERE {where} GROUP BY ALL ORDER BY ALL""", params)


def _unit(provider, model, day: date | datetime, context: str = "") -> dict | None:
    """Unit prices (USD per token of each kind) at ``day`` (a price period's start, or a date:
    its noon UTC), memoized per (provider, model, period, price context key) and the price
    overrides file's modification time, so a page does not re-read prices.yaml and re-ask genai-
    prices for every model and day on every run."""
    if not model:
        return None
    return _unit_cached(provider, model, day, context, pricing.overrides_stamp())


@lru_cache(maxsize=20_000)
def _unit_cached(provider, model, day: date | datetime, context: str, prices: tuple
                 ) -> dict | None:
    return pricing.unit_prices(provider, model, day, context=context)


def token_mix(engine: Engine, filters: Filters) -> pl.DataFrame:
    """``kind, label, tokens, cost_usd, token_share, cost_share`` for uncached input, cached
    input, cache write, visible output and reasoning tokens. Costs use each model's unit prices
    in the request's price period (reasoning at the output price), a request past a price tier
    at the tier's; unpriced models add tokens but no cost; with no priced model in the
    window, costs are null."""
    per = _tokens_by_model_day(engine, filters)
    tokens = {k: 0 for k, _ in TOKEN_KINDS}
    # None while no priced model is in the window: unpriced tokens are unknown, not $0
    costs: dict = {k: None for k, _ in TOKEN_KINDS}
    for row in per.iter_rows(named=True):
        units = _unit(row["provider"], row["model"], row["price_period"], row["price_context"])
        for k, _ in TOKEN_KINDS:
            tokens[k] += int(row[k])
            if units:
                costs[k] = (costs[k] or 0.0) + row[k] * units[_MIX_PRICE[k]]
    # requests past their model's first price tier (prompts over 200k tokens on
    # claude-sonnet-4-5) pay the tier's prices for every kind: their difference
    for kind, extra in _mix_past_tier(engine, filters, per).items():
        costs[kind] = (costs[kind] or 0.0) + extra
    total_t, total_c = sum(tokens.values()), sum(c or 0.0 for c in costs.values())
    return pl.DataFrame({
        "kind": [k for k, _ in TOKEN_KINDS], "label": [lab for _, lab in TOKEN_KINDS],
        "tokens": [tokens[k] for k, _ in TOKEN_KINDS],
        "cost_usd": [costs[k] for k, _ in TOKEN_KINDS],
        "token_share": [tokens[k] / total_t if total_t else None for k, _ in TOKEN_KINDS],
        "cost_share": [(costs[k] or 0.0) / total_c if total_c and costs[k] is not None
                       else None for k, _ in TOKEN_KINDS],
    }, schema={"kind": pl.String, "label": pl.String, "tokens": pl.Int64,
               "cost_usd": pl.Float64, "token_share": pl.Float64, "cost_share": pl.Float64})


_MIX_PRICE = {"uncached_input": "input", "cached_input": "cached_input",
              "cache_write": "cache_write", "cache_write_1h": "cache_write_1h",
              "output": "output", "reasoning": "output"}


def _past_tier_sums(engine: Engine, filters: Filters, starts: dict) -> pl.DataFrame:
    """Per (provider, model, at, ctx, i) of the requests matching ``filters`` with at least the
    input tokens ``starts`` gives their (provider, model, price period, context key), or, keyed
    (price period, context key) alone, their period and context whatever their model (a
    what-if's target is the same for all): the tokens of each kind of :data:`_MIX_PRICE` summed
    over them, and the same over the priced ones (``priced_`` + kind). ``i``: their input
    tokens, on which the tier's unit prices depend; summed in SQL, so Python prices each
    distinct ``i`` at most once (:func:`_tier_units`)."""
    where, params = pricing.billed_where(filters)
    at_sql = pricing.period_sql("r.ts")
    ctx_sql = pricing.context_sql("CAST(r.attributes AS VARCHAR)")
    by_model = all(len(k) == 4 for k in starts)

    def lit(v):
        return "NULL" if v is None else sql_literal(v)

    values = ", ".join(
        f"({lit(k[0]) if by_model else 'NULL'}, {lit(k[1]) if by_model else 'NULL'}, "
        f"TIMESTAMP '{k[-2].isoformat(sep=' ')}', {sql_literal(k[-1])}, {int(start)})"
        for k, start in starts.items())
    model_on = ("t.tp IS NOT DISTINCT FROM r.provider AND t.tm IS NOT DISTINCT FROM r.model AND "
                if by_model else "")
    kinds = {"uncached_input": "greatest(i - c - w, 0)", "cached_input": "c",
             "cache_write": "w - h", "cache_write_1h": "h", "output": "o - rs",
             "reasoning": "rs"}
    sums = ", ".join(f"CAST(sum({e}) AS DOUBLE) AS {k}, "
                     f"CAST(sum({e}) FILTER (WHERE priced) AS DOUBLE) AS priced_{k}"
                     for k, e in kinds.items())
    return engine.query(
        f'SELECT provider, model, "at", ctx, i, {sums} FROM ('
        f'SELECT r.provider, r.model, {at_sql} AS "at", {ctx_sql} AS ctx, '
        "coalesce(r.input_tokens, 0) AS i, coalesce(r.cached_input_tokens, 0) AS c, "
        "coalesce(r.cache_write_tokens, 0) AS w, coalesce(r.cache_write_1h_tokens, 0) AS h, "
        "coalesce(r.output_tokens, 0) AS o, coalesce(r.reasoning_tokens, 0) AS rs, "
        "r.cost_usd IS NOT NULL AS priced "
        f"FROM (SELECT * FROM requests WHERE {where}) r JOIN (VALUES {values}) "
        f"t(tp, tm, td, tc, lb) ON {model_on}t.td = {at_sql} AND t.tc = {ctx_sql} "
        "AND coalesce(r.input_tokens, 0) >= t.lb) GROUP BY ALL", params)


def _same_units(a: dict | None, b: dict | None) -> bool:
    # (unit prices derived at two prompt sizes of one tier differ in their last bits)
    if a is None or b is None:
        return a is b
    return all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-15) for k in a)


def _tier_units(provider, model, at, ctx, inputs: list[int], overrides: dict
                ) -> dict[int, dict | None]:
    """:func:`lib.pricing.unit_prices_at` of each of ``inputs`` (distinct input token counts,
    sorted). The prices are constant from one tier's start to the next, so only the ends of a
    run and the halves of a run whose ends differ are asked: a few genai-prices calls per
    tier, not six per request (20,000 long prompts took 7.5 s on the Cost page)."""
    out: dict[int, dict | None] = {}

    def ask(k: int) -> dict | None:
        if inputs[k] not in out:
            out[inputs[k]] = pricing.unit_prices_at(provider, model, at, inputs[k], overrides,
                                                    ctx)
        return out[inputs[k]]

    def fill(lo: int, hi: int) -> None:
        if _same_units(ask(lo), ask(hi)):
            for k in range(lo + 1, hi):
                out[inputs[k]] = out[inputs[lo]]
        elif hi - lo > 1:
            mid = (lo + hi) // 2
            fill(lo, mid)
            fill(mid, hi)

    if inputs:
        fill(0, len(inputs) - 1)
    return out


def _past_tier_extra(sums: pl.DataFrame, units_of, overrides: dict
                     ) -> dict[tuple, dict[str, float]]:
    """Per current (provider, model) of ``sums`` (:func:`_past_tier_sums`), what pricing its
    past-tier tokens at the tier's unit prices adds to pricing them at the base tier's, per
    token kind, over all of them and over the priced ones (``priced_`` + kind).
    ``units_of(provider, model, at, ctx)``: (the provider and model priced, the base tier's
    unit prices) for those rows: their own, or a what-if's target's; ``overrides``: the price
    overrides in effect."""
    out: dict[tuple, dict[str, float]] = {}
    for (p, m, at, ctx), group in sums.group_by(["provider", "model", "at", "ctx"],
                                                 maintain_order=True):
        (tp, tm), base = units_of(p, m, at, ctx)
        if base is None:
            continue
        tiers = _tier_units(tp, tm, at, ctx, sorted(set(group["i"].to_list())), overrides)
        acc = out.setdefault((p, m), {})
        for row in group.iter_rows(named=True):
            tier = tiers.get(row["i"])
            if tier is None:
                continue
            for kind, price in _MIX_PRICE.items():
                delta = tier[price] - base[price]
                for name in (kind, f"priced_{kind}"):
                    acc[name] = acc.get(name, 0.0) + (row[name] or 0) * delta
    return out


def _mix_past_tier(engine: Engine, filters: Filters, per: pl.DataFrame) -> dict[str, float]:
    """What to add to :func:`token_mix`'s base-tier cost of each kind for the requests past
    their model's first price tier: their tokens of each kind at the tier's unit prices minus at
    the base tier's. ``per``: the rows of :func:`_tokens_by_model_day`."""
    overrides = pricing.load_overrides()
    starts = {}
    for p, m, at, ctx in per.select("provider", "model", "price_period", "price_context"
                                    ).unique().iter_rows():
        start = pricing.tier_start(p, m, at, overrides, ctx) if m else None
        if start is not None and math.isfinite(start):
            starts[(p, m, at, ctx)] = start
    if not starts:
        return {}
    extra = dict.fromkeys(_MIX_PRICE, 0.0)
    for by_kind in _past_tier_extra(_past_tier_sums(engine, filters, starts),
                                    lambda p, m, at, ctx: ((p, m), _unit(p, m, at, ctx)),
                                    overrides).values():
        for kind in extra:
            extra[kind] += by_kind.get(kind, 0.0)
    return extra


def cache_savings(engine: Engine, filters: Filters) -> float | None:
    """USD saved by cached input tokens: what they would have cost at the full input price minus
    what they cost (design §5), at each model's prices in the request's period (a request past a
    price tier at the tier's); None when no priced request has cached tokens. Same definition as
    lib.pricing.cache_savings_sql, with the unit prices memoized."""
    per = _tokens_by_model_day(engine, filters).filter(pl.col("cached_input") > 0).select(
        "provider", "model", "price_period", "price_context", "cached_input")
    total, priced = 0.0, False
    for p, m, at, ctx, c in per.iter_rows():
        units = _unit(p, m, at, ctx)
        if units:
            total += c * (units["input"] - units["cached_input"])
            priced = True
    if not priced:
        return None
    # requests past a price tier save at the tier's prices
    where, params = pricing.billed_where(filters)
    return total + pricing.past_tier_savings(
        engine, where, params,
        per.select("provider", "model", "price_period", "price_context").rows())


def what_if(engine: Engine, filters: Filters, provider: str, model: str) -> pl.DataFrame:
    """The selected traffic re-priced on ``provider``/``model``: per current (provider, model),
    ``provider, model, requests, unpriced_requests, cost_usd`` (actual, of the priced requests;
    null for a model without any, whose difference is then null too), ``whatif_cost_usd`` (the
    priced requests' token counts, or all of them for a model without a priced request, at the
    target's prices in each price period, a call past the target's first price tier at the
    tier's) and ``difference_usd`` (what-if − actual, 0 within float noise as in
    :func:`whatif_difference`); rows keep their price context (a batch is priced as a batch on
    the target, where the target has batch prices). Raises LookupError when the target has no
    price."""
    per = _tokens_by_model_day(engine, filters)
    rows: dict[tuple, dict] = {}

    def on_target(row: dict, target: dict, prefix: str = "") -> float:
        return (row[f"{prefix}uncached_input"] * target["input"]
                + row[f"{prefix}cached_input"] * target["cached_input"]
                + row[f"{prefix}cache_write"] * target["cache_write"]
                + row[f"{prefix}cache_write_1h"] * target["cache_write_1h"]
                + row[f"{prefix}web_searches"] * target["web_search"]
                + (row[f"{prefix}output"] + row[f"{prefix}reasoning"]) * target["output"]
                # a fee per call (sonar), not billed for a call the provider rejected
                + row[f"{prefix}billed_requests"] * target["request"])

    for row in per.iter_rows(named=True):
        # in the row's own context (a batch stays a batch on the target model)
        target = _unit(provider, model, row["price_period"], row["price_context"])
        if target is None:
            raise LookupError(f"no price for {provider}/{model} on {row['price_period']:%Y-%m-%d}")
        key = (row["provider"], row["model"])
        acc = rows.setdefault(key, {"provider": key[0], "model": key[1], "requests": 0,
                                    "priced": 0, "cost_usd": 0.0, "whatif_priced": 0.0,
                                    "whatif_all": 0.0})
        acc["requests"] += row["requests"]
        acc["priced"] += row["priced_requests"]
        acc["cost_usd"] += row["cost_usd"]
        acc["whatif_priced"] += on_target(row, target, "priced_")
        acc["whatif_all"] += on_target(row, target)
    # calls past the target's first price tier (a long prompt) at the tier's prices
    for key, (priced_extra, all_extra) in _whatif_past_tier(engine, filters, provider, model,
                                                             per).items():
        rows[key]["whatif_priced"] += priced_extra
        rows[key]["whatif_all"] += all_extra
    frame = pl.DataFrame(list(rows.values()), schema={
        "provider": pl.String, "model": pl.String, "requests": pl.Int64, "priced": pl.Int64,
        "cost_usd": pl.Float64, "whatif_priced": pl.Float64, "whatif_all": pl.Float64})
    # Like with like: the priced requests on the target against what they cost. A model without
    # a priced request has no actual cost to compare with: null, not $0; its what-if is all of
    # its traffic, for reference.
    priced = pl.col("priced") > 0
    frame = frame.select(
        "provider", "model", "requests",
        (pl.col("requests") - pl.col("priced")).alias("unpriced_requests"),
        pl.when(priced).then(pl.col("cost_usd")).alias("cost_usd"),
        pl.when(priced).then(pl.col("whatif_priced")).otherwise(pl.col("whatif_all"))
        .alias("whatif_cost_usd"))
    # float noise is no difference (traffic already on the target), as in whatif_difference:
    # its "$-0.00000000" also set the table's whole column to eight decimals
    diff = pl.col("whatif_cost_usd") - pl.col("cost_usd")
    scale = pl.max_horizontal(pl.col("whatif_cost_usd").abs(), pl.col("cost_usd").abs())
    return frame.with_columns(
        pl.when(diff.abs() <= WHATIF_NOISE * scale).then(0.0).otherwise(diff)
        .alias("difference_usd")
    ).sort("cost_usd", descending=True, nulls_last=True)


def _whatif_past_tier(engine: Engine, filters: Filters, provider: str, model: str,
                      per: pl.DataFrame) -> dict[tuple, tuple[float, float]]:
    """What to add to :func:`what_if`'s base-tier sums on ``provider``/``model`` so that the
    calls with at least as many input tokens as the target's first price tier starts at are
    priced at the tier's (claude-sonnet-4-5's prompts over 200k tokens: its own long-prompt
    traffic showed a 48% saving): per current (provider, model), (for its priced calls, for all
    its calls), their tokens at the tier's unit prices minus at the base tier's. ``per``: the
    rows of :func:`_tokens_by_model_day` (their price periods and contexts)."""
    overrides = pricing.load_overrides()
    starts = {}
    for at, ctx in per.select("price_period", "price_context").unique().iter_rows():
        start = pricing.tier_start(provider, model, at, overrides, ctx)
        if start is not None and math.isfinite(start):
            starts[(at, ctx)] = start
    if not starts:
        return {}
    extra = _past_tier_extra(_past_tier_sums(engine, filters, starts),
                             lambda p, m, at, ctx: ((provider, model),
                                                    _unit(provider, model, at, ctx)),
                             overrides)
    return {key: (sum(v for k, v in by_kind.items() if k.startswith("priced_")),
                  sum(v for k, v in by_kind.items() if not k.startswith("priced_")))
            for key, by_kind in extra.items()}


# A what-if difference smaller than this share of the larger amount is float noise: the same
# costs summed in another order.
WHATIF_NOISE = 1e-9


def whatif_difference(actual: float | None, alternative: float | None) -> float | None:
    """What-if − actual, in USD; 0 when the two differ by less than a billionth of the larger
    (traffic already on the target model, summed in another order: "−$0.000000000000"), None
    when either is unknown."""
    if actual is None or alternative is None:
        return None
    diff = alternative - actual
    return 0.0 if abs(diff) <= WHATIF_NOISE * max(abs(actual), abs(alternative)) else diff


def whatif_targets(engine: Engine, filters: Filters) -> list[tuple[str, str]]:
    """(provider, model) pairs with a price on the window's last day: the curated list plus the
    models used in the window."""
    day = (filters.end - timedelta(microseconds=1)).date()
    present = (_tokens_by_model_day(engine, filters).filter(pl.col("model").is_not_null())
               .select("provider", "model").unique().sort("provider", "model").rows())
    out = []
    for p, m in list(dict.fromkeys([*WHATIF_MODELS, *present])):
        if _unit(p, m, day) is not None:
            out.append((p, m))
    return out


def budget_month(end: datetime) -> datetime:
    """The start (UTC) of the calendar month holding the last instant before ``end``: a window
    is half-open, so one ending on April 1st 00:00 is March's."""
    last = end.astimezone(UTC) - timedelta(microseconds=1)
    return datetime(last.year, last.month, 1, tzinfo=UTC)


def budget_instant(end: datetime, now: datetime | None = None) -> datetime:
    """The instant budgets are evaluated at for a window ending at ``end``: its end, or now if
    that is earlier. A window can end in the future (custom dates that include today, a whole
    month): counted as elapsed, hours that have not happened diluted the run rate, and a month
    on course to be over its budget was projected on track (found in review)."""
    return min(end, now or datetime.now(UTC))


# The least time into the month before a budget's month is projected from its run rate.
MIN_ELAPSED_FOR_PROJECTION = timedelta(days=1)


def month_to_date(engine: Engine, filters: Filters | None, budgets: list,
                  at: datetime | None = None) -> pl.DataFrame:
    """Per budget: ``budget, scope, monthly_usd, mtd_usd, projected_usd, projected_share, status,
    unpriced_requests`` for the UTC calendar month holding the last instant before ``at``
    (default: :func:`budget_instant` of the end of ``filters``' window, which is not in it: a
    window of March ends on April 1st 00:00 and reports March; only its time is used). Month to
    date is spend in ``[month start, at)``; the projection is the month to date plus its linear run
    rate over the rest of the month: ``mtd × (month end − since) / (at − since)``, ``since`` being
    the month's start or, when the store's first request comes later (a store set up mid-month),
    that request's hour (also a column, ``since``), from a day of data on (None before).
    Status: ``over``
    (projection, or before it the month to date, above the budget), ``unpriced`` (not over on
    the priced requests, but some in scope have no price: their spend is unknown, never $0),
    ``warn`` (above its ``warn_at`` share, default 0.8), ``ok``. Budgets are evaluated on their
    own scope, not on the sidebar's filters."""
    at = (at or budget_instant(filters.end)).astimezone(UTC)
    month_start = budget_month(at)
    days = calendar.monthrange(month_start.year, month_start.month)[1]
    month_end = month_start + timedelta(days=days)
    until = at if at > month_start else month_start + timedelta(microseconds=1)
    # Spend before the store's first request was not logged: counted as $0 over the days since
    # the 1st, it diluted the run rate (a store started on the 20th projected $69 for a month
    # heading to $81, found in review). The hour, not the instant: a store whose first call came
    # at 00:00:30 has data from the month's start.
    first = engine.query("SELECT min(ts) AS first FROM requests")["first"][0]
    since = month_start if first is None or first <= month_start else min(
        first.astimezone(UTC).replace(minute=0, second=0, microsecond=0), at)
    elapsed = (at - since).total_seconds()
    # Every budget's month to date in one scan of the month (a FILTER each), not one per budget;
    # each scope tested once a row (as b0, b1…), not once per aggregate: its two FILTERs each
    # evaluated it again (an attr.plan scope parses every row's attributes), 0.84 s → 1.5 s at
    # 10M requests once the unpriced count joined the sum
    scopes, sums, params = [], [], {}
    for i, b in enumerate(budgets):
        where, p = Filters.between(month_start, until, **b.where_values()).where(
            "requests", prefix=f"b{i}")
        scopes.append(f"coalesce({where}, false) AS b{i}")
        sums.append(f"coalesce(sum(cost_usd) FILTER (WHERE b{i}), 0), "
                    f"count(*) FILTER (WHERE b{i} AND cost_usd IS NULL)")
        params.update(p)
    month, p = Filters.between(month_start, until).where("requests", prefix="m")
    found = engine.query(f"SELECT {', '.join(sums)} FROM (SELECT cost_usd, {', '.join(scopes)} "
                         f"FROM requests WHERE {month})",
                         {**params, **p}).row(0) if budgets else ()
    rows = []
    for b, mtd, unpriced in zip(budgets, found[0::2], found[1::2], strict=True):
        mtd = float(mtd or 0.0)
        # A run rate needs a day behind it: at 00:01 on the 1st, a minute's spend times 43,000
        # would flag any budget. Before that, status goes by the spend so far.
        projected = mtd * (month_end - since).total_seconds() / elapsed \
            if elapsed >= MIN_ELAPSED_FOR_PROJECTION.total_seconds() else None
        share = (projected if projected is not None else mtd) / b.monthly_usd \
            if b.monthly_usd > 0 else float("inf")
        status = "over" if share > 1 else "unpriced" if unpriced else \
            "warn" if share >= b.warn_at else "ok"
        share = share if projected is not None else None
        rows.append({"budget": b.name, "scope": b.describe(), "monthly_usd": b.monthly_usd,
                     "mtd_usd": mtd, "projected_usd": projected, "projected_share": share,
                     "status": status, "unpriced_requests": int(unpriced), "since": since})
    return pl.DataFrame(rows, schema={
        "budget": pl.String, "scope": pl.String, "monthly_usd": pl.Float64, "mtd_usd": pl.Float64,
        "projected_usd": pl.Float64, "projected_share": pl.Float64, "status": pl.String,
        "unpriced_requests": pl.Int64, "since": pl.Datetime("us", "UTC")})
