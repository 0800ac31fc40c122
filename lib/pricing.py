"""The cost engine: USD cost of each request from genai-prices, with per-model overrides.

Prices come from the ``genai-prices`` package's bundled snapshot (never its network updater),
looked up by provider, model and the request's time (see "Price periods" below).
``$SIGHTLINE_PRICES``, else the
repository's ``prices.yaml``, overrides per model, for fine-tunes, self-hosted models and
negotiated rates, in USD per million tokens::

    models:
      - provider: self-hosted
        model: llama-3.1-8b-instruct
        input_per_mtok: 0.05
        cached_input_per_mtok: 0.05
        output_per_mtok: 0.10

A deployment or alias name (an Azure OpenAI deployment) is priced as a catalogue model with
``priced_as`` (and ``priced_as_provider``) instead of prices; its calls then take that model's
prices, price periods and contexts. Without it nothing is guessed from the model that answered:
a deployment may be billed otherwise (provisioned throughput).

Token convention (design §3): ``input_tokens`` includes ``cached_input_tokens``; genai-prices uses
the same convention (its ``input_tokens`` is the total), so each kind is priced exactly once.
A model without a price gets a null cost, never $0; so does a call that did not fail and logged
no token count at all (a failed call without usage costs $0: rejected calls are not billed).

Price context: how a request was processed changes its price (the Batch APIs bill about half the
standard rates; OpenAI's ``service_tier`` "flex" is cheaper and "priority" dearer). It is read
from the request's ``attributes``, no schema change:

- ``attributes.processing``: ``"batch"`` for a request run through a provider's Batch API;
- ``attributes.service_tier``: the tier that served it, as the provider reports it (OpenAI's
  response ``service_tier``: ``"flex"``, ``"priority"``, ``"default"``…).

A canonical row may write either key at its top level (ingestion folds it into ``attributes``).
Spans keep the tier under the OpenTelemetry names (``openai.response.service_tier``, older
``gen_ai.openai.response.service_tier``; the request's ``openai.request.service_tier`` when the
response's is missing): these count as ``service_tier`` when ``service_tier`` itself gives none
(CONTEXT_ALIASES).
Values are compared in lower case. They select genai-prices' price variants (``calc_price(...,
price_context=...)``, variants declared ``when={'processing': 'batch'}``, ``when={'service_tier':
'flex'}``…); a value no variant declares, a model without variants, or a day before a variant
starts gives the standard price, exactly as a request without context. ``prices.yaml`` overrides
apply whatever the context. Internally a context is a *key*, text such as
``"processing=batch;service_tier=flex"`` (``""``: none), built only from the values some variant
declares, so unknown values never split the groups priced below.

Price periods: most prices change only from one day to another (a new price from a start
date), but some depend on the time of day: deepseek-v4-pro costs twice as much from 01:00 to
04:00 and from 06:00 to 10:00 UTC, deepseek-chat half as much from 16:30 to 00:30. A request's
*period* is the start of the interval of its UTC day, between consecutive times of day at which
any catalogue price starts or stops (period_bounds(): 00:30, 01:00, 04:00, 06:00, 10:00, 16:30
in the bundled snapshot), in which it was made; every price is constant within a period. A model
whose prices do not depend on the time of day is priced at noon UTC of the day, so its periods
of a day share one genai-prices lookup.

Speed: a genai-prices call costs ~150 µs, so prices are computed per distinct
(provider, model, period, context, token mix) and joined back, never once per row.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import TimeOfDateConstraint

from lib.formatting import terminal_text
from lib.schema import sql_literal as _sql_lit
from lib.store.connections import close as close_connection
from lib.store.connections import connect
from lib.yaml_files import NumbersLoader

DEFAULT_PRICES_FILE = Path(__file__).resolve().parents[1] / "prices.yaml"
MTOK = 1_000_000


@dataclass(frozen=True)
class Override:
    """USD per million tokens for one (provider, model); provider None matches any provider."""

    provider: str | None
    model: str
    input_per_mtok: float | None
    output_per_mtok: float | None
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    # priced as another model (an Azure deployment's name, a gateway's alias): its name, and its
    # provider when not this one's; no prices of its own then
    priced_as: str | None = None
    priced_as_provider: str | None = None

    def cost(self, input_tokens: int, cached: int, cache_write: int, output: int) -> float:
        cached_price = self.input_per_mtok if self.cached_input_per_mtok is None \
            else self.cached_input_per_mtok
        write_price = self.input_per_mtok if self.cache_write_per_mtok is None \
            else self.cache_write_per_mtok
        uncached = max(input_tokens - cached - cache_write, 0)
        return (uncached * self.input_per_mtok + cached * cached_price
                + cache_write * write_price + output * self.output_per_mtok) / MTOK


OVERRIDE_FIELDS = ("provider", "model", "input_per_mtok", "output_per_mtok",
                   "cached_input_per_mtok", "cache_write_per_mtok", "priced_as",
                   "priced_as_provider")
PRICE_FIELDS = OVERRIDE_FIELDS[2:6]


def overrides_path() -> Path:
    """The price overrides file this process reads: ``$SIGHTLINE_PRICES``, else prices.yaml."""
    return Path(os.environ.get("SIGHTLINE_PRICES") or DEFAULT_PRICES_FILE)


def overrides_stamp() -> tuple:
    """A key that changes when the price overrides file changes: its path and, when it exists,
    its inode, size and modification time (an editor that writes a new file changes the inode;
    one that writes in place, the time). For results computed at the current prices."""
    path = overrides_path()
    try:
        st = os.stat(path)
    except OSError:
        return (str(path),)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def prices_option() -> str:
    """`` --prices FILE`` for a command the app tells its user to run, or "" for the default
    file: run from another shell without the app's ``SIGHTLINE_PRICES``, ``reprice`` read
    prices.yaml and undid the overrides the app priced with."""
    named = os.environ.get("SIGHTLINE_PRICES")
    return f" --prices {shlex.quote(str(Path(named).resolve()))}" if named else ""


def overrides_name() -> str:
    """How a page names the price overrides file the app reads: ``prices.yaml`` for the
    default, else its path (``SIGHTLINE_PRICES``)."""
    path = overrides_path()
    return "prices.yaml" if path == DEFAULT_PRICES_FILE else str(path)


def reprice_command(store_root: str | os.PathLike) -> str:
    """``python -m lib reprice`` with the ``--store`` and ``--prices`` the app reads, for a page
    to tell its user to run in another shell."""
    from lib.store import store_option

    return f"python -m lib reprice{store_option(store_root)}{prices_option()}"


def load_overrides(path: str | os.PathLike | None = None) -> dict[tuple[str | None, str], Override]:
    """Read price overrides: from ``path``, else ``$SIGHTLINE_PRICES``, else the repository's
    prices.yaml. Only that default file may be missing (no overrides then): a file named and
    not there is a typo that would reprice every overridden model. Keys are (provider, model) in
    lower case without surrounding spaces (see :func:`override_for`). Raises ValueError, naming
    the file, on anything but the documented shape: a YAML mapping with only ``models``, a list
    of mappings with only OVERRIDE_FIELDS, a non-empty ``model``, finite prices >= 0, each
    (provider, model) once, no key written twice."""
    named = path or os.environ.get("SIGHTLINE_PRICES")
    path = Path(named or DEFAULT_PRICES_FILE)
    if not path.exists():
        if named:
            raise ValueError(f"{path}: no such prices file")
        return {}
    try:
        # (a key written twice refused: YAML keeps the last, so the Data page's suggested
        # `models:` lines pasted below the file's own dropped every override above them)
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=NumbersLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        from lib.formatting import yaml_problem  # (where YAML found the slip, review: unsaid)

        raise ValueError(f"{path}: not a readable YAML file: {yaml_problem(exc)}") from None
    doc = {} if doc is None else doc
    unknown = sorted(map(str, set(doc) - {"models"})) if isinstance(doc, dict) else []
    if not isinstance(doc, dict) or unknown:
        raise ValueError(f"{path}: expected a mapping with one key, models (a list of price "
                         "overrides)" + (f"; unknown key(s): {', '.join(unknown)}"
                                         if unknown else ""))
    items = doc.get("models") or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: models must be a list of price overrides")
    out: dict[tuple[str | None, str], Override] = {}
    for i, item in enumerate(items):
        try:
            o = _override(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: models[{i}] is not a valid price override: {exc}") from exc
        key = _override_key(o.provider, o.model)
        if key in out:
            raise ValueError(f"{path}: models[{i}] prices {o.provider or 'any provider'} / "
                             f"{o.model} again (it is listed twice)")
        out[key] = o
    for i, o in enumerate(out.values()):
        if o.priced_as is not None:
            problem = _alias_problem(out, o)
            if problem:
                raise ValueError(f"{path}: models[{i}] ({o.model}) is not a valid price "
                                 f"override: {problem}")
    return out


ALIAS_HOPS = 8  # priced_as may name a model that is itself priced as another, this deep


def _alias_chain(overrides: dict, provider: str | None, model: str | None):
    """Yield (provider, model, its override or None) for ``model`` of ``provider``, then for
    each model it is priced as in turn (at most ALIAS_HOPS of them). A target's provider is
    the override's ``priced_as_provider``, else its ``provider`` (none: by model alone), never
    the call's."""
    for _ in range(ALIAS_HOPS + 1):
        o = override_for(overrides, provider, model) if model else None
        yield provider, model, o
        if o is None or o.priced_as is None:
            return
        provider, model = o.priced_as_provider or o.provider, o.priced_as


