"""Cost metrics on tiny exact datasets: unit costs, stacking with "(other)", token mix, what-if,
budgets and the month-to-date projection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lib import pricing
from lib.budgets import Budget, load_budgets
from lib.filters import Filters
from lib.metrics import cost
from tests.conftest import T0, make_request, requests_table


@pytest.fixture
def priced(lake, engine):
    rows = [
        make_request(0, customer_id="c1", feature="chat", cost_usd=1.0, input_tokens=1000,
                     cached_input_tokens=400, output_tokens=300, reasoning_tokens=100,
                     attributes=json.dumps({"team": "red"})),
        make_request(1, customer_id="c1", feature="chat", cost_usd=2.0,
                     attributes=json.dumps({"team": "red"})),
        make_request(2, customer_id="c2", feature="search", cost_usd=3.0,
                     attributes=json.dumps({"team": "blue"})),
        make_request(3, customer_id="c3", feature="search", cost_usd=None, model="my-ft"),
        make_request(65, customer_id="c4", feature="extract", cost_usd=4.0),  # next hour
    ]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    return engine, Filters.between(T0, T0 + timedelta(hours=2)), rows


def test_totals_divide_by_priced_requests(priced):
    engine, f, _ = priced
    t = cost.totals(engine, f)
    assert (t["requests"], t["priced_requests"], t["unpriced_requests"]) == (5, 4, 1)
    assert t["cost_usd"] == pytest.approx(10.0)
    assert t["cost_per_request_usd"] == pytest.approx(2.5)
    assert t["cost_per_1k_requests_usd"] == pytest.approx(2500.0)


def test_spend_over_time_top_and_other(priced):
    engine, f, _ = priced
    s = cost.spend_over_time(engine, f, by="customer", top=2, seconds=3600)
    got = {(b.hour, g): c for b, g, c in s.select("bucket", "group", "cost_usd").iter_rows()}
    # top 2 by spend: c4 ($4), c1 ($3); c2 and c3 fold into "(other)"; every pair is present
    assert got == {(12, "c1"): 3.0, (12, "c4"): 0.0, (12, "(other)"): 3.0,
                   (13, "c1"): 0.0, (13, "c4"): 4.0, (13, "(other)"): 0.0}
    by_attr = cost.spend_over_time(engine, f, by="attr.team", top=5, seconds=7200)
    assert dict(zip(by_attr["group"], by_attr["cost_usd"])) == {"red": 3.0, "blue": 3.0,
                                                                "(none)": 4.0}


def test_breakdown_shares(priced):
    engine, f, _ = priced
    b = cost.breakdown(engine, f, "feature", top=2)
    assert b["group"].to_list() == ["extract", "chat", "(other)"]
    assert b["cost_usd"].to_list() == [4.0, 3.0, 3.0]
    assert b["share"].to_list() == pytest.approx([0.4, 0.3, 0.3])
    # other = search: $3 over 1 priced request (the unpriced one does not count)
    assert b["cost_per_request_usd"].to_list() == pytest.approx([4.0, 1.5, 3.0])
    assert cost.breakdown(engine, f, "feature", top=None).height == 3


def test_breakdown_says_how_many_requests_its_spend_leaves_out(priced):
    # search's $3 is one of its two requests (the other, my-ft, has no price): a partial sum
    engine, f, _ = priced
    b = cost.breakdown(engine, f, "feature", top=None)
    assert dict(zip(b["group"], b["unpriced_requests"], strict=True)) == {
        "extract": 0, "chat": 0, "search": 1}
    # folded into "(other)", the unpriced request is still counted
    assert cost.breakdown(engine, f, "feature", top=2)["unpriced_requests"].to_list() == [0, 0, 1]
    by_model = cost.breakdown(engine, f, "model", top=None)
    assert by_model.filter(pl.col("group") == "my-ft").row(0, named=True)["unpriced_requests"] == 1


def test_breakdown_ranked_per_request_puts_groups_of_few_requests_last(lake, engine):
    # big: 30 requests of $1 ($30); pricey: 20 of $2 ($40, $2 each); lone: 1 of $5;
    # cheap: 25 of $0.10 ($2.50)
    plan = [("big", 30, 1.0), ("pricey", 20, 2.0), ("lone", 1, 5.0), ("cheap", 25, 0.1)]
    rows, i = [], 0
    for customer, n, usd in plan:
        for _ in range(n):
            rows.append(make_request(i % 60, customer_id=customer, cost_usd=usd,
                                     request_id=f"r{i}"))
            i += 1
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    assert cost.breakdown(engine, f, "customer", top=None)["group"].to_list() == [
        "pricey", "big", "lone", "cheap"]
    b = cost.breakdown(engine, f, "customer", top=2, rank="per_request")
    # lone's $5 is one call: after the groups of at least 20 priced requests
    assert b["group"].to_list() == ["pricey", "big", "(other)"]
    assert b["cost_per_request_usd"].to_list() == pytest.approx([2.0, 1.0, 7.5 / 26])
    every = cost.breakdown(engine, f, "customer", top=None, rank="per_request")
    assert every["group"].to_list() == ["pricey", "big", "cheap", "lone"]
    with pytest.raises(ValueError, match="rank must be one of"):
        cost.breakdown(engine, f, "customer", rank="cheapest")


def test_a_value_logged_as_other_is_not_the_rest(lake, engine):
    # a customer named "other" spends the most: its own row and series, not merged into the
    # catch-all of the customers past the top ones
    rows = [make_request(i, customer_id=c, cost_usd=v)
            for i, (c, v) in enumerate([("other", 5.0), ("c1", 1.0), ("c2", 0.5), ("c3", 0.25)])]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=1))
    b = cost.breakdown(engine, f, "customer", top=2)
    assert list(zip(b["group"], b["cost_usd"], strict=True)) == [
        ("other", 5.0), ("c1", 1.0), ("(other)", 0.75)]
    s = cost.spend_over_time(engine, f, by="customer", top=2, seconds=3600)
    assert dict(zip(s["group"], s["cost_usd"], strict=True)) == {
        "other": 5.0, "c1": 1.0, "(other)": 0.75}


def test_a_group_without_a_priced_request_has_no_cost_rather_than_zero(priced):
    engine, f, _ = priced
    b = cost.breakdown(engine, f, "customer", top=None)
    # c3's only request is of a model without a price: unknown, listed after the priced ones
    assert b["group"].to_list() == ["c4", "c1", "c2", "c3"]
    assert b["cost_usd"].to_list() == [4.0, 3.0, 3.0, None]
    assert b.filter(pl.col("group") == "c3")["share"].to_list() == [None]
    # folded into "(other)" with a priced group, the unknown adds nothing; alone, it is null
    assert cost.breakdown(engine, f, "customer", top=2)["cost_usd"].to_list() == [4.0, 3.0, 3.0]
    only = Filters.between(T0, T0 + timedelta(hours=2), customer_id=["c3", "c2"])
    assert cost.breakdown(engine, only, "model", top=1)["cost_usd"].to_list() == [3.0, None]


def test_what_if_of_a_model_without_a_price_has_no_actual_cost_to_compare(priced):
    engine, f, _ = priced
    wi = cost.what_if(engine, f, "openai", "gpt-4o-mini")
    ft = wi.filter(pl.col("model") == "my-ft").row(0, named=True)
    u = pricing.unit_prices("openai", "gpt-4o-mini", T0.date())
    # make_request's 1000 input / 500 output tokens, re-priced; no actual, so no difference
    assert ft["cost_usd"] is None and ft["difference_usd"] is None
    assert ft["whatif_cost_usd"] == pytest.approx(1000 * u["input"] + 500 * u["output"])
    assert ft["unpriced_requests"] == 1
    assert wi["model"].to_list()[-1] == "my-ft"  # after the priced rows


def test_what_if_compares_a_model_s_priced_requests_only(lake, engine):
    # Two gpt-4o calls with the same tokens, one without a cost (as if its price were unknown
    # that day): re-priced on gpt-4o itself, the difference is nothing, not a second call's cost.
    u = pricing.unit_prices("openai", "gpt-4o", T0.date())
    one = 1000 * u["input"] + 500 * u["output"]
    lake.append({"requests": requests_table([
        make_request(0, cost_usd=one), make_request(1, cost_usd=None)])}, source="t")
    engine.refresh(force=True)
    wi = cost.what_if(engine, Filters.between(T0, T0 + timedelta(hours=1)), "openai", "gpt-4o")
    row = wi.row(0, named=True)
    assert (row["requests"], row["unpriced_requests"]) == (2, 1)
    assert row["cost_usd"] == pytest.approx(one)
    assert row["whatif_cost_usd"] == pytest.approx(one)
    assert row["difference_usd"] == pytest.approx(0.0, abs=1e-12)


def test_token_mix_by_kind(priced):
    engine, f, rows = priced
    mix = {r["kind"]: r for r in cost.token_mix(engine, f).iter_rows(named=True)}
    # gpt-4o rows: 4 priced + the unpriced "my-ft" row contributes tokens but no cost
    assert mix["cached_input"]["tokens"] == 400
    assert mix["uncached_input"]["tokens"] == 600 + 1000 * 4
    assert mix["reasoning"]["tokens"] == 100
    assert mix["output"]["tokens"] == 200 + 500 * 4
    u = pricing.unit_prices("openai", "gpt-4o", T0.date())
    gpt_uncached, gpt_out = 600 + 1000 * 3, 200 + 500 * 3
    assert mix["uncached_input"]["cost_usd"] == pytest.approx(gpt_uncached * u["input"])
    assert mix["cached_input"]["cost_usd"] == pytest.approx(400 * u["cached_input"])
    assert mix["output"]["cost_usd"] == pytest.approx(gpt_out * u["output"])
    assert mix["reasoning"]["cost_usd"] == pytest.approx(100 * u["output"])
    assert sum(r["token_share"] for r in mix.values()) == pytest.approx(1.0)


def test_what_if_reprices_the_same_tokens(priced):
    engine, f, _ = priced
    wi = cost.what_if(engine, f, "openai", "gpt-4o-mini")
    u = pricing.unit_prices("openai", "gpt-4o-mini", T0.date())
    row = wi.filter(wi["model"] == "gpt-4o").row(0, named=True)
    expected = (600 + 3000) * u["input"] + 400 * u["cached_input"] + (300 + 1500) * u["output"]
    assert row["whatif_cost_usd"] == pytest.approx(expected)
    assert row["cost_usd"] == pytest.approx(10.0)
    assert row["difference_usd"] == pytest.approx(expected - 10.0)
    with pytest.raises(LookupError):
        cost.what_if(engine, f, "nobody", "no-such-model")


def test_what_if_targets_are_the_priced_curated_models_and_the_window_s(priced):
    engine, f, _ = priced
    targets = cost.whatif_targets(engine, f)
    # the window's own priced model, and curated ones, deepseek's (priced by the time of day)
    # among them; a model without a price is no target
    assert {("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("deepseek", "deepseek-v4-pro"),
            ("deepseek", "deepseek-v4-flash")} <= set(targets)
    assert ("openai", "my-ft") not in targets
    assert len(targets) == len(set(targets))


def test_budgets_file_and_projection(tmp_path, lake, engine):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - name: all\n    monthly_usd: 100\n"
                    "  - name: chat\n    monthly_usd: 10\n    warn_at: 0.5\n"
                    "    where: {feature: [chat], attr.plan: pro}\n")
    budgets = load_budgets(path)
    assert budgets[1] == Budget("chat", 10.0, (("attr.plan", ("pro",)), ("feature", ("chat",))),
                                0.5)
    assert load_budgets(tmp_path / "missing.yaml") == []
    (tmp_path / "bad.yaml").write_text("budgets:\n  - name: x\n    where: {nope: 1}\n")
    with pytest.raises(ValueError, match="budgets\\[0\\]"):
        load_budgets(tmp_path / "bad.yaml")
    # March 2026 (31 days): $3 spent by the 11th 00:00 (10 days elapsed), one chat/pro request.
    rows = [make_request(0, ts=datetime(2026, 3, 2, tzinfo=UTC), cost_usd=1.0, feature="chat",
                         attributes=json.dumps({"plan": "pro"})),
            make_request(1, ts=datetime(2026, 3, 5, tzinfo=UTC), cost_usd=2.0),
            make_request(2, ts=datetime(2026, 2, 27, tzinfo=UTC), cost_usd=50.0),
            make_request(3, ts=datetime(2026, 3, 12, tzinfo=UTC), cost_usd=50.0)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    m = cost.month_to_date(engine, None, budgets, datetime(2026, 3, 11, tzinfo=UTC))
    r = {x["budget"]: x for x in m.iter_rows(named=True)}
    assert r["all"]["mtd_usd"] == pytest.approx(3.0)
    assert r["all"]["projected_usd"] == pytest.approx(3.0 * 31 / 10)
    assert r["all"]["status"] == "ok"
    assert r["chat"]["mtd_usd"] == pytest.approx(1.0)
    assert r["chat"]["projected_usd"] == pytest.approx(3.1)
    assert r["chat"]["status"] == "ok"  # 31% of 10 < warn_at 50%
    m2 = cost.month_to_date(engine, None, [Budget("tight", 5.0)],
                            datetime(2026, 3, 11, tzinfo=UTC))
    assert m2["status"][0] == "over"  # projected 9.3 > 5
    assert r["all"]["unpriced_requests"] == 0


def test_a_budget_with_unpriced_requests_is_not_on_track_but_unknown(lake, engine):
    # 2 priced dollars and 3 requests on a model with no price: the spend is not known, and
    # "on track" would count those as $0; a budget already over on the priced ones is over
    from lib.budgets import Budget

    march = datetime(2026, 3, 2, tzinfo=UTC)
    rows = [make_request(0, ts=march, cost_usd=2.0, feature="chat")]
    rows += [make_request(i, ts=march, cost_usd=None, model="our-finetune", feature="search")
             for i in (1, 2, 3)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    at = datetime(2026, 3, 11, tzinfo=UTC)
    budgets = [Budget("all", 1000.0), Budget("chat", 1000.0, where=(("feature", ("chat",)),)),
               Budget("tiny", 1.0)]
    r = {x["budget"]: x for x in cost.month_to_date(engine, None, budgets, at).iter_rows(
        named=True)}
    assert (r["all"]["status"], r["all"]["unpriced_requests"], r["all"]["mtd_usd"]) == (
        "unpriced", 3, pytest.approx(2.0))
    assert (r["chat"]["status"], r["chat"]["unpriced_requests"]) == ("ok", 0)
    assert (r["tiny"]["status"], r["tiny"]["unpriced_requests"]) == ("over", 3)


def test_repo_budgets_file_loads():
    assert load_budgets(), "budgets.yaml at the repo root is a valid example"


def test_cache_savings(priced):
    engine, f, _ = priced
    u = pricing.unit_prices("openai", "gpt-4o", T0.date())
    assert cost.cache_savings(engine, f) == pytest.approx(400 * (u["input"] - u["cached_input"]))
    assert cost.cache_savings(engine, f) == pytest.approx(pricing.cache_savings_sql(engine, f))
    none = Filters.between(T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert cost.cache_savings(engine, none) is None


def test_token_mix_cache_savings_and_what_if_price_a_batch_as_a_batch(lake, engine):
    # claude-haiku-4-5 on a day genai-prices has its batch variant (from 2026-10-14), USD per
    # million tokens: standard input 1, cache read 0.1, output 5; batch half of each.
    day = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    mix = dict(provider="anthropic", model="claude-haiku-4-5", input_tokens=1_000_000,
               cached_input_tokens=400_000, cache_write_tokens=0, output_tokens=100_000,
               reasoning_tokens=0)
    rows = [make_request(0, ts=day, **mix),
            make_request(1, ts=day, attributes=json.dumps({"processing": "batch"}), **mix)]
    lake.append({"requests": pricing.price_table(requests_table(rows))}, source="t")
    engine.refresh(force=True)
    f = Filters.between(day - timedelta(hours=1), day + timedelta(hours=1))
    # each request: 600k uncached, 400k cached input, 100k output
    standard = 0.6 * 1 + 0.4 * 0.1 + 0.1 * 5
    assert cost.totals(engine, f)["cost_usd"] == pytest.approx(standard * 1.5)
    got = {r["kind"]: r["cost_usd"] for r in cost.token_mix(engine, f).iter_rows(named=True)}
    assert got["uncached_input"] == pytest.approx(0.6 * 1 * 1.5)
    assert got["cached_input"] == pytest.approx(0.4 * 0.1 * 1.5)
    assert got["output"] == pytest.approx(0.1 * 5 * 1.5)
    saved = 0.4 * (1 - 0.1) * 1.5  # the batch request saves half as much
    assert cost.cache_savings(engine, f) == pytest.approx(saved)
    assert pricing.cache_savings_sql(engine, f) == pytest.approx(saved)
    # on the same model, the what-if is the actual cost: the batch stays a batch
    (row,) = cost.what_if(engine, f, "anthropic", "claude-haiku-4-5").rows(named=True)
    assert row["whatif_cost_usd"] == pytest.approx(standard * 1.5)
    assert row["difference_usd"] == pytest.approx(0.0, abs=1e-12)


def test_a_window_of_a_whole_month_is_budgeted_on_that_month(lake, engine):
    # [March 1st, April 1st) ends on April 1st 00:00, which is not in it: before, the budget was
    # April's (nothing spent, nothing elapsed, "ok") while March had spent $3,100 of $1,000.
    rows = [make_request(i, ts=datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(days=i),
                         cost_usd=100.0) for i in range(31)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    march = Filters.between(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    m = cost.month_to_date(engine, march, [Budget("all", 1000.0)]).row(0, named=True)
    assert m["mtd_usd"] == pytest.approx(31 * 100.0)
    assert m["projected_usd"] == pytest.approx(31 * 100.0)  # the whole month has elapsed
    assert m["status"] == "over"
    assert cost.budget_month(march.end) == datetime(2026, 3, 1, tzinfo=UTC)
    assert cost.budget_month(march.end + timedelta(microseconds=1)) == march.end


def test_a_window_ending_in_the_future_projects_from_now(lake, engine):
    # $0.50 an hour from March 1st to March 10th noon ("now"): $12 a day, $372 over March, over
    # a $300 budget. A window ending later (custom dates to March 10th, or all of March) counted
    # the hours to come as elapsed: March 1-31 projected $114, "ok" (found in review).
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    hours = int((now - start).total_seconds() // 3600)
    lake.append({"requests": requests_table([
        make_request(i, ts=start + timedelta(hours=i), cost_usd=0.5) for i in range(hours)])},
        source="t")
    engine.refresh(force=True)
    for end in (now, datetime(2026, 3, 11, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)):
        at = cost.budget_instant(end, now)
        m = cost.month_to_date(engine, Filters.between(start, end), [Budget("all", 300.0)],
                               at).row(0, named=True)
        assert at == now
        assert m["mtd_usd"] == pytest.approx(hours * 0.5)
        assert m["projected_usd"] == pytest.approx(hours * 0.5 * 31 * 24 / (9 * 24 + 12))
        assert m["status"] == "over"
    past = datetime(2026, 3, 5, tzinfo=UTC)  # a window that ended before now keeps its end
    assert cost.budget_instant(past, now) == past


def test_budget_names_and_scopes_are_read_as_written(tmp_path):
    # Unquoted, YAML 1.1 reads these as 1.1, 34 and True: the budget then filtered on values no
    # request has and read $0, "on track".
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n"
                    "  - {name: 1.10, monthly_usd: 10, where: {app_version: 1.10}}\n"
                    "  - {name: c, monthly_usd: 10, where: {customer: [0042, on, 7]}}\n"
                    "  - {name: d, monthly_usd: 1e3, warn_at: 0.5}\n")
    a, c, d = load_budgets(path)
    assert a.name == "1.10" and a.where_values() == {"app_version": ("1.10",)}
    assert c.where_values() == {"customer_id": ("0042", "7", "on")}
    assert (d.monthly_usd, d.warn_at) == (1000.0, 0.5)  # numbers are still numbers


def test_spend_of_requests_without_a_price_is_unknown_not_zero(lake, engine):
    # Hour 0: three gpt-4o requests at $1; hour 1: four of an unpriced fine-tune. Before, the
    # fine-tune's bar and a window of it alone read $0.00, as if nothing had been spent.
    rows = [make_request(i, cost_usd=1.0) for i in range(3)]
    rows += [make_request(60 + i, model="my-ft", cost_usd=None) for i in range(4)]
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    f = Filters.between(T0, T0 + timedelta(hours=3))
    s = cost.spend_over_time(engine, f, "model", seconds=3600)
    got = {(r["bucket"].hour - T0.hour, r["group"]): (r["cost_usd"], r["requests"],
                                                       r["unpriced_requests"])
           for r in s.iter_rows(named=True)}
    assert got[(0, "gpt-4o")] == (3.0, 3, 0)
    assert got[(1, "my-ft")] == (None, 4, 4)  # requests, no price: unknown
    assert got[(0, "my-ft")] == got[(2, "my-ft")] == (0.0, 0, 0)  # no request: nothing spent
    assert cost.totals(engine, f)["cost_usd"] == pytest.approx(3.0)
    alone = cost.totals(engine, Filters.between(T0 + timedelta(hours=1), T0 + timedelta(hours=2)))
    assert (alone["cost_usd"], alone["unpriced_requests"]) == (None, 4)
    empty = cost.totals(engine, Filters.between(T0 + timedelta(hours=2), T0 + timedelta(hours=3)))
    assert (empty["requests"], empty["cost_usd"]) == (0, 0.0)


def test_a_budget_is_not_projected_from_its_month_s_first_minutes(lake, engine):
    # $1 in the first minute of March, a $1,000 budget: the run rate said $44,640 ("over").
    lake.append({"requests": requests_table([make_request(
        0, ts=datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC), cost_usd=1.0)])}, source="t")
    engine.refresh(force=True)
    early = cost.month_to_date(engine, None, [Budget("b", 1000.0)],
                               datetime(2026, 3, 1, 0, 1, tzinfo=UTC)).row(0, named=True)
    assert early["mtd_usd"] == 1.0 and early["projected_usd"] is None
    assert early["status"] == "ok" and early["projected_share"] is None
    # spent past the budget already: over, projection or not
    over = cost.month_to_date(engine, None, [Budget("b", 0.5)],
                              datetime(2026, 3, 1, 0, 1, tzinfo=UTC)).row(0, named=True)
    assert over["status"] == "over"
    later = cost.month_to_date(engine, None, [Budget("b", 1000.0)],
                               datetime(2026, 3, 2, tzinfo=UTC)).row(0, named=True)
    assert later["projected_usd"] == pytest.approx(31.0)  # a day in: $1 a day


def test_budgets_keep_yaml_s_null_and_merge_keys(tmp_path):
    # Read as text throughout (the fix above), `where: null` was the text "null" (the file was
    # refused), `<<: *base` an unknown filter key, and a budget inheriting its scope through a
    # merge lost it silently, counting all traffic (found by a review).
    path = tmp_path / "budgets.yaml"
    path.write_text("base: &base {where: {feature: chat, environment: prod}}\n"
                    "scope: &scope {feature: chat}\n"
                    "budgets:\n"
                    "  - {name: all, monthly_usd: 100, where: null}\n"
                    "  - {name: merged, monthly_usd: 100, where: {<<: *scope, customer: 007}}\n"
                    "  - {<<: *base, name: inherited, monthly_usd: 100}\n")
    everything, merged, inherited = load_budgets(path)
    assert everything.where == ()
    assert merged.where_values() == {"customer_id": ("007",), "feature": ("chat",)}
    assert inherited.where_values() == {"environment": ("prod",), "feature": ("chat",)}


def test_the_token_mix_of_unpriced_traffic_has_no_cost(lake, engine):
    # only a model without a price: its tokens are counted, their cost is unknown (was $0.00)
    lake.append({"requests": requests_table([make_request(i, model="my-ft", cost_usd=None)
                                             for i in range(3)])}, source="t")
    engine.refresh(force=True)
    mix = cost.token_mix(engine, Filters.between(T0, T0 + timedelta(hours=1)))
    assert mix["tokens"].sum() == 3 * 1500
    assert mix["cost_usd"].to_list() == [None] * 6 and mix["cost_share"].null_count() == 6


def test_a_what_if_difference_of_float_noise_is_none_at_all():
    # gpt-4o-mini traffic re-priced on gpt-4o-mini, summed in another order
    parts = [0.1, 0.2, 0.3] * 1000
    actual, alt = sum(parts), sum(reversed(parts))
    assert actual != alt and cost.whatif_difference(actual, alt) == 0.0
    assert cost.whatif_difference(10.0, 12.5) == 2.5
    assert cost.whatif_difference(0.000001, 0.0000005) == pytest.approx(-0.0000005)
    assert cost.whatif_difference(None, 1.0) is None and cost.whatif_difference(0.0, 0.0) == 0.0


@pytest.mark.parametrize("entry, says", [
    ("monthly_usd: nan", "monthly_usd must be a positive number"),  # was always "over"
    ("monthly_usd: inf", "monthly_usd must be a positive number"),  # was always "ok"
    ("monthly_usd: 0", "monthly_usd must be a positive number"),
    ("monthly_usd: 100\n    warn_at: 80", "warn_at must be a share"),  # 80% meant: never warned
    ("monthly_usd: 100\n    warn_at: -1", "warn_at must be a share"),  # always warned
    ("monthly_usd: 100\n    warn_at: nan", "warn_at must be a share"),  # never warned
    ("monthly_usd: 100\n    warn_at: 0", "warn_at must be a share"),
    # a scope with no value was no scope: the budget counted all traffic ("model = ")
    ("monthly_usd: 100\n    where:\n      model: []", "model: no value"),
    ("monthly_usd: 100\n    where:\n      model:", "model: no value"),
    # a null in a list scoped the budget to requests whose feature is the text "None"
    ("monthly_usd: 100\n    where:\n      feature: [chat, null]", "feature: no value"),
])
def test_a_budget_amount_or_threshold_that_cannot_be_meant_is_refused(tmp_path, entry, says):
    path = tmp_path / "budgets.yaml"
    path.write_text(f"budgets:\n  - name: b\n    {entry}\n")
    with pytest.raises(ValueError, match=says) as exc:
        load_budgets(path)
    assert str(path) in str(exc.value) and "budgets[0]" in str(exc.value)


def test_a_budget_may_warn_only_when_it_is_reached(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - name: b\n    monthly_usd: 100\n    warn_at: 1\n")
    assert load_budgets(path)[0].warn_at == 1.0


def test_a_what_if_row_of_traffic_already_on_the_target_differs_by_nothing(lake, engine):
    # gpt-4o-mini calls re-priced on gpt-4o-mini: the per-model difference was float noise
    # ("$-0.00000000"), whose smallest amount also set the whole column to eight decimals
    # ("$-24.65695800" beside the tile's "−$24.66")
    rows = []
    for i in range(40):
        tokens = {"input_tokens": 1000 + 37 * i, "cached_input_tokens": 11 * i,
                  "output_tokens": 300 + 13 * i}
        rows.append(make_request(i, model="gpt-4o-mini", cost_usd=pricing.request_cost(
            "openai", "gpt-4o-mini", T0 + timedelta(minutes=i),
            tokens["input_tokens"], tokens["cached_input_tokens"], 0, tokens["output_tokens"],
            overrides={}), **tokens))
    lake.append({"requests": requests_table(rows)}, source="t")
    engine.refresh(force=True)
    wi = cost.what_if(engine, Filters.between(T0, T0 + timedelta(hours=1)), "openai",
                      "gpt-4o-mini")
    row = wi.row(0, named=True)
    assert row["whatif_cost_usd"] == pytest.approx(row["cost_usd"])
    assert row["difference_usd"] == 0.0



def test_a_what_if_prices_long_prompts_at_the_target_s_tier(lake, engine):
    # claude-sonnet-4-5 bills prompts over 200k input tokens at higher prices. Its own long-
    # prompt traffic re-priced on it showed a 48% saving (base-tier prices); gpt-4o's long
    # prompts re-priced on it were half of what the same calls cost there.
    at = T0 + timedelta(minutes=1)
    long = {"input_tokens": 250_000, "cached_input_tokens": 100_000, "output_tokens": 1000}
    sonnet = pricing.request_cost("anthropic", "claude-sonnet-4-5", at, 250_000, 100_000, 0,
                                  1000, overrides={})
    lake.append({"requests": requests_table([
        make_request(1, provider="anthropic", model="claude-sonnet-4-5", cost_usd=sonnet,
                     **long),
        make_request(2, cost_usd=pricing.request_cost("openai", "gpt-4o", at, 250_000,
                                                      100_000, 0, 1000, overrides={}), **long),
        make_request(3, cost_usd=0.0075)])}, source="t")  # a short prompt: base tier
    engine.refresh(force=True)
    wi = cost.what_if(engine, Filters.between(T0, T0 + timedelta(hours=1)), "anthropic",
                      "claude-sonnet-4-5")
    by_model = {r["model"]: r for r in wi.iter_rows(named=True)}
    assert by_model["claude-sonnet-4-5"]["whatif_cost_usd"] == pytest.approx(sonnet)
    assert by_model["claude-sonnet-4-5"]["difference_usd"] == 0.0
    short = pricing.request_cost("anthropic", "claude-sonnet-4-5", at, 1000, 0, 0, 500,
                                 overrides={})
    assert by_model["gpt-4o"]["whatif_cost_usd"] == pytest.approx(sonnet + short)


def test_the_token_mix_prices_long_prompts_at_their_tier(lake, engine):
    # claude-sonnet-4-5 bills every token of a prompt over 200k input tokens at higher prices:
    # at base-tier prices the mix said $0.50 of a call that cost $0.98
    at = T0 + timedelta(minutes=1)
    tokens = {"input_tokens": 250_000, "cached_input_tokens": 100_000,
              "cache_write_tokens": 20_000, "output_tokens": 3000, "reasoning_tokens": 1000}
    paid = pricing.request_cost("anthropic", "claude-sonnet-4-5", at, 250_000, 100_000, 20_000,
                                3000, overrides={})
    lake.append({"requests": requests_table([
        make_request(1, provider="anthropic", model="claude-sonnet-4-5", cost_usd=paid,
                     **tokens),
        make_request(2, cost_usd=0.0075)])}, source="t")  # gpt-4o, base tier
    engine.refresh(force=True)
    mix = cost.token_mix(engine, Filters.between(T0, T0 + timedelta(hours=1)))
    assert mix["cost_usd"].sum() == pytest.approx(paid + 0.0075)
    by_kind = dict(zip(mix["kind"], mix["cost_usd"], strict=True))
    # the tier's prices: $6 / $0.60 / $7.50 / $22.50 per million uncached, cached, written,
    # output tokens (anthropic's published long-context rates for claude-sonnet-4-5)
    assert by_kind["cached_input"] == pytest.approx(100_000 * 0.6e-6)
    assert by_kind["reasoning"] == pytest.approx(1000 * 22.5e-6)


def test_a_what_if_charges_no_per_call_fee_for_a_call_the_provider_rejected(lake, engine):
    # perplexity's sonar bills a fee per call; a rejected call (429, no usage) costs $0. Sonar
    # traffic re-priced on sonar came out dearer by the fee of each rejected call.
    ok = pricing.request_cost("perplexity", "sonar", T0, 1000, 0, 0, 500, overrides={})
    rejected = dict(status="error", error_type="RateLimitError", input_tokens=None,
                    output_tokens=None, cached_input_tokens=None, cache_write_tokens=None,
                    reasoning_tokens=None, cost_usd=0.0)
    lake.append({"requests": requests_table([
        make_request(0, provider="perplexity", model="sonar", cost_usd=ok),
        make_request(1, provider="perplexity", model="sonar", **rejected),
        make_request(2, **rejected)])}, source="t")  # a rejected gpt-4o call
    engine.refresh(force=True)
    wi = cost.what_if(engine, Filters.between(T0, T0 + timedelta(hours=1)), "perplexity",
                      "sonar")
    by_model = {r["model"]: r for r in wi.iter_rows(named=True)}
    assert by_model["sonar"]["whatif_cost_usd"] == pytest.approx(ok)
    assert by_model["sonar"]["difference_usd"] == 0.0
    assert by_model["gpt-4o"]["whatif_cost_usd"] == 0.0


def test_a_long_prompt_s_tier_prices_are_asked_per_run_not_per_request():
    # The token mix and the what-if price each past-tier prompt size at the tier's unit prices;
    # asked once per request (six genai-prices calls each), 20,000 long prompts took 7.5 s on
    # the Cost page (review). Asked at the ends of runs of equal prices, every size still gets
    # exactly what lib.pricing.unit_prices_at gives it.
    from datetime import UTC, datetime

    from lib import pricing
    from lib.metrics.cost import _same_units, _tier_units

    at = datetime(2026, 3, 2, tzinfo=UTC)
    inputs = sorted({200_001 + 7_919 * k for k in range(400)})  # (past 200,000: the tier)
    asked = []
    real = pricing.unit_prices_at

    def counting(*args, **kwargs):
        asked.append(args[3])
        return real(*args, **kwargs)

    overrides = pricing.load_overrides()
    pricing.unit_prices_at = counting
    try:
        got = _tier_units("anthropic", "claude-sonnet-4-5", at, "", inputs, overrides)
    finally:
        pricing.unit_prices_at = real
    assert set(got) == set(inputs)
    for n in inputs:
        assert _same_units(got[n], real("anthropic", "claude-sonnet-4-5", at, n, overrides))
    assert len(asked) == 2  # one price past 200,000: the two ends of the run
    # and one boundary inside the sizes: the run halved down to it, ~log2(400) + 2 asks
    asked.clear()
    pricing.unit_prices_at = counting
    try:
        got = _tier_units("anthropic", "claude-sonnet-4-5", at, "", [100_000, *inputs],
                          overrides)
    finally:
        pricing.unit_prices_at = real
    assert len(asked) <= 12
    assert not _same_units(got[100_000], got[inputs[0]])


def test_tier_units_split_a_run_whose_ends_are_priced_apart():
    # (a model whose prices change inside the sizes asked: the run is halved until each part
    # is one price; here the base tier's 200,000 and the tier's 200,001 both asked)
    from datetime import UTC, datetime

    from lib import pricing
    from lib.metrics.cost import _same_units, _tier_units

    at = datetime(2026, 3, 2, tzinfo=UTC)
    overrides = pricing.load_overrides()
    inputs = [1_000, 50_000, 200_000, 200_001, 250_000, 900_000]
    got = _tier_units("anthropic", "claude-sonnet-4-5", at, "", inputs, overrides)
    for n in inputs:
        assert _same_units(got[n], pricing.unit_prices_at("anthropic", "claude-sonnet-4-5", at,
                                                          n, overrides))
    assert not _same_units(got[200_000], got[200_001])


def test_a_store_started_mid_month_projects_from_its_first_request(lake, engine):
    # $1 an hour from March 20th 22:00 to the 27th 22:00 ($168 over 7 days): the month lands at
    # $168 + $98 = $266 (the 98 hours left of March at the same rate). Counted from March 1st,
    # the 19 days before the store began read as $0 and projected $168 × 31 / 26.9 ≈ $193.5,
    # on track for a $250 budget (found in review).
    start = datetime(2026, 3, 20, 22, 0, 40, tzinfo=UTC)
    lake.append({"requests": requests_table([
        make_request(i, ts=start + timedelta(hours=i), cost_usd=1.0) for i in range(168)])},
        source="t")
    engine.refresh(force=True)
    at = datetime(2026, 3, 27, 22, tzinfo=UTC)
    m = cost.month_to_date(engine, None, [Budget("all", 250.0)], at).row(0, named=True)
    assert m["mtd_usd"] == pytest.approx(168.0)
    assert m["since"] == datetime(2026, 3, 20, 22, tzinfo=UTC)  # the first request's hour
    assert m["projected_usd"] == pytest.approx(168.0 + 98)
    assert m["status"] == "over"
    # less than a day of data: no projection yet, as at the start of a month
    early = cost.month_to_date(engine, None, [Budget("all", 250.0)],
                               datetime(2026, 3, 21, 12, tzinfo=UTC)).row(0, named=True)
    assert early["projected_usd"] is None and early["status"] == "ok"
    # in April the store has March behind it: projected from April 1st as before
    april = cost.month_to_date(engine, None, [Budget("all", 250.0)],
                               datetime(2026, 4, 2, tzinfo=UTC)).row(0, named=True)
    assert april["since"] == datetime(2026, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize("text, says", [
    # a misspelt scope was no scope: "Chat feature" projected all traffic's spend
    ("budgets:\n  - name: Chat\n    monthly_usd: 900\n    wher: {feature: chat}\n",
     "budgets[0] is not a valid budget: unknown key(s) wher"),
    ("budgets:\n  - name: Chat\n    monthly_usd: 900\n    warn_a: 0.5\n", "unknown key(s) warn_a"),
    # (YAML keeps the last key written twice: the first scope or list was dropped unsaid)
    ("budgets:\n  - name: Chat\n    monthly_usd: 900\n    where:\n      feature: chat\n"
     "      feature: search\n", "line 6, column 7: 'feature' is written twice"),
    ("budgets:\n  - name: A\n    monthly_usd: 1\nbudgets:\n  - name: B\n    monthly_usd: 1\n",
     "'budgets' is written twice"),
    ("budget:\n  - name: A\n    monthly_usd: 1\n",
     "expected `budgets:` and a list of budgets; found budget"),
    ("- name: A\n  monthly_usd: 1\n", "expected `budgets:` and a list of budgets"),
    ("budgets:\n  - monthly_usd: 1\n", "budgets[0] is not a valid budget: no name"),
    (None, "a folder, not a file"),
])
def test_a_budgets_file_not_read_as_written_is_refused_naming_it(tmp_path, text, says):
    path = tmp_path / "budgets.yaml"
    if text is None:
        path.mkdir()
    else:
        path.write_text(text)
    with pytest.raises(ValueError) as exc:  # (the Cost page shows it; a folder was a traceback)
        load_budgets(path)
    assert str(exc.value).startswith(f"{path}: ") and says in str(exc.value)


def test_a_budgets_file_named_in_the_environment_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_BUDGETS", str(tmp_path / "budgts.yaml"))
    with pytest.raises(ValueError, match="budgts.yaml: no such file"):
        load_budgets()
    assert load_budgets(tmp_path / "missing.yaml") == []  # (a path given by code: none)
