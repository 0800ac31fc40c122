"""Hints for a canonical file whose fields look like canonical columns under other names.

A canonical JSONL, JSON or CSV file is recognized by its columns, and keys that are not canonical
columns are kept in ``attributes``. That is right for a team's own extra fields (``region``), and
silently wrong for ``prompt_tokens``, ``latency`` or ``timestamp``: the counts are not read as
counts (the request is priced as if it had no tokens), the latency is not a latency, and rows
without ``ts`` are quarantined with "missing ts" and no word on why. So the report says which
fields look like which column, and how to fix it (rename, or a mapping: docs/mapping.md).

Judged from the head of the file (its first records, the CSV header, a Parquet file's columns): a
hint, not a check.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import re

import pyarrow as pa

from lib import schema
from lib.ingest.formats.canonical import csv_delimiter, is_user_key, table_for, user_key
from lib.ingest.formats.json_values import array_head

log = logging.getLogger(__name__)

# Formats whose extra keys are folded into attributes (a mapping or a trace format has its own
# field names on purpose); Parquet too, from its schema (:func:`parquet_hints`).
CANONICAL_FORMATS = ("jsonl", "json", "csv")
MAX_RECORDS = 20

# What logs commonly call a canonical column, by table; names compared after lower-casing and
# dropping everything but letters and digits (so promptTokens, prompt-tokens, PROMPT_TOKENS
# match alike). A column's own name in another spelling (inputTokens) is found without a list.
_SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "requests": {
        "input_tokens": ("prompttokens", "prompttokencount", "inputtokencount", "tokensin",
                         "tokensinput", "inputtoken"),
        "output_tokens": ("completiontokens", "completiontokencount", "outputtokencount",
                          "tokensout", "tokensoutput", "outputtoken", "candidatestokencount"),
        "cached_input_tokens": ("cachedtokens", "cachereadtokens", "cachereadinputtokens",
                                "cachedprompttokens", "cachedcontenttokencount"),
        "cache_write_tokens": ("cachecreationinputtokens", "cachecreationtokens"),
        "cache_write_1h_tokens": ("ephemeral1hinputtokens", "cachewrite1htokens"),
        "reasoning_tokens": ("reasoningoutputtokens", "thoughtstokencount"),
        "latency_ms": ("latency", "duration", "durationms", "elapsed", "elapsedms",
                       "responsetime", "responsetimems"),
        "ttft_ms": ("ttft", "timetofirsttoken", "timetofirsttokenms"),
        "ts": ("timestamp", "time", "createdat", "starttime", "startedat", "datetime"),
        "model": ("modelname", "modelid", "requestedmodel"),
        "provider": ("vendor",),
        "request_id": ("id", "callid"),
        "logged_cost_usd": ("cost", "totalcost", "price", "costusd"),
        "user_id": ("user",),
        "customer_id": ("customer", "tenant", "tenantid", "orgid", "organization"),
        "session_id": ("session", "conversationid", "threadid"),
        "environment": ("env",),
        "app_version": ("version",),
        "input_text": ("prompt", "input", "prompttext"),
        "output_text": ("completion", "response", "output", "responsetext", "completiontext"),
        "error_type": ("error", "exception"),
        "error_message": ("errormsg",),
        "finish_reason": ("stopreason",),
    },
    "evals": {
        "score": ("value", "metricvalue"),
        "passed": ("pass", "ispassed", "success"),
        "case_id": ("testid", "testcase", "testcaseid"),
        "metric": ("metricname", "evaluator"),
        "run_id": ("experiment", "experimentid"),
        "judge": ("grader", "judgemodel", "evaluatormodel"),
        "explanation": ("reason", "rationale"),
        "ts": ("timestamp", "time", "createdat"),
    },
    "events": {
        "kind": ("type", "eventtype"),
        "title": ("name", "message", "summary"),
        "ts": ("timestamp", "time", "createdat"),
    },
}
_UNITS = {"latency_ms": "milliseconds", "ttft_ms": "milliseconds", "logged_cost_usd": "USD"}
# Columns Sightline sets itself, never a rename's target: lineage (set at each ingest; a file's
# batch_id and ingested_at are replaced) and cost_usd (the cost engine's; a file's cost is kept
# as logged_cost_usd).
_MANAGED = ("batch_id", "ingested_at", "source_file", "cost_usd")
_REPLACED = ("batch_id", "ingested_at")
_TOKEN_OBJECTS = ("usage", "tokens", "tokenusage", "usagemetadata")
# Anthropic's usage fields: its input_tokens excludes these, ours includes them (design §3).
_ANTHROPIC_CACHE = ("cachereadinputtokens", "cachecreationinputtokens")
# Gemini's thinking tokens: its candidates_token_count excludes them, our output_tokens includes
# them (design §3).
_GEMINI_THOUGHTS = ("thoughtstokencount",)
# A provider's own usage names (OpenAI's, Anthropic's) inside a usage object.
_PROVIDER_USAGE = frozenset({"prompt_tokens", "completion_tokens", "input_tokens",
                             "output_tokens", "cache_read_input_tokens"})
# Keys only a provider's response objects have: a file of them that was not detected (its first
# records are failed calls, say) is pointed at --format openai / anthropic.
_PROVIDER_RESPONSE_KEYS = frozenset({"choices", "stop_reason", "custom_id", "system_fingerprint"})


def _never_raises(default):
    """A hint is a courtesy: whatever the head holds (a value nested past Python's recursion
    limit, bytes no reader expects), it must never stop an ingest. Failing, it gives
    ``default``."""
    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - logged; the ingest goes on without a hint
                log.info("no hint: %s", exc)
                return default() if callable(default) else default
        return guarded
    return wrap


# What a CSV header's field names look like (a log line's or a sentence's pieces do not).
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\- ]{0,63}")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@_never_raises(list)
def column_hints(format_name: str | None, head: bytes) -> list[str]:
    """Sentences for the report: the fields of the file's first records that look like canonical
    columns the records lack (``[]`` when none, or when the format is not canonical)."""
    if format_name not in CANONICAL_FORMATS:
        return []
    return field_hints(_head_records(format_name, head))


@_never_raises(list)
def parquet_hints(schema_: pa.Schema) -> list[str]:
    """:func:`column_hints` for a canonical Parquet file, from its columns (a struct column
    counts as an object, like a nested JSON value)."""
    # by the names the file has (a column keys_apart renamed, "Model" beside model, is the user's
    # "Model"), internal columns left out
    record = {user_key(f.name): {} if pa.types.is_struct(f.type) or pa.types.is_map(f.type)
              else None for f in schema_ if not f.name.startswith("_") or is_user_key(f.name)}
    return field_hints([record])


def field_hints(records: list[dict]) -> list[str]:
    """The hints for a canonical file whose first records are ``records`` (dicts of its fields;
    a nested object's value is a dict)."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    table = table_for(keys)
    if table not in _SYNONYMS:
        return []
    guesses = _guesses(table, keys)
    hints = []
    if guesses:
        listed = ", ".join(
            f"{k} (is it {c}" + (f", in {_UNITS[c]}" if c in _UNITS else "") + "?)"
            for k, c in guesses.items())
        hints.append(f"fields not read as columns (kept in attributes): {listed}. If they are, "
                     "rename them in the file, or map them with --mapping (docs/mapping.md; it "
                     "also converts units such as seconds to milliseconds)")
    replaced = [k for k in _REPLACED if k in keys]
    if replaced:
        hints.append(f"{' and '.join(replaced)}: set by Sightline at each ingest, so the file's "
                     "values are not kept. To keep them, rename the field (a name that is not a "
                     "canonical column goes into attributes)")
    anthropic = [k for k in keys if _norm(k) in _ANTHROPIC_CACHE]
    if table == "requests" and anthropic:
        hints.append(f"{' and '.join(anthropic)}: Anthropic's names, whose input_tokens leaves "
                     "the cached tokens out; Sightline's input_tokens includes them. If this "
                     "file's input_tokens is Anthropic's, map input_tokens to the sum of the "
                     "three (docs/mapping.md, 'Cached tokens'), or its costs come out too low")
    thoughts = [k for k in keys if _norm(k) in _GEMINI_THOUGHTS]
    if table == "requests" and thoughts:
        candidates = next((k for k in keys if _norm(k) == "candidatestokencount"),
                          "candidates_token_count")
        hints.append(f"{thoughts[0]}: Gemini's name, whose {candidates} leaves the thinking "
                     "tokens out; Sightline's output_tokens includes them. Map output_tokens to "
                     f"the sum of {candidates} and {thoughts[0]} (docs/mapping.md, 'Cached "
                     "tokens'), or its costs come out too low")
    counts = {"input_tokens", "output_tokens"}
    if table == "requests" and counts.isdisjoint(keys) and counts.isdisjoint(guesses.values()):
        nested = [k for k in keys if _norm(k) in _TOKEN_OBJECTS
                  and any(isinstance(r.get(k), dict) for r in records)]
        if nested:
            provider_style = any(
                isinstance(r.get(nested[0]), dict) and _PROVIDER_USAGE & r[nested[0]].keys()
                for r in records)
            hints.append(f"no input_tokens or output_tokens: the token counts seem to be inside "
                         f"{nested[0]}, which is kept in attributes, so these requests are "
                         f"priced as if they had no tokens. Map {nested[0]}.<field> to "
                         "input_tokens and output_tokens with --mapping (docs/mapping.md)"
                         + ("; or log the provider's whole response object (bare, or under "
                            "\"response\"): formats openai and anthropic read it with no "
                            "mapping (docs/provider-logs.md)" if provider_style else ""))
    return hints


@_never_raises(None)
def unrecognized_hint(head: bytes) -> str | None:
    """For a file no format recognized: the fields its first records have, with the canonical
    columns they look like, and what each table needs; None when no records can be read."""
    text = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    kind = "json" if text.startswith(b"[") else "jsonl" if text.startswith(b"{") else "csv"
    records = _head_records(kind, head)
    keys = list(dict.fromkeys(k for r in records for k in r))
    if len(keys) < 2 or (kind == "csv" and not all(map(_FIELD_NAME.fullmatch, keys))):
        return None  # a log line or prose with a comma is no CSV header: no fields to name
    guesses = {}
    for table in _SYNONYMS:  # requests first: the usual case
        for key, column in _guesses(table, keys).items():
            guesses.setdefault(key, column)
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    renames = ", ".join(f"{k} → {c}?" for k, c in guesses.items())
    return (f"its fields ({shown}) name no canonical table: requests need request_id, or model "
            f"with input_tokens / output_tokens; evals eval_id, or metric with score / passed; "
            f"events event_id, or kind and title"
            + (f". They look like: {renames}" if renames else "")
            + ". Rename them, or describe them with --mapping (docs/mapping.md), or force a "
            "format with --format"
            + (" (OpenAI or Anthropic responses: --format openai or --format anthropic, see "
               "docs/provider-logs.md)" if _PROVIDER_RESPONSE_KEYS & set(keys) else ""))


def _guesses(table: str, keys: list[str]) -> dict[str, str]:
    """{field: canonical column of ``table`` it looks like}, for the columns ``keys`` lack; one
    field per column."""
    columns = schema.TABLES[table].names
    missing = [c for c in columns if c not in keys and c not in _MANAGED]
    by_norm = {_norm(c): c for c in missing}
    for column, names in _SYNONYMS[table].items():
        if column in missing:
            by_norm.update({n: column for n in names if n not in by_norm})
    guesses: dict[str, str] = {}
    for key in keys:
        column = by_norm.get(_norm(key)) if key not in columns else None
        if column and column not in guesses.values():
            guesses[key] = column
    return guesses


def _head_records(format_name: str, head: bytes) -> list[dict]:
    """The first records of ``head`` (at most :data:`MAX_RECORDS`) as dicts; CSV gives its
    header as one record of empty values."""
    text = head.decode("utf-8", "replace").removeprefix("\ufeff")
    if format_name == "csv":
        first = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
        try:
            return [dict.fromkeys(f.strip() for f in
                                  next(csv.reader([first], delimiter=csv_delimiter(first))))]
        except (csv.Error, StopIteration):
            return []
    if format_name == "json":
        return array_head(text, MAX_RECORDS)
    out = []
    for line in text.split("\n")[:MAX_RECORDS * 2]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
        if len(out) == MAX_RECORDS:
            break
    return out



# What a binary file no format reads is, by its first bytes (after the gzip or zstd the reader
# takes off): "binary data that is not a known format" alone left its user to guess that the
# upload was an Excel workbook saved as .csv, or logs gzipped twice (review).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip data inside the gzip (compressed twice?): decompress it once"),
    (b"\x28\xb5\x2f\xfd", "zstd data inside the compression (compressed twice?): decompress "
                          "it once"),
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook or other Office file, or zipped logs: "
                    "unzip it, or export the sheet as CSV)"),
    (b"BZh", "bzip2-compressed: decompress it first (gzip and zstd are read as they are)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (gzip and zstd are read as they are)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: extract it first"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "an SQLite database: export its rows as CSV or JSON lines"),
)


def binary_kind(head: bytes) -> str | None:
    """What the binary ``head`` of a file no format read is, by its magic bytes; None when they
    name nothing known."""
    return next((said for magic, said in _MAGIC if head.startswith(magic)), None)