def priced_as(overrides: dict, provider: str | None, model: str | None
              ) -> tuple[str | None, str | None]:
    """The (provider, model) whose price a call to ``model`` of ``provider`` takes: the target
    of its ``priced_as`` override (followed through aliases of aliases), else its own; as the
    file was checked when loaded (:func:`_alias_problem` walks the same chain)."""
    *_, (target_provider, target_model, _) = _alias_chain(overrides, provider, model)
    return target_provider, target_model


def _alias_problem(overrides: dict, alias: Override) -> str | None:
    """Why the ``priced_as`` of ``alias`` prices nothing, or None: a loop of aliases, or a
    model with neither an override nor a genai-prices price."""
    seen = set()
    for provider, model, o in itertools.islice(_alias_chain(
            overrides, alias.priced_as_provider or alias.provider, alias.priced_as), ALIAS_HOPS):
        if (provider, model) in seen:
            break
        seen.add((provider, model))
        if o is None:
            try:
                get_snapshot().find_provider_model(catalog_model(model), None,
                                                   catalog_provider(provider), None)
            except LookupError:
                return (f"priced_as {model!r}"
                        + (f" of provider {provider!r}" if provider else "")
                        + ": no such model in genai-prices nor in this file")
            return None
        if o.priced_as is None:
            return None
    return f"priced_as goes round in a loop, or deeper than {ALIAS_HOPS} aliases"


def overrides_problem() -> str | None:
    """Why the price overrides in effect cannot be read (load_overrides' message), or None."""
    try:
        load_overrides()
    except ValueError as exc:
        return str(exc)
    return None


def _override(item) -> Override:
    if not isinstance(item, dict):
        raise TypeError("expected a mapping of provider, model and prices")
    unknown = set(item) - set(OVERRIDE_FIELDS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(str, sorted(unknown, key=str)))} "
                         f"(known: {', '.join(OVERRIDE_FIELDS)})")
    if "model" not in item:  # (a KeyError's text is the bare key: "'model'", found in review)
        raise ValueError("no model: each override names the model it prices")
    model = item["model"]
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a model name, not {model!r}")
    provider = item.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise ValueError(f"provider must be a provider name, not {provider!r}")
    alias = item.get("priced_as")
    if alias is not None or item.get("priced_as_provider") is not None:
        if not isinstance(alias, str) or not alias.strip():
            raise ValueError(f"priced_as must be a model name, not {alias!r}")
        alias_provider = item.get("priced_as_provider")
        if alias_provider is not None and (not isinstance(alias_provider, str)
                                           or not alias_provider.strip()):
            raise ValueError(f"priced_as_provider must be a provider name, not "
                             f"{alias_provider!r}")
        given = [k for k in PRICE_FIELDS if k in item]
        if given:
            raise ValueError(f"priced_as takes another model's prices: {', '.join(given)} "
                             "cannot be given with it")
        return Override(provider=provider.strip() if provider else None, model=model.strip(),
                        input_per_mtok=None, output_per_mtok=None, priced_as=alias.strip(),
                        priced_as_provider=alias_provider.strip() if alias_provider else None)
    return Override(provider=provider.strip() if provider else None, model=model.strip(),
                    input_per_mtok=_price(item, "input_per_mtok"),
                    output_per_mtok=_price(item, "output_per_mtok"),
                    cached_input_per_mtok=_price(item, "cached_input_per_mtok", optional=True),
                    cache_write_per_mtok=_price(item, "cache_write_per_mtok", optional=True))


def _price(item: dict, name: str, optional: bool = False) -> float | None:
    """A price in USD per million tokens: a finite number >= 0 (not a YAML boolean)."""
    if optional and item.get(name) is None:
        return None
    if name not in item:  # (a KeyError's text is the bare key, found in review)
        raise ValueError(f"no {name}: an override without priced_as gives input_per_mtok and "
                         "output_per_mtok")
    v = item[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a number of USD per million tokens, >= 0, not {v!r}")
    return float(v)


def _override_key(provider: str | None, model: str) -> tuple[str | None, str]:
    return (provider.strip().lower() or None if provider else None, model.strip().lower())


def override_for(overrides: dict, provider: str | None, model: str) -> Override | None:
    """The override of (provider, model), else of (any provider, model), or None. Names match
    as genai-prices matches them: without case ("OpenAI" / "GPT-4o" is openai / gpt-4o) and
    without surrounding spaces. ``overrides`` as :func:`load_overrides` returns them (a dict
    keyed otherwise is looked up by its keys as they are first)."""
    if not overrides:
        return None
    o = overrides.get((provider, model)) or overrides.get((None, model))
    if o:
        return o
    key = _override_key(provider, model)
    return overrides.get(key) or overrides.get((None, key[1]))


# A Gemini model's API resource name: the google-genai SDK and LangChain pass "models/<model>",
# Vertex AI names "publishers/google/models/<model>" or the whole
# "projects/P/locations/L/publishers/google/models/<model>"; the OpenTelemetry instrumentations
# record the name as passed (gen_ai.request.model). The catalogue knows the model by its own
# name: looked up by the resource name, such a call was left unpriced (review).
_RESOURCE_NAME = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/[^/]+/)?models/"
                            r"(?=[^/]+$)")


def catalog_model(model: str) -> str:
    """The name to look ``model`` up in the catalogue by: a resource name's last part (see
    ``_RESOURCE_NAME``), else the name itself."""
    return _RESOURCE_NAME.sub("", model) if "models/" in model else model


@lru_cache(maxsize=1_000)
def catalog_provider(provider: str | None) -> str | None:
    """The provider id to look prices up with: ``provider`` when genai-prices knows it (by id or
    its own aliases), else None, i.e. by model alone. OpenTelemetry names some providers in ways
    the catalog does not (``x_ai``, ``gcp.gen_ai``, ``azure.ai.inference``); a call to grok-4 or
    gemini-2.0-flash through them is still priced, rather than left unpriced. ``litellm`` is
    kept: genai-prices reads the provider from a LiteLLM model name (``deepseek/deepseek-chat``)."""
    if not provider:
        return None
    if provider.strip().lower() == "litellm":
        return provider
    known = find_provider_by_id(get_snapshot().providers, provider)
    return provider if known is not None else None


# -- Price periods (prices that depend on the time of day) --------------------------------------

DAY_US = 86_400_000_000  # microseconds in a day


def _time_constraints(model) -> list:
    """The time-of-day constraints of a genai-prices model, on its prices or price variants."""
    found = [c.constraint for c in (model.prices if isinstance(model.prices, list) else ())]
    found += [v.constraint for v in model.price_variants or ()]
    return [c for c in found if isinstance(c, TimeOfDateConstraint)]


def _us_of_day(value: time) -> int:
    """Microseconds after midnight UTC of a time of day (a naive time is UTC, as genai-prices
    reads it)."""
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


@lru_cache(maxsize=1)
def period_bounds() -> tuple[int, ...]:
    """The times of day (microseconds after midnight UTC, ascending, without 0) at which some
    catalogue price starts or stops applying: the starts of a day's periods after the first."""
    found = {_us_of_day(t) for provider in get_snapshot().providers
             for model in provider.models for c in _time_constraints(model)
             for t in (c.start_time, c.end_time)}
    return tuple(sorted(found - {0}))


@lru_cache(maxsize=10_000)
def priced_by_time_of_day(provider: str | None, model: str | None) -> bool:
    """Whether genai-prices' price of ``model`` (as it resolves it with ``provider``) depends on
    the time of day."""
    if not model:
        return False
    try:
        _, info = get_snapshot().find_provider_model(catalog_model(model), None,
                                                     catalog_provider(provider), None)
    except LookupError:
        return False
    return bool(_time_constraints(info))


