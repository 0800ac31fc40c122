"""Row validation: every row a format produces is typed, range-checked and normalized here, in one
DuckDB query per chunk. Bad rows become quarantine rows (file, line, raw, reason); good rows go on.

What a format hands in is lenient: any subset of a table's canonical columns, of any plausible
type (numbers as strings from CSV, timestamps as ISO text or epoch numbers, attributes as a JSON
object or text), plus optional ``_line`` (1-based source line). Columns that are not canonical and
do not start with ``_`` are folded into ``attributes``, so nothing a user logged is lost; a format
that gathers such keys itself hands them in as ``_extras`` (:data:`EXTRAS_COLUMN`: a JSON object as
text, or null), merged the same way. A row's extras are the extra keys it has with a non-null
value: a null one (absent from the row, or written ``"key": null``) adds nothing, on every path,
so the row's attributes never depend on which other rows came with it.

Rules (design §3): required fields present; integers integral; no negative tokens, latencies or
costs; ``cached_input_tokens + cache_write_tokens <= input_tokens`` (input includes both; given
without input, they are quarantined too, as is ``reasoning_tokens`` without ``output_tokens``);
``reasoning_tokens <= output_tokens``; ``cache_write_1h_tokens <= cache_write_tokens``; no
value past :data:`UPPER_BOUNDS` (a week of latency, a billion tokens, a million dollars);
timestamps between 2000-01-01 and now + 1 day; status is ``ok`` or ``error``. An ``eval_id`` may
be derived from (run_id, case_id, metric, epoch, and the dataset, model and version when any is
given) and an ``event_id`` from (ts, kind, service, version, title).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lib import pricing, schema
from lib.ingest.base import Reject
from lib.ingest.values import REASON_SEPARATOR
from lib.schema import sql_identifier as _q
from lib.schema import sql_literal as _lit
from lib.store.connections import connect

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
ID_SEP = "\x1f"  # separates the parts of a derived id; never appears in real values
EXTRAS_COLUMN = "_extras"  # extra keys a format gathered itself: a JSON object (text) or null
# A row's record as its file has it (text), kept as the quarantine's raw when the row fails; a
# format gives it where a line of text is the record (CSV), else raw is rebuilt from the fields.
RAW_TEXT_COLUMN = "_raw"

REQUIRED = {
    "requests": ["request_id", "ts", "model"],
    "evals": ["eval_id", "ts", "metric"],
    "events": ["event_id", "ts"],
    "spans": ["span_id", "ts"],
}
NON_NEGATIVE = {
    "requests": ["input_tokens", "cached_input_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "latency_ms",
                 "ttft_ms", "cost_usd", "logged_cost_usd", "web_searches"],
    "evals": ["epoch"],
    "spans": ["duration_ms"],
}
# Beyond these a value is a logging fault, not a call (a latency of 1e308 ms would own every
# chart's axis and every mean): at most a week (a batch job's wait included), a billion tokens
# (a thousand times the largest context window), a million dollars.
UPPER_BOUNDS = {
    "requests": {"latency_ms": (7 * 86400 * 1000, "ms, 7 days"),
                 "ttft_ms": (7 * 86400 * 1000, "ms, 7 days"),
                 **{c: (10**9, "tokens") for c in (
                     "input_tokens", "cached_input_tokens", "cache_write_tokens",
                     "cache_write_1h_tokens", "output_tokens", "reasoning_tokens")},
                 "web_searches": (10**6, "searches"),
                 "cost_usd": (10**6, "USD"), "logged_cost_usd": (10**6, "USD")},
    "spans": {"duration_ms": (7 * 86400 * 1000, "ms, 7 days")},
}
# Absent subset counts mean "none of that kind".
ZERO_IF_NULL = {"requests": ["cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                             "reasoning_tokens", "web_searches"]}
STATUS_SYNONYMS = {"ok": "ok", "success": "ok", "succeeded": "ok", "unset": "ok",
                   "error": "error", "failed": "error", "failure": "error", "err": "error"}


@dataclass
class Validated:
    """``table``: the good rows with exactly the canonical columns (lineage still null);
    ``quarantine``: one QUARANTINE row per bad row; ``lines``: each good row's source line
    (null where the format gave none)."""

    table: pa.Table
    quarantine: pa.Table
    lines: pa.ChunkedArray


# Names stored without the spaces, tabs or line ends around them (a logger's stray "gpt-4o "),
# and null when nothing else is left: the dimensions a page filters and groups on too, where
# "c1 " beside "c1" split a customer, and an empty customer was a sidebar choice no link kept.
TRIMMED_NAMES = ("provider", "model", "response_model", "operation", "environment", "service",
                 "feature", "app_version", "prompt_name", "prompt_version", "user_id",
                 "customer_id", "session_id", "finish_reason", "error_type", "guardrail",
                 "guardrail_action")


def trimmed_name_sql(expr: str) -> str:
    """SQL of the text ``expr`` without the spaces, tabs and line ends around it (null when
    nothing else is left: no name)."""
    return f"nullif(trim({expr}, chr(32) || chr(9) || chr(10) || chr(13)), '')"


def blank_sql(expr: str) -> str:
    """SQL: true when the text ``expr`` is empty or only spaces, tabs and line ends (null when
    null). For a check on text kept as it is: :func:`trimmed_name_sql`'s copy of each value cost
    the fast path 0.15 s a million ids, this no time it could measure."""
    return f"regexp_full_match({expr}, '[ \\t\\r\\n]*')"


def derive_eval_id(run_id, case_id, metric, epoch, dataset=None, model=None, version=None
                   ) -> str:
    """The stable eval id of (run_id, case_id, metric, epoch), and of the dataset, model and
    version when any is given; same as the SQL in :func:`validate`.

    ``epoch`` is an integer or None: anything else raises ValueError ("epoch is not an integer:
    abc"), as validation quarantines it; int() would cut 1.5 or True to an id of a real epoch.
    """
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise ValueError(f"epoch is not an integer: {str(epoch)[:60]}")
    parts = [str(run_id), str(case_id), str(metric), "" if epoch is None else str(epoch)]
    if dataset is not None or model is not None or version is not None:
        parts += ["" if v is None else str(v) for v in (dataset, model, version)]
    return hashlib.sha256(ID_SEP.join(parts).encode()).hexdigest()[:32]


_local = threading.local()


def _con() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        # A memory limit keeps DuckDB's buffer pool from holding on to every chunk's result
        # (it would otherwise cache up to 80% of RAM); one chunk needs far less.
        con = connect(config={"autoinstall_known_extensions": False,
                              "autoload_known_extensions": False,
                              "memory_limit": "512MB", "threads": 2})
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def _is_json_object(expr: str) -> str:
    """SQL: ``expr`` (text) is a JSON object. A CASE, not AND: DuckDB evaluates both sides of an
    AND, and json_type of text that is not JSON raises (failing the whole file)."""
    return f"(CASE WHEN json_valid({expr}) THEN json_type({expr}) = 'OBJECT' ELSE false END)"


def _epoch(expr: str) -> str:
    # Epoch numbers: the magnitude tells the unit (s < 1e11 < ms < 1e14 < µs < 1e17 < ns < 1e19).
    # Larger, NaN or infinite is no time (NULL: the row is quarantined); to_timestamp would raise
    # and fail the whole file.
    return (f"CASE WHEN abs({expr}) < 1e11 THEN to_timestamp({expr}) "
            f"WHEN abs({expr}) < 1e14 THEN to_timestamp({expr} / 1e3) "
            f"WHEN abs({expr}) < 1e17 THEN to_timestamp({expr} / 1e6) "
            f"WHEN abs({expr}) < 1e19 THEN to_timestamp({expr} / 1e9) END")


# A date and a time of hours and minutes, then "Z" or an offset (see text_timestamp_sql).
_MINUTES_THEN_OFFSET = r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d)(Z|[+-]\d)"
# "Z" or an offset, then a zone's name in brackets, ending the text (see text_timestamp_sql).
_OFFSET_THEN_ZONE = r"(Z|[+-]\d\d(:?\d\d)?)\[[^\]]+\]$"


def text_timestamp_sql(expr: str) -> str:
    """SQL giving the text ``expr`` as a TIMESTAMPTZ (NULL when it is no time): ISO 8601 text, one
    without an offset or zone read as UTC, else an epoch number (:func:`_epoch`).

    Every row's time is its own text's. DuckDB's ICU cast to TIMESTAMPTZ keeps the zone NAME of
    an earlier row ("2024-06-01T09:00:00 America/New_York") for later rows of the same vector
    that name none: "2024-06-01T12:00" read 4 hours off after it, and right alone. So text
    without an offset (no "+", and no "-" after the time's ":") goes through the plain
    TIMESTAMP cast, as UTC ("Z" and " UTC" included, which it reads as UTC too); only text with
    an offset (which the ICU cast honours whatever came before) or a zone name (which the
    TIMESTAMP cast refuses) goes through the ICU cast.

    A time of hours and minutes with an offset ("2026-11-01T10:00Z", "10:00+02:00": ISO 8601,
    and what Java's OffsetDateTime and Python's ``isoformat(timespec="minutes")`` write on the
    minute) is read with ":00" seconds: both casts refuse it, where they take "10:00" alone, so
    such rows were quarantined as no timestamp. So is a zone's name in brackets after the offset
    ("2026-11-01T10:00:00.5+01:00[Europe/Paris]", "...Z[UTC]": Java's ZonedDateTime, RFC 9557),
    which the offset says all of for an instant. (Last, so the other rows never pay for it.)"""
    fixed = (f"regexp_replace(regexp_replace({expr}, {_lit(_MINUTES_THEN_OFFSET)}, "
             f"'\\1:00\\2'), {_lit(_OFFSET_THEN_ZONE)}, '\\1')")
    # (coalesce evaluates each argument for every row: the regexps only where an offset follows
    # the minutes or a bracket ends the text, a CASE's branch being evaluated for its rows alone)
    return (f"coalesce({_iso_sql(expr)}, {_epoch(f'TRY_CAST({expr} AS DOUBLE)')}, "
            f"CASE WHEN substr({expr}, 17, 1) IN ('Z', '+', '-') OR suffix({expr}, ']') "
            f"THEN coalesce({_iso_sql(fixed)}) END)")


def _iso_sql(expr: str) -> str:
    """SQL: two arguments of a coalesce reading ISO 8601 text (:func:`text_timestamp_sql`)."""
    return (f"CASE WHEN NOT ({expr} LIKE '%+%' OR {expr} LIKE '%:%-%') "
            f"THEN timezone('UTC', TRY_CAST({expr} AS TIMESTAMP)) END, "
            f"TRY_CAST({expr} AS TIMESTAMPTZ)")


def _typed(col: str, arrow_type: pa.DataType, target: pa.DataType) -> tuple[str, str]:
    """(SQL giving ``col`` as ``target``, or NULL where it cannot be; a kind name for messages)."""
    c = _q(col)
    if pa.types.is_null(arrow_type):
        return f"CAST(NULL AS {schema.duckdb_type(target)})", ""
    nested = (pa.types.is_struct(arrow_type) or pa.types.is_list(arrow_type)
              or pa.types.is_large_list(arrow_type) or pa.types.is_map(arrow_type))
    text = (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            or pa.types.is_string_view(arrow_type))
    numeric = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) \
        or pa.types.is_decimal(arrow_type)
    if target == pa.string():  # anything has a text form: never a type error
        if text:
            return c, ""
        return (f"CAST(to_json({c}) AS VARCHAR)" if nested else f"CAST({c} AS VARCHAR)"), ""
    if target == pa.int64():
        if pa.types.is_integer(arrow_type):
            return f"CAST({c} AS BIGINT)", "an integer"
        d = f"TRY_CAST({c} AS DOUBLE)" if (text or numeric) else "CAST(NULL AS DOUBLE)"
        return (f"CASE WHEN {d} = trunc({d}) AND abs({d}) < 9e15 "
                f"THEN CAST({d} AS BIGINT) END"), "an integer"
    if target == pa.float64():
        d = f"TRY_CAST({c} AS DOUBLE)" if (text or numeric) else "CAST(NULL AS DOUBLE)"
        return f"CASE WHEN isfinite({d}) THEN {d} END", "a finite number"
    if target == pa.bool_():
        if pa.types.is_boolean(arrow_type):
            return c, "a boolean"
        if pa.types.is_integer(arrow_type):
            return f"CASE WHEN {c} IN (0, 1) THEN {c} = 1 END", "a boolean"
        if text:
            return f"TRY_CAST(lower(trim({c})) AS BOOLEAN)", "a boolean"
        return "CAST(NULL AS BOOLEAN)", "a boolean"
    if target == schema.TS:
        if pa.types.is_timestamp(arrow_type):
            return (c if arrow_type.tz else f"timezone('UTC', {c})"), "a timestamp"
        if pa.types.is_date(arrow_type):
            return f"timezone('UTC', CAST({c} AS TIMESTAMP))", "a timestamp"
        if numeric:
            return _epoch(f"CAST({c} AS DOUBLE)"), "a timestamp"
        if text:
            return text_timestamp_sql(c), "a timestamp"
        return "CAST(NULL AS TIMESTAMPTZ)", "a timestamp"
    raise TypeError(f"no validation rule for {target}")


def extras_sql(columns: list[str], labels: list[str] | None = None) -> str | None:
    """SQL giving the JSON object (text) of the non-null values of ``columns``, NULL when all are
    null (None when there are no columns); each value under its column's name, or its label in
    ``labels``.

    Decision: a null value is dropped, whether the row lacks the key or wrote ``"key": null``.
    Arrow's block-wise parse gives a key that only other rows of a block have as null in this
    one, so the two cannot be told apart here; dropping both keeps a row's attributes independent
    of its neighbours, and the exact JSONL path (canonical._EXTRAS_SQL) drops explicit nulls too.
    """
    if not columns:
        return None
    parts = ", ".join(
        f"CASE WHEN {_q(c)} IS NOT NULL THEN "
        f"{_lit(json.dumps(k, ensure_ascii=False) + ':')} || CAST(to_json({_q(c)}) AS VARCHAR) END"
        for c, k in zip(columns, labels or columns, strict=True))
    return f"nullif('{{' || concat_ws(',', {parts}) || '}}', '{{}}')"


def _shown_sql(text: str, chars: int) -> str:
    """SQL quoting the text ``text`` in a reason as lib.ingest.values.shown does: at most
    ``chars`` characters (a longer text cut, ``...`` added); as a JSON string when it is empty or
    only whitespace (``""``: nothing after the colon would read as a value cut off), or when it
    holds "; " (which separates a reason's parts) or looks like a quoted value
    (lib.ingest.values.needs_quotes): ``"lots; of them"``."""
    def cut(expr: str, n: int) -> str:  # at most n characters, the last three "..." if cut
        return f"CASE WHEN length({expr}) > {n} THEN left({expr}, {n - 3}) || '...' " \
               f"ELSE {expr} END"

    def as_json(expr: str) -> str:
        return f"CAST(to_json({expr}) AS VARCHAR)"

    return (f"CASE WHEN regexp_matches({text}, '^\\s*$') "
            f"THEN {cut(as_json(f'left({text}, {chars})'), chars)} "
            f"WHEN contains({text}, {_lit(REASON_SEPARATOR)}) OR contains({text}, ': \"') "
            f"OR starts_with({text}, '\"') THEN {as_json(cut(text, chars - 2))} "
            f"ELSE {cut(text, chars)} END")


EXTRAS_SQL_COLUMN = "_sl_extras"  # checked_sql's column of a row's extras object (text)
# The id of each table: a row with one of another table is that table's row, where its file is
# of one table (canonical files); request_id and span_id are also logged as references (an eval
# judged a request), so they tell only in a row with none of the file's table's own fields.
ROW_IDS = {"eval_id": "evals", "event_id": "events", "request_id": "requests", "span_id": "spans"}
REFERENCE_IDS = ("request_id", "span_id")


def _own_columns(name: str) -> list[str]:
    """The columns of table ``name`` no other table has (what only its rows have)."""
    others = {c for t, tab in schema.TABLES.items() if t not in (name, "quarantine")
              for c in tab.names}
    return [c for c in schema.TABLES[name].names if c not in others]


# Keys whose top-level value wins over the attributes' by design: the price context
# (lib/pricing.py), where a log may hold the tier requested in attributes and the one that
# served the call at the top level; the top-level one is priced and stored.
TOP_LEVEL_WINS = pricing.CONTEXT_KEYS


def attributes_clash_sql(attrs: str, extras: str) -> str:
    """SQL giving the first key of the JSON object ``extras`` (text) that the JSON object
    ``attrs`` (text) has too, with another value (a null one there is none), else NULL; the
    keys of TOP_LEVEL_WINS are none. Only the keys both have are compared (json_keys is cheap;
    a list of every key is not)."""
    path = "'/' || replace(replace(k, '~', '~0'), '/', '~1')"
    wins = "[" + ", ".join(_lit(k) for k in TOP_LEVEL_WINS) + "]"
    a, b = f"json_extract({attrs}, {path})", f"json_extract({extras}, {path})"
    # Values that differ: texts that differ, and numbers (when both are) that differ (1 and 1.0,
    # 100 and 1e2, a CSV's "2" beside 2 are one value); objects and arrays by their minified
    # JSON text (the same object with its keys in another order counts as another).
    structured = "json_type({v}) IN ('OBJECT', 'ARRAY')"
    differ = (f"json_type({a}) <> 'NULL' AND CASE "
              f"WHEN {structured.format(v=a)} OR {structured.format(v=b)} "
              f"THEN CAST({a} AS VARCHAR) <> CAST({b} AS VARCHAR) "
              f"ELSE json_extract_string({attrs}, {path}) <> json_extract_string({extras}, {path}) "
              f"AND coalesce(TRY_CAST(json_extract_string({attrs}, {path}) AS DOUBLE) <> "
              f"TRY_CAST(json_extract_string({extras}, {path}) AS DOUBLE), true) END")
    return (f"CASE WHEN {extras} IS NOT NULL AND {attrs} IS NOT NULL "
            f"AND {_is_json_object(attrs)} THEN CASE WHEN list_has_any(json_keys({attrs}), "
            f"json_keys({extras})) THEN list_filter(list_sort(list_intersect(json_keys({attrs}), "
            f"json_keys({extras}))), k -> NOT list_contains({wins}, k) AND {differ})[1] END END")


def other_table_sql(name: str, present: dict, extras: str) -> str:
    """SQL giving, for a row of a file of table ``name`` whose keys that are none of its
    columns are the JSON object ``extras`` (text), what other table's row it is, as
    "evals row (eval_id)", else NULL (:data:`ROW_IDS`). Only rows with such keys are
    looked at; a key's text is searched for before the object is parsed."""
    own = [c for c in _own_columns(name) if c in present]
    # (a row with the file's own id is the file's row: a request logs its span_id)
    key = schema.KEYS[name]
    own_id = f"{_q(key)} IS NULL" if key in present else "true"
    none_own = " AND ".join([own_id] + [f"{_q(c)} IS NULL" for c in own])
    cases = []
    for key, table in ROW_IDS.items():
        if key in schema.TABLES[name].names:
            continue
        cond = (f"contains({extras}, {_lit(json.dumps(key))}) AND "
                f"json_exists({extras}, {_lit('/' + key)})")
        if key in REFERENCE_IDS:
            cond += f" AND {none_own}"
        article = "an" if table[0] in "aeiou" else "a"
        cases.append(f"WHEN {cond} THEN {_lit(f'{article} {table} row ({key})')}")
    if not cases:
        return "CAST(NULL AS VARCHAR)"
    return f"CASE WHEN {extras} IS NOT NULL THEN CASE {' '.join(cases)} END END"


def checked_sql(name: str, present: dict[str, pa.DataType], source: str, *,
                extras_json: str | None = None, carry: tuple[str, ...] = (),
                other_tables: bool = False) -> str:
    """SQL that types, checks and normalizes rows of ``source`` as canonical table ``name``.

    ``present`` gives the type of each canonical column ``source`` has (others become null);
    ``_line`` is taken from ``source`` when present. ``extras_json`` is an SQL expression giving a
    JSON object (text) of the row's non-canonical fields, or NULL: it is merged into
    ``attributes``. The query selects ``carry`` columns, ``_line``, ``_reason`` (every reason
    found, joined by "; ", NULL for a good row) and the canonical columns in schema order; it
    takes the parameters ``$earliest`` and ``$latest`` (the sane range of ``ts``).

    ``other_tables`` (files of canonical rows, whose file is of one table): a row with another
    table's id among its extras is quarantined as that table's row (:func:`other_table_sql`)
    rather than stored as this one's, or counted as a duplicate of the request it judged.
    """
    target = schema.TABLES[name]
    if extras_json:  # computed once: the merge and the checks below read it
        source = f"(SELECT *, {extras_json} AS {_q(EXTRAS_SQL_COLUMN)} FROM {source})"
        extras_json = _q(EXTRAS_SQL_COLUMN)
    # Each check is (condition, message): a row is good when no condition holds. Conditions are
    # cheap comparisons on typed columns; messages are only built for the rows that fail.
    selects, inputs, checks, kept = [], [], [], set()
    for field in target:
        col = field.name
        if col in present:
            expr, kind = _typed(col, present[col], field.type)
            if kind:
                kept.add(col)
                inputs.append(f"{_q(col)} AS {_q('_in_' + col)}")
                checks.append((f"{_q('_in_' + col)} IS NOT NULL AND {_q(col)} IS NULL",
                               f"{_lit(col + ' is not ' + kind + ': ')} || "
                               + _shown_sql(f"CAST({_q('_in_' + col)} AS VARCHAR)", 60)))
        else:
            expr = f"CAST(NULL AS {schema.duckdb_type(field.type)})"
        if col == "attributes" and extras_json:
            attrs, extra = expr, f"({extras_json})"
            # A key both at the top level and in attributes with another value: merged, one
            # value would be lost ({"tier": "gold"} and "tier": "free" stored "free").
            inputs.append(f"{attributes_clash_sql(attrs, extra)} AS _attr_clash")
            # (the key as a JSON string, as in DUPLICATE_KEY_REASON: the Data page groups the
            # reasons as one check, 'a key is both ...')
            checks.append(("_attr_clash IS NOT NULL",
                           "'key ' || CAST(to_json(_attr_clash) AS VARCHAR) || "
                           + _lit(" is both a top-level key and a key of attributes, with "
                                  "different values: which value is meant is ambiguous")))
            expr = (f"CASE WHEN {extra} IS NULL THEN {attrs} "
                    f"WHEN {attrs} IS NULL THEN CAST({extra} AS VARCHAR) "
                    f"WHEN {_is_json_object(attrs)} THEN "
                    f"CAST(json_merge_patch({attrs}, {extra}) AS VARCHAR) "
                    f"ELSE {attrs} END")
        selects.append(f"{expr} AS {_q(col)}")
    line = "CAST(_line AS BIGINT)" if "_line" in present else "CAST(NULL AS BIGINT)"
    other = None  # (another table's row: its reason alone, this table's checks are not its)
    if other_tables and extras_json:
        inputs.append(f"{other_table_sql(name, present, extras_json)} AS _other_table")
        why = _lit(f" in a file of {name}: give each table a file of its own")
        other = ("_other_table IS NOT NULL", f"_other_table || {why}")

    # Absent means none; a value that is there but not a number stays null, so the type check
    # above quarantines it ("cached_input_tokens is not an integer: lots") instead of it reading 0.
    replaces = [f"coalesce({_q(c)}, CASE WHEN {_q('_in_' + c)} IS NULL THEN 0 END) AS {_q(c)}"
                if c in kept else f"coalesce({_q(c)}, 0) AS {_q(c)}"
                for c in ZERO_IF_NULL.get(name, [])]
    if name == "requests":
        cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in STATUS_SYNONYMS.items())
        replaces += [
            "CASE WHEN status IS NULL THEN CASE WHEN error_type IS NULL THEN 'ok' "
            "ELSE 'error' END WHEN status = 'ok' OR status = 'error' THEN status "
            f"ELSE coalesce(CASE lower(trim(status)) {cases} END, status) END "
            "AS status",
            # absent is false; a value that is there but no boolean ("maybe", 2, [true]) stays
            # null, so the type check quarantines it instead of it reading false
            ("coalesce(cache_hit, CASE WHEN _in_cache_hit IS NULL THEN false END) AS cache_hit"
             if "cache_hit" in kept else "coalesce(cache_hit, false) AS cache_hit"),
            # "gpt-4o " is gpt-4o: priced, and one group with it, not an unpriced look-alike
            *(f"{trimmed_name_sql(_q(c))} AS {_q(c)}" for c in TRIMMED_NAMES),
        ]
    if name == "evals":
        replaces.append(
            f"coalesce(CASE WHEN NOT {blank_sql('eval_id')} THEN eval_id END, "
            "CASE WHEN run_id IS NOT NULL AND case_id IS NOT NULL "
            "AND metric IS NOT NULL THEN sha256(concat_ws(chr(31), run_id, case_id, metric, "
            "coalesce(CAST(epoch AS VARCHAR), '')"
            # a run's rows of several datasets, models or versions are not one another's
            # duplicates (design §3 derives from the first four alone: the same ids as before
            # where none of these is given)
            ", CASE WHEN dataset IS NOT NULL OR model IS NOT NULL OR version IS NOT NULL THEN "
            "concat_ws(chr(31), coalesce(dataset, ''), coalesce(model, ''), "
            "coalesce(version, '')) END))[:32] END) AS eval_id")
    if name == "events":
        # the service a filter matches, as the requests' (the derived id below reads the
        # service as logged: the ids of events stored before stay the same)
        replaces.append(f"{trimmed_name_sql('service')} AS service")
        replaces.append(
            f"coalesce(CASE WHEN NOT {blank_sql('event_id')} THEN event_id END, "
            "CASE WHEN ts IS NOT NULL THEN "
            "sha256(concat_ws(chr(31), strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), "
            "coalesce(kind, ''), coalesce(service, ''), "
            "coalesce(version, ''), coalesce(title, '')))[:32] END) AS event_id")

    def _not_typed(col: str) -> str:
        """SQL: and ``col`` was not given at all (a value of the wrong type has its message)."""
        return f" AND {_q('_in_' + col)} IS NULL" if col in typed_cols else ""

    typed_cols = {f.name for f in target if f.name in present
                  and _typed(f.name, present[f.name], f.type)[1]}
    normalized_names = set(TRIMMED_NAMES) if name == "requests" else set()
    for col in REQUIRED.get(name, []):
        what = {"eval_id": "eval_id (give it, or run_id + case_id + metric to derive it)",
                # (an id is how a call read twice is stored once)
                "request_id": "request_id (log an id for each call, or map one with a mapping "
                              "file, see docs/mapping.md)"}.get(col, col)
        # (an id of blanks is none either: as one id, every call logged without one was stored
        # once, the others skipped as its duplicates)
        # (a name normalized above is null already when blank: no second trim of a million)
        blank = f" OR {blank_sql(_q(col))}" \
            if target.field(col).type == pa.string() and col not in normalized_names else ""
        # A value that is there but of the wrong type has its own message.
        not_typed = _not_typed(col)
        checks.append((f"({_q(col)} IS NULL{blank}){not_typed}", _lit("missing " + what)))
    for col in NON_NEGATIVE.get(name, []):
        checks.append((f"{_q(col)} < 0",
                       f"{_lit(col + ' is negative: ')} || CAST({_q(col)} AS VARCHAR)"))
    for col, (most, unit) in UPPER_BOUNDS.get(name, {}).items():
        if col in target.names:
            checks.append((f"{_q(col)} > {most}",
                           f"{_lit(col + ' is beyond any real call: ')} || "
                           f"CAST({_q(col)} AS VARCHAR) || {_lit(f' (at most {most:,} {unit})')}"))
    if name == "requests":
        checks += [
            ("cached_input_tokens + cache_write_tokens > input_tokens AND input_tokens >= 0",
             "'cached_input_tokens + cache_write_tokens (' || "
             "CAST(cached_input_tokens + cache_write_tokens AS VARCHAR) || ') exceed "
             "input_tokens (' || CAST(input_tokens AS VARCHAR) || '), which must include "
             "them'"),
            # (a part without its whole: priced as if the whole were 0, the call would cost
            # too little, silently)
            ("input_tokens IS NULL AND cached_input_tokens + cache_write_tokens > 0"
             + _not_typed("input_tokens"),
             "'cached_input_tokens + cache_write_tokens (' || "
             "CAST(cached_input_tokens + cache_write_tokens AS VARCHAR) || ') given without "
             "input_tokens, which must include them'"),
            ("output_tokens IS NULL AND reasoning_tokens > 0" + _not_typed("output_tokens"),
             "'reasoning_tokens (' || CAST(reasoning_tokens AS VARCHAR) || ') given without "
             "output_tokens, which must include them'"),
            ("cache_write_1h_tokens > cache_write_tokens AND cache_write_tokens >= 0",
             "'cache_write_1h_tokens (' || CAST(cache_write_1h_tokens AS VARCHAR) || ') exceed "
             "cache_write_tokens (' || CAST(cache_write_tokens AS VARCHAR) || '), which must "
             "include them'"),
            ("reasoning_tokens > output_tokens AND output_tokens >= 0",
             "'reasoning_tokens (' || CAST(reasoning_tokens AS VARCHAR) || ') exceed "
             "output_tokens (' || CAST(output_tokens AS VARCHAR) || '), which must include "
             "them'"),
            ("status <> 'ok' AND status <> 'error'",
             "'status must be ok or error: ' || " + _shown_sql("status", 40)),
        ]
    if name == "evals":
        # (a source of another name, "prod", was stored and shown on no page: the Quality page
        # reads these three, found in review)
        checks.append(("source NOT IN ('online', 'offline', 'feedback')",
                       "'source must be online, offline or feedback: ' || "
                       + _shown_sql("source", 40)))
        # (an evaluation event or a score without its value was stored as a row of nothing,
        # counted as an eval, found in review)
        checks.append(("score IS NULL AND passed IS NULL AND nullif(label, '') IS NULL "
                       "AND nullif(explanation, '') IS NULL" + _not_typed("score")
                       + _not_typed("passed"),
                       "'no result: score, passed, label and explanation are all empty'"))
    if "attributes" in target.names:
        checks.append((f"attributes IS NOT NULL AND NOT {_is_json_object('attributes')}",
                       "'attributes is not a JSON object'"))
    checks.append(("ts < $earliest OR ts > $latest",
                   "'ts out of range (2000-01-01 .. now + 1 day): ' || "
                   "strftime(ts, '%Y-%m-%dT%H:%M:%SZ')"))

    cols = ", ".join(_q(f.name) for f in target)
    carried = "".join(f"{_q(c)}, " for c in carry)
    inputs_sql = "".join(f", {i}" for i in inputs)
    bad = " OR ".join(f"coalesce({cond}, false)"
                      for cond, _ in checks + ([other] if other else []))
    reasons = f"concat_ws({_lit(REASON_SEPARATOR)}, " + ", ".join(
        f"CASE WHEN {cond} THEN {msg} END" for cond, msg in checks) + ")"
    if other:
        reasons = f"CASE WHEN {other[0]} THEN {other[1]} ELSE {reasons} END"
    return f"""
        WITH typed AS (
            SELECT {carried}{line} AS _line{inputs_sql}, {', '.join(selects)}
            FROM {source}
        ), norm AS (
            SELECT * {'REPLACE (' + ', '.join(replaces) + ')' if replaces else ''} FROM typed
        )
        SELECT {carried}_line,
               CASE WHEN {bad} THEN {reasons} END AS _reason,
               {cols}
        FROM norm
    """


def time_range(now: datetime | None = None) -> dict:
    """The parameters of :func:`checked_sql`: timestamps outside them are quarantined."""
    now = now or datetime.now(UTC)
    return {"earliest": EARLIEST, "latest": now + FUTURE_SLACK}


def validate(name: str, table: pa.Table, *, source_file: str, now: datetime | None = None,
             other_tables: bool = False) -> Validated:
    """Type, check and normalize ``table`` as canonical table ``name`` (``other_tables``: rows
    of a canonical file, see :func:`checked_sql`).

    Returns the good rows (canonical columns, in order) and the quarantine rows for the others,
    each with the source line (from ``_line``; null if the format gave none) and every reason
    found, joined by "; ".
    """
    target = schema.TABLES[name]
    if table.num_rows == 0:
        return Validated(schema.empty(name), schema.empty("quarantine"),
                         pa.chunked_array([], pa.int64()))
    now = now or datetime.now(UTC)
    present = {f.name: f.type for f in table.schema}
    from lib.ingest.formats.canonical import is_user_key, user_key

    extras = [c for c in table.column_names
              if c not in target.names and (not c.startswith("_") or is_user_key(c))]
    extras_json = extras_sql(extras, [user_key(c) for c in extras])
    if EXTRAS_COLUMN in present:
        given = _q(EXTRAS_COLUMN)
        extras_json = given if extras_json is None else (
            f"CASE WHEN {given} IS NULL THEN {extras_json} WHEN ({extras_json}) IS NULL THEN "
            f"{given} ELSE CAST(json_merge_patch({extras_json}, {given}) AS VARCHAR) END")
    sql = checked_sql(name, present, "incoming", extras_json=extras_json,
                      carry=("_rowid",), other_tables=other_tables) + " ORDER BY _rowid"
    con = _con()
    incoming = table.append_column("_rowid", pa.array(range(table.num_rows), pa.int64()))
    con.register("incoming", incoming)
    try:
        out = con.execute(sql, time_range(now)).to_arrow_table()
        bad_mask = pc.is_valid(out.column("_reason"))
        n_bad = pc.sum(bad_mask).as_py() or 0
        good = out.filter(pc.invert(bad_mask)) if n_bad else out
        lines = good.column("_line")
        good = good.drop_columns(["_rowid", "_line", "_reason"])
        quarantine = schema.empty("quarantine")
        if n_bad:
            bad = out.filter(bad_mask).select(["_rowid", "_line", "_reason"])
            con.register("bad", bad)
            raw_cols = ", ".join(f"{_lit(user_key(c))}, {_q(c)}" for c in table.column_names
                                 if not c.startswith("_") or is_user_key(c))
            raw_sql = f"CAST(json_object({raw_cols}) AS VARCHAR)"
            if RAW_TEXT_COLUMN in present:  # the record as the file has it (CSV)
                raw_sql = f"coalesce(rtrim(i.{_q(RAW_TEXT_COLUMN)}, chr(13) || chr(10)), {raw_sql})"
            elif EXTRAS_COLUMN in present:  # its keys are none of the columns': splice them in
                given = f"i.{_q(EXTRAS_COLUMN)}"
                raw_sql = (f"CASE WHEN {given} IS NULL THEN {raw_sql} WHEN {raw_sql} = '{{}}' "
                           f"THEN {given} ELSE left({raw_sql}, -1) || ',' || {given}[2:] END")
            raw = con.execute(
                f"SELECT b._line AS line, b._reason AS reason, "
                f"left({raw_sql}, {schema.RAW_MAX_CHARS}) AS raw "
                f"FROM bad b JOIN incoming i USING (_rowid) ORDER BY b._rowid").to_arrow_table()
            con.unregister("bad")
            quarantine = quarantine_table(raw.column("line").to_pylist(),
                                          raw.column("raw").to_pylist(),
                                          raw.column("reason").to_pylist(), source_file, now)
    finally:
        con.unregister("incoming")
    return Validated(schema.conform(good, target), quarantine, lines)


def quarantine_table(lines: list, raws: list, reasons: list, source_file: str,
                     now: datetime | None = None) -> pa.Table:
    """QUARANTINE rows; ``quarantine_id`` is a hash of (file, line, reason, raw), so re-reading the
    same bad line is not quarantined twice."""
    now = now or datetime.now(UTC)
    raws = [None if r is None else r[: schema.RAW_MAX_CHARS] for r in raws]
    ids = [hashlib.sha256(ID_SEP.join([source_file, str(ln), str(why), str(raw)]).encode())
           .hexdigest()[:32] for ln, raw, why in zip(lines, raws, reasons, strict=True)]
    n = len(ids)
    return pa.table({
        "quarantine_id": pa.array(ids, pa.string()),
        "ts": pa.array([now] * n, schema.TS),
        "source_file": pa.array([source_file] * n, pa.string()),
        "line": pa.array(lines, pa.int64()),
        "raw": pa.array(raws, pa.string()),
        "reason": pa.array(reasons, pa.string()),
    })


# A row whose key an earlier row of the same file has, saying something else: which one is meant
# is not ours to guess, and dropping it as a duplicate would lose it without a word. (No line of
# the first: an earlier read of a file that grew stored it, and stored rows keep no line.)
CONFLICT_REASON = "{key} already in this file with other values (the first is stored): {value}"


def conflicts_table(name: str, rows: pa.Table, source_file: str, now: datetime | None = None,
                    *, priced: bool = False) -> pa.Table:
    """QUARANTINE rows for ``rows`` of table ``name`` repeating the key of an earlier row of the
    file with other values (canonical columns and ``_line``: lib.store.lake.BatchWriter.add);
    each record is rebuilt from its fields as JSON, without ``cost_usd`` when ``priced`` (ours
    then: the file's own is in ``logged_cost_usd``)."""
    key = schema.KEYS[name]
    records = rows.drop_columns(["_line"] + (["cost_usd"] if priced else [])).to_pylist()
    reasons = [CONFLICT_REASON.format(key=key, value=json.dumps(row[key], ensure_ascii=False))
               for row in records]
    raws = [json.dumps(_record_of(row), ensure_ascii=False, default=str) for row in records]
    return quarantine_table(rows.column("_line").to_pylist(), raws, reasons, source_file, now)


def _record_of(row: dict) -> dict:
    """A checked row as the JSON record it could have come from: its non-null fields but the
    lineage, times in ISO 8601, ``attributes`` as the object it holds."""
    lineage = {f.name for f in schema.LINEAGE}
    record = {}
    for column, value in row.items():
        if value is None or column in lineage:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif column == "attributes":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        record[column] = value
    return record


def rejects_table(rejects: list[Reject], source_file: str, now: datetime | None = None
                  ) -> pa.Table:
    """QUARANTINE rows for records a format could not map at all."""
    return quarantine_table([r.line for r in rejects], [r.raw for r in rejects],
                            [r.reason for r in rejects], source_file, now)