def period_of(ts: datetime) -> datetime:
    """The start of the price period holding ``ts`` (see the module's docstring), naive UTC; a
    naive ``ts`` is UTC."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    midnight = datetime.combine(ts.date(), time())
    us = (ts - midnight) // timedelta(microseconds=1)
    start = max((b for b in period_bounds() if b <= us), default=0)
    return midnight + timedelta(microseconds=start)


def price_moment(provider: str | None, model: str | None, when: date | datetime) -> datetime:
    """The instant genai-prices is asked the price of a call made at ``when``: the start of its
    period for a model priced by the time of day, else noon UTC of its day (one lookup per day).
    A ``date`` alone stands for its noon."""
    if not isinstance(when, datetime):
        return datetime.combine(when, time(12), tzinfo=UTC)
    if priced_by_time_of_day(provider, model):
        return period_of(when).replace(tzinfo=UTC)
    day = (when.astimezone(UTC) if when.tzinfo is not None else when).date()
    return datetime.combine(day, time(12), tzinfo=UTC)


def period_sql(ts: str, by_time: bool = True) -> str:
    """DuckDB: the start of the price period of the TIMESTAMP or TIMESTAMPTZ ``ts`` as a naive
    UTC TIMESTAMP (:func:`period_of`); ``by_time`` False: of its UTC day (midnight), for rows of
    models none of which is priced by the time of day. Epoch arithmetic, so the session's time
    zone does not matter."""
    t = f"epoch_us({ts})"
    tod = f"(({t} % {DAY_US} + {DAY_US}) % {DAY_US})"
    bounds = period_bounds() if by_time else ()
    if not bounds:
        return f"make_timestamp({t} - {tod})"
    start = " ".join(f"WHEN {tod} >= {b} THEN {b}" for b in reversed(bounds))
    return f"make_timestamp({t} - {tod} + CASE {start} ELSE 0 END)"


def period_expr(ts: pl.Expr) -> pl.Expr:
    """Polars: :func:`period_sql` of a Datetime expression (naive is UTC), as naive Datetime."""
    t = ts.dt.epoch("us")
    tod = (t % DAY_US + DAY_US) % DAY_US
    start = pl.lit(0, pl.Int64)
    for b in period_bounds():
        start = pl.when(tod >= b).then(pl.lit(b, pl.Int64)).otherwise(start)
    return pl.from_epoch(t - tod + start, time_unit="us")


# -- Price context ---------------------------------------------------------------------------------

CONTEXT_KEYS = ("processing", "service_tier")
# Attribute names read for a context key, first to last: the first that gives a value some variant
# declares wins. The OpenTelemetry names are what span formats store (openai-v2 instrumentation:
# openai.response.service_tier; before semconv 1.37: gen_ai.openai.*). The tier asked for counts
# only after the tier that served ("auto" asks for none: no variant declares it).
CONTEXT_ALIASES: dict[str, tuple[str, ...]] = {
    "processing": ("processing",),
    "service_tier": ("service_tier", "openai.response.service_tier",
                     "gen_ai.openai.response.service_tier", "openai.request.service_tier",
                     "gen_ai.openai.request.service_tier"),
}
CONTEXT_COLUMN = "price_context"  # a frame column holding context keys, read before attributes


@lru_cache(maxsize=1)
def context_values() -> dict[str, tuple[str, ...]]:
    """The values of each of CONTEXT_KEYS that some genai-prices price variant is declared for
    (in the bundled snapshot: processing batch; service_tier default, fast, flex, priority).
    Any other value prices like no value, so it is dropped from the context key."""
    found: dict[str, set[str]] = {k: set() for k in CONTEXT_KEYS}
    for provider in get_snapshot().providers:
        for model in provider.models:
            for variant in model.price_variants or ():
                for key, value in variant.when.items():
                    if key in found:
                        found[key].add(value)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def context_key(context: Mapping[str, Any] | str | None) -> str:
    """The context key of a request: from a mapping (its ``attributes``, or just
    ``{"processing": "batch"}``), from its attributes as JSON text, or a context key already
    (``"processing=batch"``, ``""``), checked. Only CONTEXT_KEYS count; a value counts when it is
    text that, in lower case, some price variant declares."""
    if context is None:
        return ""
    if isinstance(context, str):
        text = context.strip()
        try:
            context = json.loads(text) if text else {}
        except ValueError:
            if text.startswith("{"):  # JSON DuckDB reads and Python does not ({"a": 1,})
                return _duckdb_context_keys([text])[0]
            if text.startswith("["):
                return ""
            pairs = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
            key = context_key(pairs)
            if key != text:
                raise ValueError(f"not a price context key: {context!r}") from None
            return key
        if not isinstance(context, dict):  # JSON, but not an object: no context keys
            return ""
    values = context_values()
    parts = []
    for name in CONTEXT_KEYS:
        for alias in CONTEXT_ALIASES[name]:
            value = context.get(alias)
            if isinstance(value, str) and value.lower() in values[name]:
                parts.append(f"{name}={value.lower()}")
                break
    return ";".join(parts)


def _price_context(key: str) -> dict[str, str] | None:
    """genai-prices' ``price_context`` of a context key; None (no context) for ``""``."""
    return dict(part.split("=", 1) for part in key.split(";")) if key else None


# JSON text of an attributes object can only hold the key ``processing`` (or ``service_tier``)
# if it holds that text or a \u escape: the cheap test before parsing the JSON.
_CONTEXT_HINTS = (*CONTEXT_KEYS, "\\u")


def may_hold_context(text: bytes) -> bool:
    """Whether raw text (a whole file's bytes) may hold a context key: False proves every row of
    it has none, so a small file's SQL need not carry :func:`context_sql`, whose planning alone
    costs ~11 ms a statement."""
    return any(h.encode() in text for h in _CONTEXT_HINTS)


def context_hint_sql(attributes: str) -> str:
    """DuckDB: whether the attributes JSON text may hold a context key (false proves
    :func:`context_sql` gives '')."""
    return "coalesce(" + " OR ".join(f"contains({attributes}, {_sql_lit(h)})"
                                      for h in _CONTEXT_HINTS) + ", false)"


def context_keys(attributes: pl.Series) -> pl.Series:
    """The context key of each attributes JSON text in ``attributes`` ("" for none), as
    :func:`context_key` gives it; the JSON is parsed only where it may hold a context key."""
    col = pl.col("a")
    hinted = pl.any_horizontal([col.str.contains(h, literal=True) for h in _CONTEXT_HINTS])
    values = context_values()

    def part(key: str) -> pl.Expr:  # "key=value" of the first alias with a declared value
        found = [pl.when(v.is_in(list(values[key]))).then(v)
                 for v in (col.str.json_path_match(_json_path(a)).str.to_lowercase()
                           for a in CONTEXT_ALIASES[key])]
        return pl.lit(f"{key}=") + pl.coalesce(found)

    out = (pl.DataFrame({"a": attributes.cast(pl.String)}).lazy()
           .select(pl.when(hinted).then(col).alias("a"))
           .select(pl.concat_str([part(k) for k in values], separator=";",
                                 ignore_nulls=True).fill_null("").alias("ctx"), col)
           .collect())
    # Hinted text where no key was found may be text Polars cannot parse (a trailing comma,
    # NaN): DuckDB reads it. Only those rows are parsed again.
    unread = out.with_row_index("i").filter((pl.col("ctx") == "") & col.is_not_null())
    odd = unread.filter(col.str.json_path_match("$").is_null())
    if odd.height:
        return out["ctx"].scatter(odd["i"], _duckdb_context_keys(odd["a"].to_list()))
    return out["ctx"]


def _duckdb_context_keys(texts: list[str]) -> list[str]:
    """:func:`context_sql` of attribute texts, for the few that Python's json or Polars cannot
    parse but DuckDB, which the SQL ingest paths and the Cost page price with, reads
    (``{"service_tier": "flex",}``, ``NaN``): so the three readers agree on them too."""
    con = connect()
    try:
        # only text DuckDB reads as JSON at all (what ingestion stores): the rest has no context
        rows = con.execute(
            f"SELECT i, {context_sql('a')} FROM (SELECT unnest($texts) AS a, "
            "generate_subscripts($texts, 1) AS i) WHERE json_valid(a)", {"texts": texts}
        ).fetchall()
    finally:
        close_connection(con)
    keys = dict(rows)
    return [keys.get(i + 1, "") for i in range(len(texts))]


def _json_path(key: str) -> str:
    """JSONPath of a top-level key (bracketed when it holds dots, as the OpenTelemetry names do)."""
    return f"$.{key}" if key.isidentifier() else f"$[{json.dumps(key)}]"


def context_sql_of(values: Mapping[str, str | list[str]]) -> str:
    """DuckDB: the context key from SQL expressions giving each context key's value as text
    (``values``: {key: expression, or expressions tried in order: the first giving a value some
    variant declares counts}; a key left out has no value)."""
    parts = []
    for name, allowed in context_values().items():
        if name not in values or not allowed:
            continue
        whens = " ".join(f"WHEN {_sql_lit(v)} THEN {_sql_lit(f'{name}={v}')}" for v in allowed)
        exprs = values[name] if isinstance(values[name], list) else [values[name]]
        cases = [f"CASE lower({e}) {whens} END" for e in exprs]
        parts.append(cases[0] if len(cases) == 1 else f"coalesce({', '.join(cases)})")
    return f"concat_ws(';', {', '.join(parts)})" if parts else "''"


def context_sql(attributes: str, top: Mapping[str, str] | None = None) -> str:
    """DuckDB: the context key ('' for none) of the attributes JSON text ``attributes`` (a
    column or expression), as :func:`context_key` and :func:`context_keys` give it.
    ``top``: {key: SQL text} of values that take precedence over the attributes' (a canonical
    line's top-level keys, which ingestion folds into its attributes over theirs)."""
    top = top or {}
    values = {k: [_sql_json_value(attributes, a) for a in CONTEXT_ALIASES[k]]
              for k in CONTEXT_KEYS}
    for k, v in top.items():  # over the attributes' own key; the aliases come after both
        values[k][0] = f"coalesce({v}, {values[k][0]})"
    # Without the hints the attributes hold no context key: skip parsing them.
    skip = f"NOT {context_hint_sql(attributes)}" + "".join(
        f" AND {v} IS NULL" for v in top.values())
    return f"(CASE WHEN {skip} THEN '' ELSE {context_sql_of(values)} END)"


def _sql_json_value(attributes: str, key: str) -> str:
    """DuckDB: the value as text of the top-level ``key`` of the JSON text ``attributes``. A key
    written twice counts with its last value, as Python's json and Polars read it (DuckDB's
    json_extract_string reads the first): the last of the object's (key, value) pairs. Where the
    quoted key appears at most once and nothing is \\u-escaped, it cannot be written twice, and
    json_extract_string (~2x faster) is used."""
    quoted = _sql_lit(json.dumps(key))
    once = (f"NOT contains({attributes}, '\\u') AND "
            f"strpos(substr({attributes}, strpos({attributes}, {quoted}) + 1), {quoted}) = 0")
    pairs = f"list_zip(json_keys({attributes}), json_extract_string({attributes}, '$.*'))"
    path = _sql_lit("$." + (key if key.isidentifier() else json.dumps(key)))
    return (f"CASE WHEN {once} THEN json_extract_string({attributes}, {path}) "
            f"ELSE list_filter({pairs}, e -> e[1] = {_sql_lit(key)})[-1][2] END")


def _frame_period(df: pl.DataFrame) -> pl.Expr:
    """The price period of each row of a frame from its ``ts``: a Date column stands for each
    day's noon UTC, as a ``date`` does in :func:`request_cost`."""
    ts = pl.col("ts")
    if df.schema["ts"] == pl.Date:
        ts = ts.cast(pl.Datetime("us")) + pl.duration(hours=12)
    return period_expr(ts)


def _frame_context(df: pl.DataFrame) -> pl.Series:
    """The context key of each row of a frame: its ``price_context`` column (context keys),
    else from its ``attributes``, else none."""
    if CONTEXT_COLUMN in df.columns:
        return df[CONTEXT_COLUMN].cast(pl.String).fill_null("").alias("ctx")
    if "attributes" in df.columns:
        return context_keys(df["attributes"]).alias("ctx")
    return pl.repeat("", len(df), dtype=pl.String, eager=True).alias("ctx")


# -- Costs ----------------------------------------------------------------------------------------

@lru_cache(maxsize=200_000)
def _catalog_cost(provider: str | None, model: str, when: datetime, input_tokens: int,
                  cached: int, cache_write: int, output: int, context: str = "",
                  cache_write_1h: int = 0, web_searches: int = 0) -> float | None:
    """USD of one call at the instant ``when`` (a :func:`price_moment`), or None if unpriced.
    ``cache_write_1h``: the part of ``cache_write`` written to a one-hour cache (genai-prices'
    convention too); ``web_searches``: searches the call made (billed per search)."""
    try:
        calc = calc_price(
            Usage(input_tokens=input_tokens, cache_read_tokens=cached,
                  cache_write_tokens=cache_write, cache_write_1h_tokens=cache_write_1h,
                  output_tokens=output, web_searches=web_searches),
            catalog_model(model), provider_id=catalog_provider(provider),
            genai_request_timestamp=when, price_context=_price_context(context),
        )
    except LookupError:
        return None
    return float(Decimal(calc.total_price))


@lru_cache(maxsize=10_000)
def _catalog_fees(provider: str | None, model: str, when: datetime, context: str = ""
                  ) -> tuple[float, float]:
    """(USD per call whatever its tokens, USD per web search) of the catalogue's model at the
    instant ``when``, (0, 0) when it has no price. An override gives prices per million
    tokens, so these fees stay the catalogue's under one: with a negotiated rate for gpt-4o's
    tokens, every web search it made cost $0 (review)."""
    base = _catalog_cost(provider, model, when, 0, 0, 0, 0, context)
    if base is None:
        return 0.0, 0.0
    n = 1000
    return base, (_catalog_cost(provider, model, when, 0, 0, 0, 0, context, 0, n) - base) / n


def request_cost(provider: str | None, model: str | None, ts: datetime | date, input_tokens: int,
                 cached_input_tokens: int = 0, cache_write_tokens: int = 0, output_tokens: int = 0,
                 overrides: dict | None = None,
                 context: Mapping[str, Any] | str | None = None,
                 cache_write_1h_tokens: int = 0, web_searches: int = 0) -> float | None:
    """USD cost of one call made at ``ts`` (a ``date``: at its noon UTC), or None when the model
    has no known price. ``context``: the request's attributes (or a context key, see
    :func:`context_key`); none: standard prices. ``cache_write_1h_tokens``: the part of
    ``cache_write_tokens`` written to a one-hour cache (Anthropic's, priced higher); an override
    prices them as its other cache writes. ``web_searches``: searches the call made, at the
    catalogue's price per search (under an override too: it prices tokens; $0 for a model the
    catalogue does not know), as a fee per call is."""
    if not model:
        return None
    if (cached_input_tokens or 0) + (cache_write_tokens or 0) > (input_tokens or 0) \
            or (cache_write_1h_tokens or 0) > (cache_write_tokens or 0):
        return None  # counts that contradict each other (cached tokens are part of input)
    overrides = load_overrides() if overrides is None else overrides
    provider, model = priced_as(overrides, provider, model)
    o = override_for(overrides, provider, model)
    if o and o.priced_as is None:
        fee, search = _catalog_fees(provider, model, price_moment(provider, model, ts),
                                    context_key(context))
        return (o.cost(input_tokens, cached_input_tokens, cache_write_tokens, output_tokens)
                + fee + int(web_searches or 0) * search)
    return _catalog_cost(provider, model, price_moment(provider, model, ts), int(input_tokens),
                         int(cached_input_tokens), int(cache_write_tokens), int(output_tokens),
                         context_key(context), int(cache_write_1h_tokens or 0),
                         int(web_searches or 0))


TOKEN_COLUMNS = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"]
# A call that did not fail and logged no token count at all (no input, no output) has an unknown
# cost, not $0: priced as zero tokens it would vanish from every cost total silently. A failed
# call without usage is $0, as providers do not bill rejected calls (429, 500, a timeout).
def usage_unlogged_sql(row: str = "p") -> str:
    """SQL true for a row (alias ``row``; "": the table's own columns) whose usage is unlogged:
    a call that did not fail with no input token count (every call reads input; priced on its
    output alone, a call with 2,000 unlogged input tokens cost a fifth of its price, and
    counted as priced), or a failed call that timed out (:func:`timed_out_sql`)."""
    c = f"{row}." if row else ""
    return (f"{c}input_tokens IS NULL AND ({c}status IS DISTINCT FROM 'error' "
            f"OR {timed_out_sql(row)})")


# A client's timeout (openai's APITimeoutError, httpx's ReadTimeout, gRPC's DEADLINE_EXCEEDED,
# "timed out"): the client gave up, but the provider may have finished the call and billed it,
# so a timed-out call that logged no usage has an unknown cost, not $0 (found in review).
TIMEOUT_PATTERN = r"(?i)time.?out|timed.?out|deadline"


def timed_out_sql(row: str = "p") -> str:
    """SQL true for a row (alias ``row`` as above) whose error type reads as a timeout."""
    c = f"{row}." if row else ""
    return f"regexp_matches(coalesce({c}error_type, ''), '{TIMEOUT_PATTERN}')"


def failed_without_usage_sql(row: str = "p") -> str:
    """SQL true for a failed call that logged no token count (alias ``row`` as above): $0
    whatever its model, even one with no price (an Anthropic batch's errored line names none:
    "unknown"), as providers do not bill rejected calls; it was an unpriced request (review).
    Not a timeout: :func:`usage_unlogged_sql`."""
    c = f"{row}." if row else ""
    return (f"{c}status = 'error' AND {c}input_tokens IS NULL AND {c}output_tokens IS NULL "
            f"AND coalesce({c}web_searches, 0) = 0 AND NOT {timed_out_sql(row)}")
# (p_write_1h: USD per token written to a one-hour cache, the whole price, not the premium)
# (p_search: USD per web search)
# (p_request: USD per call whatever its tokens, Perplexity's sonar models' request fee)
_UNIT_COLUMNS = ["p_input", "p_cached", "p_write", "p_output", "linear_below", "p_write_1h",
                 "p_search", "p_request"]
# The part of cache_write_tokens written to a one-hour cache: priced at p_write_1h.
WRITE_1H = "cache_write_1h_tokens"
# Web searches a call made: priced per search at p_search.
SEARCHES = "web_searches"
_KEYS = ["provider", "model", "price_period", "ctx"]  # what prices are looked up by


def _overrides_key(overrides: dict) -> tuple:
    return tuple(sorted(overrides.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])))


def _linear_terms(provider: str | None, model: str, at: date | datetime, overrides_key: tuple,
                  context: str = "") -> tuple[float, ...] | None:
    """(USD per uncached input, cached input, cache-write and output token, input-token count
    below which the price is linear, USD per one-hour cache-write token, USD per web search, USD
    per request whatever its tokens) for a model at ``at`` (a period's start; a date: its noon)
    in a context (a context key), or None when unpriced."""
    if any(o.priced_as is not None for _, o in overrides_key):
        provider, model = priced_as(dict(overrides_key), provider, model)
    return _linear_terms_at(provider, model, price_moment(provider, model, at), overrides_key,
                            context)


@lru_cache(maxsize=10_000)
def _linear_terms_at(provider: str | None, model: str, when: datetime, overrides_key: tuple,
                     context: str) -> tuple[float, ...] | None:
    o = override_for(dict(overrides_key), provider, model)
    if o and o.priced_as is None:
        n = MTOK
        fee, search = _catalog_fees(provider, model, when, context)
        return (o.cost(n, 0, 0, 0) / n, o.cost(n, n, 0, 0) / n, o.cost(n, 0, n, 0) / n,
                o.cost(0, 0, 0, n) / n, float("inf"), o.cost(n, 0, n, 0) / n, search, fee)
    try:
        calc = calc_price(Usage(input_tokens=0), catalog_model(model),
                          provider_id=catalog_provider(provider),
                          genai_request_timestamp=when, price_context=_price_context(context))
    except LookupError:
        return None
    # Tiered prices (e.g. above 200k input tokens) are linear only below the first tier; the
    # prices are those of the context's variant where it has one (calc.model_price).
    starts = [t.start for v in vars(calc.model_price).values()
              for t in (getattr(v, "tiers", None) or [])]
    linear_below = float(min(starts)) if starts else float("inf")
    n = 1000
    # A fee per request (Perplexity's sonar: $0.012 a call) is in every call's price: taken out
    # of the per-token prices (it made sonar's input $13/M instead of $1/M) and kept apart.
    per_request = _catalog_cost(provider, model, when, 0, 0, 0, 0, context)

    def cost(**kw):
        return (_catalog_cost(provider, model, when, kw.get("i", 0), kw.get("c", 0),
                              kw.get("w", 0), kw.get("o", 0), context, kw.get("h", 0),
                              kw.get("s", 0)) - per_request) / n

    return (cost(i=n), cost(i=n, c=n), cost(i=n, w=n), cost(o=n), linear_below,
            cost(i=n, w=n, h=n), cost(s=n), per_request)


def _units(keys: pl.DataFrame, okey: tuple) -> pl.DataFrame:
    """``keys`` (distinct provider, model, at, ctx) with their linear unit prices."""
    terms = [(_linear_terms(p, m, d, okey, c) if m else None) or (None,) * len(_UNIT_COLUMNS)
             for p, m, d, c in keys.select(_KEYS).iter_rows()]
    return keys.with_columns(
        pl.Series(name, [t[i] for t in terms], dtype=pl.Float64)
        for i, name in enumerate(_UNIT_COLUMNS)
    )


def price_frame(df: pl.DataFrame, overrides: dict | None = None) -> pl.Series:
    """``cost_usd`` for each row of a requests frame (Float64, null where unpriced).

    Needs columns provider, model, ts and the token columns (nulls count as 0; with ``status``
    and ``error_type``, a failed call without usage is $0 unless it timed out); the price context
    comes from a ``price_context`` column (context keys) or else ``attributes`` (JSON text), if
    the frame has one. Prices are linear per (provider, model, period, context) below a model's
    first price tier, so most rows are priced by a vectorized join; rows past a tier are priced
    one distinct token mix at a time. Each row is priced in its period (a time of day where the
    price depends on it).
    """
    overrides = load_overrides() if overrides is None else overrides
    okey = _overrides_key(overrides)
    unlogged = _usage_unlogged(df)
    keyed = df.select(
        pl.col("provider").cast(pl.String), pl.col("model").cast(pl.String),
        _frame_period(df).alias("price_period"),
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in TOKEN_COLUMNS],
        *[(pl.col(c).fill_null(0).cast(pl.Int64) if c in df.columns
           else pl.lit(0, pl.Int64).alias(c)) for c in (WRITE_1H, SEARCHES)],
    ).insert_column(3, _frame_context(df))
    units = _units(keyed.select(_KEYS).unique(), okey)
    joined = keyed.join(units, on=_KEYS, how="left", nulls_equal=True, maintain_order="left")
    uncached = (pl.col("input_tokens") - pl.col("cached_input_tokens")
                - pl.col("cache_write_tokens")).clip(lower_bound=0)
    linear = (uncached * pl.col("p_input") + pl.col("cached_input_tokens") * pl.col("p_cached")
              + pl.col("cache_write_tokens") * pl.col("p_write")
              + pl.col(WRITE_1H) * (pl.col("p_write_1h") - pl.col("p_write"))
              + pl.col(SEARCHES) * pl.col("p_search")
              + pl.col("output_tokens") * pl.col("p_output") + pl.col("p_request"))
    # Counts that contradict each other (cached tokens are part of input) have no price, as in
    # request_cost; ingestion quarantines such rows, so only rows appended otherwise have them.
    consistent = (pl.col("cached_input_tokens") + pl.col("cache_write_tokens")
                  <= pl.col("input_tokens")) & (pl.col(WRITE_1H) <= pl.col("cache_write_tokens"))
    joined = joined.with_columns(
        pl.when(consistent & (pl.col("input_tokens") < pl.col("linear_below"))).then(linear)
        .otherwise(None).alias("cost_usd"),
        (consistent & (pl.col("input_tokens") >= pl.col("linear_below"))).fill_null(False)
        .alias("_tiered"),
    )
    if joined["_tiered"].any():
        tiered = (joined.filter("_tiered").select(*_KEYS, *TOKEN_COLUMNS, WRITE_1H, SEARCHES)
                  .unique())
        exact = [request_cost(p, m, d, *tokens, overrides=overrides, context=c,
                              cache_write_1h_tokens=w1h, web_searches=searches)
                 for p, m, d, c, *tokens, w1h, searches in tiered.iter_rows()]
        tiered = tiered.with_columns(pl.Series("_exact", exact, dtype=pl.Float64))
        joined = joined.join(tiered, on=[*_KEYS, *TOKEN_COLUMNS, WRITE_1H, SEARCHES], how="left",
                             nulls_equal=True, maintain_order="left").with_columns(
            pl.when("_tiered").then(pl.col("_exact")).otherwise(pl.col("cost_usd")).alias("cost_usd"))
    cost = joined["cost_usd"].set(unlogged, None) if unlogged.any() else joined["cost_usd"]
    free = _failed_without_usage(df) | _cache_hits(df)
    return cost.set(free, 0.0) if free.any() else cost


def cache_hit_sql(row: str = "p") -> str:
    """SQL true for a call answered from the application's own cache (``cache_hit``, design §3):
    $0, as no provider was called, whatever tokens its log repeats of the answer it served
    (LiteLLM logs a hit with the original response's usage and a cost of 0; priced by those
    tokens, every hit was billed again in the spend)."""
    return f"coalesce({row}.cache_hit, false)" if row else "coalesce(cache_hit, false)"


def billed_where(filters=None) -> tuple[str, dict]:
    """SQL over ``requests`` (and its parameters) of the calls matching ``filters`` (a
    lib.filters.Filters; None: all) that a provider billed by their tokens: not those answered
    from the application's own cache (:func:`cache_hit_sql`), whose repeated usage priced in the
    token mix, the what-if or the cache savings counted what nobody paid for."""
    where, params = filters.where("requests") if filters is not None else ("true", {})
    return f"({where}) AND NOT {cache_hit_sql('')}", params


def _cache_hits(df: pl.DataFrame) -> pl.Series:
    """Boolean per row of ``df``: :func:`cache_hit_sql` (a $0 call)."""
    if "cache_hit" not in df.columns:
        return pl.Series([False] * df.height)
    return df["cache_hit"].cast(pl.Boolean).fill_null(False)


def _usage_unlogged(df: pl.DataFrame) -> pl.Series:
    """Boolean per row of ``df``: its cost is unknown though its model may be priced (no input
    token count logged on a call that did not fail; see :func:`usage_unlogged_sql`)."""
    if "input_tokens" not in df.columns:
        return pl.Series([False] * df.height)
    did_not_fail = (pl.col("status").cast(pl.String).ne_missing("error")
                    if "status" in df.columns else pl.lit(True))
    return df.select((pl.col("input_tokens").is_null() & (did_not_fail | _timed_out(df)))
                     .alias("unlogged")).to_series()


def _timed_out(df: pl.DataFrame) -> pl.Expr:
    """:func:`timed_out_sql` as a Polars expression over ``df``'s columns."""
    if "error_type" not in df.columns:
        return pl.lit(False)
    return pl.col("error_type").cast(pl.String).fill_null("").str.contains(TIMEOUT_PATTERN)


def _failed_without_usage(df: pl.DataFrame) -> pl.Series:
    """Boolean per row of ``df``: :func:`failed_without_usage_sql` (a $0 call)."""
    if not {"status", "input_tokens", "output_tokens"} <= set(df.columns):
        return pl.Series([False] * df.height)
    searches = pl.col(SEARCHES).fill_null(0) if SEARCHES in df.columns else pl.lit(0)
    return df.select((pl.col("status").cast(pl.String).eq_missing("error")
                      & pl.col("input_tokens").is_null() & pl.col("output_tokens").is_null()
                      & (searches == 0) & ~_timed_out(df)).alias("free")).to_series()


def unit_prices(provider: str | None, model: str, day: date | datetime,
                overrides: dict | None = None,
                context: Mapping[str, Any] | str | None = None) -> dict[str, float] | None:
    """USD per token of each kind (uncached input, cached input, cache write, output; per web
    search; and ``request``: per call whatever its tokens, a fee few models have) for a model at
    ``day`` (a datetime: in its price period; a date: at its noon UTC) at the base tier, in a
    price context (see :func:`context_key`; none: standard prices), or None if unpriced. Used
    for what-if and cache savings."""
    context = context_key(context)
    base = request_cost(provider, model, day, 0, 0, 0, 0, overrides, context)
    if base is None:
        return None
    def f(**kw):  # (the request's fee taken out: it is not a token's price)
        return request_cost(provider, model, day, overrides=overrides, context=context,
                            **kw) - base

    n = 1000
    return {
        "request": base,
        "input": f(input_tokens=n) / n,
        "cached_input": f(input_tokens=n, cached_input_tokens=n) / n,
        "cache_write": f(input_tokens=n, cache_write_tokens=n) / n,
        "cache_write_1h": f(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n) / n,
        "web_search": f(input_tokens=0, web_searches=n) / n,
        "output": f(input_tokens=0, output_tokens=n) / n,
    }


def tier_start(provider: str | None, model: str, at: date | datetime,
               overrides: dict | None = None, context: str = "") -> float | None:
    """The input-token count from which a call to ``model`` at ``at`` (a period's start; a date:
    its noon) in the price context ``context`` (a context key) is billed past the base tier
    (claude-sonnet-4-5: 200,000), ``inf`` for a model without tiers, None when unpriced."""
    overrides = load_overrides() if overrides is None else overrides
    terms = _linear_terms(provider, model, at, _overrides_key(overrides), context) \
        if model else None
    return None if terms is None else terms[4]


def unit_prices_at(provider: str | None, model: str, at: date | datetime, input_tokens: int,
                   overrides: dict | None = None, context: str = "") -> dict[str, float] | None:
    """:func:`unit_prices` for a call of ``input_tokens`` input tokens: past a price tier
    (:func:`tier_start`), the tier's. A tier is crossed by the whole prompt and then prices every
    token of the call, as genai-prices bills it. None when unpriced."""
    overrides = load_overrides() if overrides is None else overrides
    n = int(input_tokens)
    if n <= 0:
        return unit_prices(provider, model, at, overrides, context)

    def f(**kw):
        return request_cost(provider, model, at, overrides=overrides, context=context, **kw)

    base = f(input_tokens=0)
    if base is None:
        return None
    whole = f(input_tokens=n)  # (the request's fee taken out below: it is not a token's price)
    return {
        "request": base,
        "input": (whole - base) / n,
        "cached_input": (f(input_tokens=n, cached_input_tokens=n) - base) / n,
        "cache_write": (f(input_tokens=n, cache_write_tokens=n) - base) / n,
        "cache_write_1h": (f(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n)
                           - base) / n,
        "output": (f(input_tokens=n, output_tokens=MTOK) - whole) / MTOK,
    }


def cache_savings_frame(df: pl.DataFrame, overrides: dict | None = None) -> pl.Series:
    """``cache_savings_usd`` per row of a requests frame (Float64; null where unpriced; 0 for a
    call answered from the application's own cache, with a ``cache_hit`` column).

    What the cached input tokens would have cost at the full input price minus what they cost:
    ``cached_input_tokens × (input price − cached input price)`` in the request's period, in its
    price context (a batch request saves at batch prices). A row past its model's first price
    tier (claude-sonnet-4-5 above 200k input tokens) is billed at the tier's prices, and saves at
    them: its price with no cached tokens minus its price. Needs provider, model, ts and
    cached_input_tokens (and input_tokens, cache_write_tokens, output_tokens to tell rows past a
    tier; without input_tokens every row counts at the base tier); the context as in
    :func:`price_frame`.
    """
    overrides = load_overrides() if overrides is None else overrides
    okey = _overrides_key(overrides)
    mix = [pl.col(c).fill_null(0).cast(pl.Int64) for c in TOKEN_COLUMNS if c in df.columns]
    keyed = df.select(
        pl.col("provider").cast(pl.String), pl.col("model").cast(pl.String),
        _frame_period(df).alias("price_period"), *mix,
    ).insert_column(3, _frame_context(df))
    units = _units(keyed.select(_KEYS).unique(), okey).select(*_KEYS, "p_input", "p_cached",
                                                            "linear_below")
    joined = keyed.join(units, on=_KEYS, how="left", nulls_equal=True, maintain_order="left")
    linear = pl.col("cached_input_tokens") * (pl.col("p_input") - pl.col("p_cached"))
    if "input_tokens" not in joined.columns:
        return joined.select(linear.alias("cache_savings_usd"))["cache_savings_usd"]
    joined = joined.with_columns(
        *[pl.lit(0, pl.Int64).alias(c) for c in TOKEN_COLUMNS if c not in joined.columns])
    past = ((pl.col("input_tokens") >= pl.col("linear_below"))
            & (pl.col("cached_input_tokens") > 0)).fill_null(False)
    joined = joined.with_columns(linear.alias("cache_savings_usd"), past.alias("_past"))
    if joined["_past"].any():
        mixes = joined.filter("_past").select(*_KEYS, *TOKEN_COLUMNS).unique()
        exact = [_past_tier_saving(p, m, d, c, *tokens, overrides=overrides)
                 for p, m, d, c, *tokens in mixes.iter_rows()]
        mixes = mixes.with_columns(pl.Series("_exact", exact, dtype=pl.Float64))
        joined = joined.join(mixes, on=[*_KEYS, *TOKEN_COLUMNS], how="left", nulls_equal=True,
                             maintain_order="left").with_columns(
            pl.when("_past").then(pl.col("_exact")).otherwise(pl.col("cache_savings_usd"))
            .alias("cache_savings_usd"))
    hits = _cache_hits(df)  # (no provider call: nothing billed, nothing saved on its prices)
    return joined["cache_savings_usd"].set(hits, 0.0) if hits.any() \
        else joined["cache_savings_usd"]


def _past_tier_saving(provider, model, at, context, input_tokens, cached, cache_write, output,
                      overrides) -> float | None:
    """USD saved by one call's cached tokens when it is priced past a tier: its price with none
    of its input cached minus its price (None: unpriced, or counts that contradict each other).
    ``at``: the call's time or price period."""
    full = request_cost(provider, model, at, input_tokens, 0, cache_write, output, overrides,
                        context)
    made = request_cost(provider, model, at, input_tokens, cached, cache_write, output,
                        overrides, context)
    return None if full is None or made is None else full - made


def request_cache_savings(provider: str | None, model: str | None, ts: datetime | date,
                          cached_input_tokens: int, overrides: dict | None = None,
                          context: Mapping[str, Any] | str | None = None, *,
                          input_tokens: int | None = None, cache_write_tokens: int = 0,
                          output_tokens: int = 0) -> float | None:
    """USD saved on one call by its cached input tokens (full input price minus cached price),
    or None when the model has no known price. Given the call's ``input_tokens``, a call past its
    model's first price tier saves at the tier's prices (its price with no cached tokens minus
    its price); without them, at the base tier's."""
    if not model:
        return None
    if input_tokens is not None and cached_input_tokens:
        overrides = load_overrides() if overrides is None else overrides
        terms = _linear_terms(provider, model, ts, _overrides_key(overrides),
                              context_key(context))
        if terms is not None and input_tokens >= terms[4]:
            return _past_tier_saving(provider, model, ts, context_key(context), input_tokens,
                                     cached_input_tokens, cache_write_tokens, output_tokens,
                                     overrides)
    units = unit_prices(provider, model, ts, overrides, context)
    if units is None:
        return None
    return cached_input_tokens * (units["input"] - units["cached_input"])


def past_tier_savings(engine, where: str, params: dict, keys, overrides: dict | None = None
                      ) -> float:
    """USD to add to cache savings counted at base-tier prices (cached tokens × (input −
    cached input price) per (provider, model, period, context key)) so that the requests past their
    model's first price tier count at the tier's prices: over the requests matching ``where``
    (SQL over ``requests``, with ``params``) that have cached tokens and are past a tier, their
    price with no cached tokens minus their price, minus their base-tier savings. ``keys``: the
    (provider, model, period (:func:`period_sql`), context key) of the requests with cached
    tokens. Only models with tiers are looked at, and only their requests past the tier are read,
    one per distinct token mix."""
    overrides = load_overrides() if overrides is None else overrides
    okey = _overrides_key(overrides)
    tiers = {}
    for p, m, d, c in keys:
        terms = _linear_terms(p, m, d, okey, c or "") if m else None
        if terms is not None and math.isfinite(terms[4]):
            tiers[(p, m, d, c or "")] = terms
    if not tiers:
        return 0.0
    values = ", ".join(
        f"({'NULL' if p is None else _sql_lit(p)}, {_sql_lit(m)}, "
        f"TIMESTAMP '{d.isoformat(sep=' ')}', "
        f"{_sql_lit(c)}, {int(t[4])})" for (p, m, d, c), t in tiers.items())
    ctx = context_sql("CAST(r.attributes AS VARCHAR)")
    at = period_sql("r.ts")
    rows = engine.query(
        f"SELECT r.provider, r.model, {at} AS price_period, {ctx} AS ctx, "
        "coalesce(r.input_tokens, 0) AS i, r.cached_input_tokens AS c, "
        "coalesce(r.cache_write_tokens, 0) AS w, coalesce(r.output_tokens, 0) AS o, "
        f"count(*) AS n FROM (SELECT * FROM requests WHERE {where} "
        "AND coalesce(cached_input_tokens, 0) > 0) r "
        f"JOIN (VALUES {values}) t(tp, tm, td, tc, lb) ON t.tp IS NOT DISTINCT FROM r.provider "
        f"AND t.tm = r.model AND t.td = {at} AND t.tc = {ctx} "
        "WHERE coalesce(r.input_tokens, 0) >= t.lb GROUP BY ALL", params)
    correction = 0.0
    for p, m, d, c, i, cached, w, o, n in rows.iter_rows():
        exact = _past_tier_saving(p, m, d, c, i, cached, w, o, overrides)
        terms = tiers[(p, m, d, c)]
        if exact is not None:
            correction += n * (exact - cached * (terms[0] - terms[1]))
    return correction


def cache_savings_sql(engine, filters=None) -> float | None:
    """Total cache savings in USD over the requests matching ``filters`` (a lib.filters.Filters),
    or None when no priced request has cached tokens. Aggregates in SQL per (provider, model,
    price period, price context) so only the distinct models are priced in Python, then counts the
    requests past a price tier at the tier's prices (:func:`past_tier_savings`)."""
    where, params = billed_where(filters)
    per = engine.query(
        f"SELECT provider, model, {period_sql('ts')} AS price_period, "
        f"{context_sql('attributes')} AS {CONTEXT_COLUMN}, "
        "sum(coalesce(cached_input_tokens, 0)) AS cached "
        f"FROM requests WHERE {where} AND coalesce(cached_input_tokens, 0) > 0 "
        "GROUP BY ALL", params)
    if per.is_empty():
        return None
    frame = per.with_columns(pl.col("price_period").alias("ts"),
                             pl.col("cached").alias("cached_input_tokens"))
    savings = cache_savings_frame(frame)
    if savings.null_count() == len(savings):
        return None
    return float(savings.sum()) + past_tier_savings(
        engine, where, params,
        per.select("provider", "model", "price_period", CONTEXT_COLUMN).rows())


NO_PRICE = "no price"
NO_USAGE = "no input token count logged"
TIMED_OUT = "timed out, no usage logged"


def unpriced_models(engine, filters=None) -> pl.DataFrame:
    """Models whose requests have no cost, with their request counts, most requests first:
    columns provider, model, reason, answered_as (the distinct models that answered, as the
    responses name them: what a ``priced_as`` override may name), requests, first_seen,
    last_seen. ``reason`` is
    :data:`NO_PRICE` (no catalogue price and no override), :data:`NO_USAGE` (a call that did
    not fail logged no input tokens) or :data:`TIMED_OUT` (a call that timed out did not: it may
    have been billed). ``filters`` is an optional
    lib.filters.Filters."""
    where, params = filters.where("requests") if filters is not None else ("true", {})
    return engine.query(
        "SELECT provider, model, CASE "
        f"WHEN status = 'error' AND {usage_unlogged_sql('')} THEN '{TIMED_OUT}' "
        f"WHEN {usage_unlogged_sql('')} THEN '{NO_USAGE}' ELSE '{NO_PRICE}' END "
        "AS reason, string_agg(DISTINCT response_model, ', ' ORDER BY response_model) "
        "AS answered_as, count(*) AS requests, min(ts) AS first_seen, "
        f"max(ts) AS last_seen FROM requests WHERE {where} AND cost_usd IS NULL "
        "AND model IS NOT NULL GROUP BY ALL ORDER BY requests DESC, provider, model, reason",
        params)


def alias_suggestions(unpriced: pl.DataFrame, prices_file: Path | None = None) -> str | None:
    """prices.yaml text pricing each model of :func:`unpriced_models` without a price (reason
    NO_PRICE) as the one model that answered for it, when that model has a catalogue price: an
    Azure deployment's name answered as ``gpt-4o-2024-08-06``. None when no model has such a
    suggestion. A suggestion, never applied: a deployment may be billed otherwise (provisioned
    throughput). The text is what to add at the end of ``prices_file``: the list's items alone,
    indented as its own, when the file has a ``models:`` list already (a second ``models:``
    pasted below the first is refused, "written twice", which stopped every ingest and
    reprice), else a ``models:`` list."""
    # Names alike but for case or surrounding spaces ("Prod-Deploy", "prod-deploy") are one
    # override, as load_overrides keys them: a line for each made a file it refuses ("listed
    # twice"), which stopped every ingest and reprice once pasted (review). One line for them
    # all (the spelling with the most requests), and none where they answered as other models.
    spellings: dict[tuple[str | None, str], list[tuple]] = {}
    for provider, model, reason, answered in unpriced.select(
            "provider", "model", "reason", "answered_as").iter_rows():
        if reason == NO_PRICE:
            spellings.setdefault(_override_key(provider, model), []).append(
                (provider, model, answered))
    items = []
    for alike in spellings.values():
        provider, model, _ = alike[0]
        answers = {a for *_, said in alike if said for a in said.split(", ")}
        if len(answers) != 1:
            continue
        (answered,) = answers
        if any(answered == m for _, m, _ in alike):
            continue
        if _alias_problem({}, Override(provider=provider, model=model, input_per_mtok=None,
                                       output_per_mtok=None, priced_as=answered)):
            continue  # the model that answered has no price either
        items.append({**({"provider": provider} if provider else {}), "model": model,
                      "priced_as": answered})
    if not items:
        return None
    # Names as they are spelt ("café-prod", not PyYAML's default "caf\xE9-prod", which its
    # user could not recognise in the list, review), unless one holds a character that would
    # hide or reorder what is read (a bidi control): all escaped then, as a terminal shows them.
    spelt = not any(terminal_text(v) != v for item in items for v in item.values())
    indent = _models_list_indent(prices_file)
    if indent is None:
        return yaml.safe_dump({"models": items}, sort_keys=False, allow_unicode=spelt)
    return "".join(" " * indent + line for line in
                   yaml.safe_dump(items, sort_keys=False, allow_unicode=spelt)
                   .splitlines(keepends=True))


def _models_list_indent(prices_file: Path | None) -> int | None:
    """The column of the items of the ``models:`` list ``prices_file`` ends with, where more
    items can be added at its end (its only key is ``models``: load_overrides refuses others);
    0 for a ``models:`` with nothing under it yet; None when the file has no such list (absent,
    not YAML, no ``models`` key, or a flow list ``models: []``, which no line can extend)."""
    try:
        root = yaml.compose(prices_file.read_text(encoding="utf-8")) if prices_file else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value != "models":
            continue
        if isinstance(value, yaml.SequenceNode) and value.flow_style is not True and value.value:
            return value.start_mark.column
        if isinstance(value, yaml.ScalarNode) and value.value == "" and value.style is None:
            return 0  # `models:` alone: a list may start below it
    return None


def models_line_to_replace(prices_file: Path | None) -> str | None:
    """The line of ``prices_file`` that :func:`alias_suggestions`' ``models:`` block goes in
    place of: ``models: []`` or a null ``models: ~``, which no line added at the end extends
    (added there, the block was a second ``models:``, refused as written twice, which stopped
    every ingest and reprice); None for any other file, where the lines go at its end."""
    try:
        text = prices_file.read_text(encoding="utf-8") if prices_file else ""
        root = yaml.compose(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        empty_flow = (isinstance(value, yaml.SequenceNode) and value.flow_style is True
                      and not value.value)
        null = (isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null"
                and value.value != "")  # (`models:` alone takes a list below it)
        if key.value == "models" and (empty_flow or null) \
                and key.start_mark.line == value.end_mark.line:
            # (up to the value: a comment after it is the user's text, not shown)
            return text.splitlines()[key.start_mark.line][:value.end_mark.column]
    return None


_PRICED_COLUMNS = ["provider", "model", "ts", "status", "error_type", *TOKEN_COLUMNS, WRITE_1H,
                   SEARCHES, "attributes", "cache_hit"]


def _pricing_frame(table: pa.Table) -> pl.DataFrame:
    """What :func:`price_frame` reads of a canonical requests table."""
    return pl.from_arrow(table.select([c for c in _PRICED_COLUMNS
                                       if c in table.schema.names]))


def price_table(table: pa.Table, overrides: dict | None = None) -> pa.Table:
    """A canonical requests Arrow table with ``cost_usd`` from the cost engine (each row in its
    price context, from its ``attributes``).

    A source's own cost belongs in ``logged_cost_usd``; a ``cost_usd`` the input carried is
    kept there when ``logged_cost_usd`` is null, so it stays comparable and is never mistaken for
    ours. Returns a new table (same schema)."""
    if table.num_rows == 0:
        return table
    cost = price_frame(_pricing_frame(table), overrides).to_arrow()
    logged_i = table.schema.get_field_index("logged_cost_usd")
    logged = pc.coalesce(table.column("logged_cost_usd"), table.column("cost_usd"))
    table = table.set_column(logged_i, table.schema.field(logged_i), logged)
    cost_i = table.schema.get_field_index("cost_usd")
    return table.set_column(cost_i, table.schema.field(cost_i), pa.chunked_array([cost]))


# -- In SQL: the DuckDB ingest paths price rows with tables of these prices -----------------------

def sql_units_on(ctx: str, at: str | None = None) -> str:
    """The join condition of table ``units`` (alias ``u``) to a row ``p`` whose context key is
    the SQL ``ctx`` (``context_sql("p.attributes")``, a column holding it, or ``''``) and whose
    price period is the SQL ``at`` (default ``period_sql("p.ts")``; the units' keys must have
    been made with the same expression)."""
    at = at or period_sql("p.ts")
    return ("u.provider IS NOT DISTINCT FROM p.provider AND u.model IS NOT DISTINCT FROM p.model "
            f"AND u.price_period = {at} AND u.ctx = {ctx}")


def sql_price_joins(ctx: str, at: str | None = None) -> str:
    """The joins giving rows ``p`` their unit prices ``u`` and, past a price tier, their exact
    cost ``x.cost`` (tables of :func:`sql_units` and :func:`sql_tiered`); the cost is
    lib.ingest.pipeline.output_select's ``cost_usd``. ``ctx`` and ``at`` as in
    :func:`sql_units_on`."""
    return (f" LEFT JOIN units u ON {sql_units_on(ctx, at)} "
            "LEFT JOIN tiered x ON x.provider IS NOT DISTINCT FROM p.provider "
            "AND x.model IS NOT DISTINCT FROM p.model AND x.price_period = u.price_period "
            f"AND x.ctx = {ctx} "
            "AND x.input_tokens = coalesce(p.input_tokens, 0) "
            "AND x.cached_input_tokens = p.cached_input_tokens "
            "AND x.cache_write_tokens = p.cache_write_tokens "
            "AND x.cache_write_1h_tokens = p.cache_write_1h_tokens "
            "AND x.web_searches = p.web_searches "
            "AND x.output_tokens = coalesce(p.output_tokens, 0)")


def sql_units(con, keys, overrides: dict) -> list:
    """Register table ``units``: the linear unit prices of each (provider, model, period, context
    key) in ``keys`` (a period as :func:`period_sql` gives it); returns each one's
    ``linear_below`` (the input tokens where tiers start), None where unpriced."""
    okey = _overrides_key(overrides)
    keys = list(keys)
    # (no period: a row without a time, which validation quarantines)
    terms = [(_linear_terms(p, m, at, okey, c) if m and at is not None else None)
             or (None,) * len(_UNIT_COLUMNS)
             for p, m, at, c in keys]
    columns = list(zip(*keys, strict=True)) if keys else [(), (), (), ()]
    con.register("units_arrow", pa.table({
        "provider": pa.array(columns[0], pa.string()),
        "model": pa.array(columns[1], pa.string()),
        "price_period": pa.array(columns[2], pa.timestamp("us")),
        "ctx": pa.array(columns[3], pa.string()),
        **{n: pa.array([t[i] for t in terms], pa.float64())
           for i, n in enumerate(_UNIT_COLUMNS)}}))
    con.execute("CREATE OR REPLACE TEMP TABLE units AS SELECT * FROM units_arrow")
    con.unregister("units_arrow")
    return [t[4] for t in terms]


def sql_tiered(con, rows_past_tier: str | None, overrides: dict, params=None,
               ctx: str = "''") -> None:
    """Register table ``tiered``: the exact cost of each distinct (provider, model, period,
    context, token mix) of the rows ``FROM {rows_past_tier}`` (rows ``p`` joined to their
    ``units`` row ``u``, past their model's first price tier, with ``ctx`` their context key's
    SQL; None: no such rows)."""
    tiered = con.execute(
        f"SELECT DISTINCT p.provider, p.model, u.price_period, {ctx}, "
        f"coalesce(p.input_tokens, 0), p.cached_input_tokens, p.cache_write_tokens, "
        f"coalesce(p.output_tokens, 0), p.cache_write_1h_tokens, p.web_searches "
        f"FROM {rows_past_tier}",
        params or {}).fetchall() if rows_past_tier else []
    con.execute("CREATE OR REPLACE TEMP TABLE tiered (provider VARCHAR, model VARCHAR, "
                "price_period TIMESTAMP, ctx VARCHAR, input_tokens BIGINT, "
                "cached_input_tokens BIGINT, cache_write_tokens BIGINT, output_tokens BIGINT, "
                "cache_write_1h_tokens BIGINT, web_searches BIGINT, cost DOUBLE)")
    if tiered:
        con.executemany("INSERT INTO tiered VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (*row, request_cost(row[0], row[1], row[2], *row[4:8], overrides=overrides,
                                context=row[3], cache_write_1h_tokens=row[8],
                                web_searches=row[9]))
            for row in tiered])


def reprice(lake, overrides: dict | None = None, dry_run: bool = False) -> dict:
    """Recompute ``cost_usd`` of every stored request with the current prices and overrides.

    One atomic commit (kind ``reprice``) replaces the day partitions whose costs changed;
    readers see all old costs or all new ones. Runs under the lake's writer lock, one day in
    memory at a time. Returns {rows, changed_rows, before_usd, after_usd, unpriced_before,
    unpriced_after, days_rewritten, dry_run, overrides_matching_nothing (their "provider/model"
    or model names)}; with ``dry_run`` nothing is written.
    """
    import pyarrow.parquet as pq

    from lib import schema
    from lib.store.lake import _partition_day, refuse_unreadable

    overrides = load_overrides() if overrides is None else overrides
    stats = {"rows": 0, "changed_rows": 0, "before_usd": 0.0, "after_usd": 0.0,
             "unpriced_before": 0, "unpriced_after": 0, "days_rewritten": 0, "dry_run": dry_run}
    matched: set[int] = set()  # (ids of the overrides some stored request matched)
    with lake.writer_lock():
        files = lake.snapshot().files["requests"]
        refuse_unreadable(lake.root, files, "reprice")
        by_day: dict[str, list[str]] = {}
        for rel in files:
            by_day.setdefault(_partition_day(rel), []).append(rel)

        def recompute(day: str):
            def run():
                table = pa.concat_tables([schema.conform(pq.read_table(lake.root / rel),
                                                         schema.REQUESTS) for rel in by_day[day]])
                new = price_frame(_pricing_frame(table), overrides)
                if overrides:
                    pairs = table.select(["provider", "model"]).group_by(
                        ["provider", "model"]).aggregate([]).to_pylist()
                    matched.update(id(o) for o in (override_for(overrides, r["provider"],
                                                                r["model"] or "")
                                                   for r in pairs) if o is not None)
                old = pl.from_arrow(table.column("cost_usd")).cast(pl.Float64)
                changed = int((~old.eq_missing(new)).sum())
                stats["rows"] += table.num_rows
                stats["changed_rows"] += changed
                stats["before_usd"] += float(old.sum() or 0.0)
                stats["after_usd"] += float(new.sum() or 0.0)
                stats["unpriced_before"] += old.null_count()
                stats["unpriced_after"] += new.null_count()
                if not changed or dry_run:
                    return None
                stats["days_rewritten"] += 1
                i = table.schema.get_field_index("cost_usd")
                return table.set_column(i, table.schema.field(i),
                                        pa.chunked_array([new.to_arrow()]))
            return run

        jobs = {day: recompute(day) for day in sorted(by_day)}
        if dry_run:
            for job in jobs.values():
                job()
        else:
            lake.rewrite("requests", jobs, kind="reprice", source="reprice",
                         info={"overrides": len(overrides)})
    # An override no stored request matches is most often a typo ("gpt4o"): it prices nothing,
    # and said nothing (found in review)
    stats["overrides_matching_nothing"] = sorted(
        {f"{o.provider}/{o.model}" if o.provider else o.model
         for o in overrides.values() if id(o) not in matched})
    return stats
