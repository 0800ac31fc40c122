"""Canonical tables (design §3) as JSONL, CSV or Parquet: formats ``jsonl``, ``csv``, ``parquet``.

The table (requests, evals, events, spans) is recognized from the columns (:func:`table_for`).
Values may be loosely typed (CSV text, epoch numbers, ISO strings); lib/ingest/validate.py types
and checks them. JSONL and CSV stream in blocks of whole lines parsed by Arrow's C++ readers; a
block Arrow rejects is re-read line by line, so one malformed line becomes a quarantined Reject
with its line number and the rest of the block is kept. Parquet is read in record batches (from a
spooled temporary file when the input is a stream, since Parquet needs random access).

Arrow types a JSONL block column by column: a key one row lacks is null there if another row of the
block has it, a nested object gets every key any row's object has, numbers widen to the block's
type. For what is stored as JSON (keys that are not canonical columns, nested canonical values such
as an ``attributes`` object) that would make a row's stored value depend on its neighbours, so the
canonical format re-reads those from each row's own line, with the SQL of the exact path
(:func:`jsonl_rows_sql`): the same row gives the same values whatever block it falls in.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lib import schema
from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats.json_values import is_text
from lib.ingest.json_structure import max_depth
from lib.ingest.streams import (
    MAX_LINE_BYTES,
    UTF8_BOM,
    InputError,
    LineBlock,
    line_blocks,
    text_start,
    without_lines_not_utf8,
)
from lib.ingest.validate import EXTRAS_COLUMN, RAW_TEXT_COLUMN

TOKEN_COLUMNS = {"input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"}
ARROW_BLOCK_BYTES = 1 << 20
FALLBACK_LINES = 1024  # a failing block is retried in pieces of this many lines
# Deepest nesting of a JSON line this reader takes (the SQL path, lib/ingest/pipeline.py, takes
# any): Arrow's reader crashes the process some 20,000 levels down, Python's json raises at ~1,000.
MAX_NESTING = 512
PARQUET_BATCH_ROWS = 128_000
_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')


def table_for(columns: set[str] | list[str]) -> str | None:
    """The canonical table a set of column names describes, or None.

    Evals first: an eval row may carry the request_id it judged."""
    cols = set(columns)
    if "eval_id" in cols or ("metric" in cols and cols & {"score", "passed", "run_id", "label"}):
        return "evals"
    # (kind and title alone: a request log may carry keys of those names, its model or token
    # counts say which it is; an event may name the request it concerns)
    if "event_id" in cols or ({"kind", "title"} <= cols and "model" not in cols
                              and not cols & TOKEN_COLUMNS):
        return "events"
    if "span_id" in cols and "request_id" not in cols:
        return "spans"
    if "request_id" in cols or ("model" in cols and cols & TOKEN_COLUMNS):
        return "requests"
    return None


# -- JSONL ----------------------------------------------------------------------------------------
# Lines before the first JSON object that do not stop a file being read as JSON lines: a first
# line cut by log rotation or `tail -c` ('_tokens": 5}'), a banner or comments a tool wrote on
# top ("# exported by ..."; two of them made a file of good lines "not a recognized format",
# found in review). The lines after them decide; they are quarantined as not valid JSON like any
# other bad line.
LEADING_LINES = 5


def _detect_jsonl(head: bytes, filename: str) -> bool:
    start = text_start(head)
    if not start.startswith(b"{"):
        lines = [ln for ln in start.split(b"\n", LEADING_LINES + 1)[1:LEADING_LINES + 1]
                 if ln.strip()]
        if not any(text_start(ln).startswith(b"{") for ln in lines):
            return False
    return jsonl_table_of_head(head, max_lines=LEADING_LINES + 5) is not None


def _appendable_jsonl(head: bytes) -> bool:
    """A file's lines can be read from any line on as a whole read does when its first lines
    name the table (the SQL reader reads every line as that table; the Python reader, a switch
    for tests, would choose from the first lines it reads)."""
    return jsonl_table_of_head(head) not in (None, "quarantine") \
        and os.environ.get("SIGHTLINE_INGEST_SQL", "1") != "0"


def _parse_jsonl(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    yield from parse_jsonl_as(stream, None, own_values=True)


def parse_jsonl_as(stream: BinaryIO, table_name: str | None, *, own_values: bool = False
                   ) -> Iterator[Chunk]:
    """JSON lines as chunks with ``_line``; the table is ``table_name``, or recognized from the
    first parsed block's columns when None.

    With ``own_values`` (the canonical format), keys that are not columns of the table come as
    one column ``EXTRAS_COLUMN`` (see lib/ingest/validate.py) and nested canonical values as JSON
    text, both read from each row's own line (:func:`_own_values`); without it (a mapping, which
    resolves paths in nested structs), every key is a column as Arrow parsed it."""
    name: str | None = table_name
    for block in line_blocks(stream):
        block = _without_lines_too_deep(without_lines_not_utf8(block))
        pieces = _json_block(block) if block.data.strip() else []
        rejects = list(block.rejects)
        tables = []
        for table, piece_rejects in pieces:
            rejects.extend(piece_rejects)
            if table.num_rows:
                name = name or table_for(table.column_names)
                tables.append(table)
        if tables and name is None:
            for table in tables:
                rejects.extend(_unrecognized_rows(table))
            tables = []
        if not tables:
            yield Chunk(rejects=rejects)
            continue
        if own_values:
            tables = [_own_values(table, name, block) for table in tables]
        tables = [_with_line_text(table, block) for table in tables]
        yield Chunk(tables={name: tables[0]}, rejects=rejects)
        for table in tables[1:]:
            yield Chunk(tables={name: table})


USER_KEY_MARK = " (user key)"  # marks a user's key that starts with "_", as internal ones do


def keys_apart(table: pa.Table) -> pa.Table:
    """``table`` with each of a user's own keys that starts with "_" (``_line``, ``_raw``,
    ``_id``, ``_meta``: logs have them) renamed with USER_KEY_MARK: apart from the internal
    columns ("_line", "_raw", …), which it collided with (two fields of one name failed the whole
    file) or was taken for (and dropped). So is an empty name (no SQL identifier can be empty).
    A name that is a canonical column's in other letter case ("Model" beside model), or that
    another of the table's names is in other case ("tier", "TIER"), gets a mark numbered by its
    position (" (user key 3)"): DuckDB's names ignore case, and a CSV's "Model" was read as the
    model. :func:`user_key` gives its name back."""
    names = table.column_names
    lowered: dict[str, int] = {}
    for n in names:
        lowered[n.lower()] = lowered.get(n.lower(), 0) + 1

    def renamed(i: int, n: str) -> str:
        if n.startswith("_") or not n:
            return n + USER_KEY_MARK
        if n not in _CANONICAL_NAMES and (n.lower() in _CANONICAL_NAMES
                                          or lowered[n.lower()] > 1):
            return f"{n} (user key {i})"
        return n

    new = [renamed(i, n) for i, n in enumerate(names)]
    return table if new == names else table.rename_columns(new)


# every canonical table's column names (a column of one table may sit in another's file)
_CANONICAL_NAMES = frozenset(n for t in schema.TABLES.values() for n in t.names)
_NUMBERED_MARK = re.compile(r" \(user key \d+\)$")


def is_user_key(name: str) -> bool:
    """Whether a column is a user's key :func:`keys_apart` renamed."""
    return (name.endswith(USER_KEY_MARK) and (name.startswith("_") or name == USER_KEY_MARK)) \
        or _NUMBERED_MARK.search(name) is not None


def user_key(name: str) -> str:
    """The user's key of a column :func:`keys_apart` may have renamed."""
    if not is_user_key(name):
        return name
    return _NUMBERED_MARK.sub("", name) if _NUMBERED_MARK.search(name) else \
        name[:-len(USER_KEY_MARK)]


def _with_line_text(table: pa.Table, block: LineBlock) -> pa.Table:
    """``table`` (rows of ``block``'s lines, by ``_line``) with each row's line as the file has
    it, for the quarantine (:func:`_record_texts`)."""
    if "_line" not in table.column_names:
        return table
    # every line that is not empty, whitespace-only ones too: a row's text ends at its own line
    numbers, _, _ = block.line_numbers()
    texts = _record_texts(block, numbers, len(block.data))
    at = np.searchsorted(numbers, table.column("_line").to_numpy())
    if len(at) != len(numbers) or not np.array_equal(at, np.arange(len(numbers))):
        texts = texts.take(pa.array(at))
    return table.append_column(RAW_TEXT_COLUMN, texts)


def _without_lines_too_deep(block: LineBlock) -> LineBlock:
    """``block`` with each line nested deeper than :data:`MAX_NESTING` emptied (its number kept)
    and rejected: Arrow's JSON reader crashes the whole process on a value nested ~20,000 levels
    deep, and Python's json raises RecursionError past ~1,000."""
    data = block.data
    if data.count(b"{") + data.count(b"[") <= MAX_NESTING:  # no line can be that deep
        return block
    # A line nests at most as deep as it has opening brackets, and has at most as many as it
    # has bytes: only long lines with enough of them are measured.
    numbers, starts, ends = block.line_numbers()
    deep = []
    for i in np.flatnonzero(ends - starts > MAX_NESTING).tolist():
        line = data[starts[i]:ends[i]]
        if line.count(b"{") + line.count(b"[") > MAX_NESTING:
            depth = max_depth(line)
            if depth > MAX_NESTING:
                deep.append((i, depth))
    if not deep:
        return block
    rejects, pieces, at = list(block.rejects), [], 0
    for i, depth in deep:
        line = data[starts[i]:ends[i]]
        rejects.append(Reject(int(numbers[i]), _raw(line), f"nested {depth:,} levels deep: this "
                                                           f"reader takes {MAX_NESTING} at most"))
        pieces.append(data[at:starts[i]])  # the line's bytes go; its line break stays
        at = int(ends[i])
    pieces.append(data[at:])
    return LineBlock(block.first_line, b"".join(pieces), rejects)


def _json_block(block: LineBlock) -> list[tuple[pa.Table, list[Reject]]]:
    """Parse a block of JSON lines: Arrow when it can, else pieces, else line by line."""
    numbers, starts, ends = _json_lines(block)
    table = _arrow_json(block.data, len(numbers))
    if table is not None:
        return [(keys_apart(table).append_column("_line", pa.array(numbers, pa.int64())), [])]
    out = []
    for i in range(0, len(numbers), FALLBACK_LINES):
        nums = numbers[i:i + FALLBACK_LINES]
        s, e = starts[i:i + FALLBACK_LINES], ends[i:i + FALLBACK_LINES]
        piece = block.data[s[0]:e[-1]]
        table = _arrow_json(piece, len(nums)) if len(numbers) > FALLBACK_LINES else None
        if table is not None:
            out.append((keys_apart(table).append_column("_line", pa.array(nums, pa.int64())), []))
        else:
            out.append(_json_lines_slow(block.data, nums, s, e))
    return out


_WHITESPACE = np.array([ord(c) for c in " \t\r"], np.uint8)


def _json_lines(block: LineBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(number, start, end) of the block's lines that hold something: whitespace-only lines are
    skipped (as the SQL path and Arrow's reader skip them). Counting one as a line would let a
    line of two objects line up with the count, giving rows the wrong line numbers."""
    numbers, starts, ends = block.line_numbers()
    data = block.data
    if not any(p in data for p in (b"\n ", b"\n\t", b"\n\r", b" \n", b"\t\n")) \
            and not data.startswith((b" ", b"\t", b"\r")):
        return numbers, starts, ends  # no line can be whitespace only: the usual case
    buf = np.frombuffer(data, np.uint8)
    content = np.flatnonzero(~np.isin(buf, _WHITESPACE) & (buf != 10))
    holds = np.searchsorted(content, starts) < np.searchsorted(content, ends)
    return numbers[holds], starts[holds], ends[holds]


def _arrow_json(data: bytes, expected_rows: int) -> pa.Table | None:
    for block_size in (ARROW_BLOCK_BYTES, len(data) + 1):
        try:
            table = pajson.read_json(io.BytesIO(data),
                                     read_options=pajson.ReadOptions(block_size=block_size))
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and block_size != len(data) + 1:
                continue  # a line longer than Arrow's block: retry as one block
            return None
        # Rows must line up with non-blank lines, or line numbers would be wrong.
        return table if table.num_rows == expected_rows else None
    return None


def _json_lines_slow(data: bytes, numbers, starts, ends) -> tuple[pa.Table, list[Reject]]:
    rows, lines, rejects = [], [], []
    for line_no, s, e in zip(numbers.tolist(), starts.tolist(), ends.tolist(), strict=True):
        text = data[s:e]
        try:
            obj = json.loads(text, object_pairs_hook=KeyedObject.of_pairs)
        except RecursionError:  # deeper than _without_lines_too_deep lets through: cannot be
            rejects.append(Reject(line_no, _raw(text), "nested too deeply to read"))
            continue
        except ValueError as exc:
            reason = f"not valid JSON: {getattr(exc, 'msg', exc)}"
            if hasattr(exc, "colno"):
                reason += f" (column {exc.colno})"
            rejects.append(Reject(line_no, _raw(text), reason))
            continue
        if not isinstance(obj, dict):
            rejects.append(Reject(line_no, _raw(text), "not a JSON object"))
            continue
        if obj.repeated is not None:
            rejects.append(Reject(line_no, _raw(text), DUPLICATE_KEY_REASON.format(
                json.dumps(obj.repeated, ensure_ascii=False))))
            continue
        if not is_text(obj):  # a lone surrogate escape ("\ud800") parses, but is no text
            rejects.append(Reject(line_no, _raw(text), "not valid JSON: an escape that is not "
                                                       "a character (a lone surrogate)"))
            continue
        # Types vary from line to line here (that is why Arrow gave up): carry every value as
        # text and let validation type it.
        rows.append({k: _as_text(v) for k, v in obj.items()})
        lines.append(line_no)
    names = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.table({k: pa.array([row.get(k) for row in rows], pa.string()) for k in names}
                     ) if rows else pa.table({})
    if rows:
        table = keys_apart(table).append_column("_line", pa.array(lines, pa.int64()))
    return table, rejects


def _as_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def _raw(data: bytes) -> str:
    return data[: schema.RAW_MAX_CHARS].decode("utf-8", "replace")


def _unrecognized_rows(table: pa.Table) -> list[Reject]:
    lines = table.column("_line").to_pylist() if "_line" in table.column_names else \
        [None] * table.num_rows
    cols = [c for c in table.column_names if c != "_line"]
    reason = (f"columns {cols[:8]} name no canonical table (requests need request_id, evals "
              "eval_id or metric, events event_id or kind + title)")
    return [Reject(line, "", reason) for line in lines]


def _nested(arrow_type: pa.DataType) -> bool:
    return (pa.types.is_struct(arrow_type) or pa.types.is_list(arrow_type)
            or pa.types.is_large_list(arrow_type) or pa.types.is_map(arrow_type))


def _own_values(table: pa.Table, name: str, block: LineBlock) -> pa.Table:
    """``table`` (rows of ``block`` with ``_line``) with what Arrow typed per block re-read from
    each row's own line: the keys that are not columns of ``name`` as one JSON object per row in
    ``EXTRAS_COLUMN`` (null when the row has none with a value) and nested canonical values as
    JSON text, with the same SQL and so the same text as the exact path (:func:`jsonl_rows_sql`).
    A line DuckDB cannot read (a lone surrogate escape, which Python's parser of the line-by-line
    fallback accepts) keeps its values as parsed. Costs nothing for a table with neither."""
    from lib.ingest.validate import _con

    cols = schema.TABLES[name].names
    # Keys starting with "_" too: the exact path folds every key that is not a column.
    extra = [c for c in table.column_names if c not in cols and c != "_line"]
    nested = [c for c in table.column_names if c in cols and _nested(table.schema.field(c).type)]
    if not extra and not nested:
        return table
    numbers, starts, ends = block.line_numbers()
    at = np.searchsorted(numbers, table.column("_line").to_numpy())
    data = block.data
    lines = pa.array([data[s:e].decode("utf-8", "replace")
                      for s, e in zip(starts[at].tolist(), ends[at].tolist(), strict=True)],
                     pa.large_string())
    struct = "{" + ", ".join(f'"{c}": "VARCHAR"' for c in nested) + "}"
    canon = "[" + ", ".join("'" + c + "'" for c in cols) + "]"
    selects = ["_keys IS NOT NULL AS _read"]
    selects += [f'coalesce(j."{c}", CAST(to_json("{c}") AS VARCHAR)) AS "{c}"' for c in nested]
    if extra:  # (a line DuckDB cannot read has no keys: json_extract would raise)
        selects.append(f"CASE WHEN _keys IS NOT NULL THEN {_EXTRAS_SQL} END AS _extras")
    con = _con()
    con.register("own_lines", table.select(nested).append_column("line", lines))
    try:
        own = con.execute(f"""
            SELECT {', '.join(selects)}
            FROM (SELECT *, list_filter(_keys, k -> NOT list_contains(_canon, k)) AS _extra_keys,
                         list_filter(_keys, (k, i) -> list_position(_keys, k) < i)[1] AS _dup_key
                  FROM (SELECT *, try(json_keys(line)) AS _keys, {canon} AS _canon
                               {f", try(from_json(line, '{struct}')) AS j" if nested else ""}
                        FROM own_lines))
        """).to_arrow_table()
    finally:
        con.unregister("own_lines")
    for c in nested:
        table = table.set_column(table.schema.get_field_index(c), c, own.column(c))
    if extra:
        read = own.column("_read")
        # The rows DuckDB could not read keep their keys as columns, for validate to fold (it
        # ignores names starting with "_").
        kept = [] if pc.all(read).as_py() else [c for c in extra if not c.startswith("_")]
        table = table.drop_columns([c for c in extra if c not in kept])
        for c in kept:
            col = table.column(c)
            table = table.set_column(table.schema.get_field_index(c), c,
                                     pc.if_else(read, pa.nulls(len(col), col.type), col))
        table = table.append_column(EXTRAS_COLUMN, own.column("_extras"))
    return table


# Why a line with a key written twice is quarantined: parsers disagree on which value counts
# (DuckDB's from_json keeps the first, Arrow and Python's json the last), so neither is stored.
# A template for both Python's str.format and DuckDB's format().
# The key as a JSON string (json.dumps; DuckDB's to_json on the SQL path): a key holding "; " or
# quotes stays one part of the reason (lib.metrics.inventory).
DUPLICATE_KEY_REASON = "key {} appears twice in the object: which value is meant is ambiguous"


class KeyedObject(dict):
    """A JSON object parsed by Python's json (``object_pairs_hook=KeyedObject.of_pairs``) that
    remembers ``repeated``, the first of its keys written twice (None when none is)."""

    repeated: str | None = None

    @classmethod
    def of_pairs(cls, pairs: list[tuple[str, object]]) -> KeyedObject:
        obj = cls(pairs)
        if len(obj) < len(pairs):
            seen: set[str] = set()
            obj.repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        return obj


def jsonl_table_of_head(head: bytes, max_lines: int = 20) -> str | None:
    """The canonical table the first complete JSON object among the first ``max_lines`` lines of
    ``head`` describes, or None (detection asks with fewer lines than the ingest does)."""
    lines = [ln for ln in head.removeprefix(UTF8_BOM).split(b"\n") if ln.strip()]
    complete = lines[:-1] if not head.endswith(b"\n") and len(lines) > 1 else lines
    for line in complete[:max_lines]:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # a line nested past Python's limit: the next
            continue
        if isinstance(obj, dict):
            return table_for(obj.keys())
    # The first line is longer than the head: judge by the keys seen so far, so a file of long
    # lines is detected and still takes the SQL path (one way to read canonical JSON lines).
    if lines and lines[0].lstrip().startswith(b"{"):
        return table_for({m.decode() for m in _KEY.findall(lines[0][:65536])})
    return None


def jsonl_rows_sql(name: str, blocks: str) -> tuple[str, list[str], str]:
    """SQL over a relation ``blocks(first_line, pieces, text)`` (lib.ingest.streams.TextBlock)
    giving one row per non-blank line: ``_line``, ``line`` (the text), ``_bad_json`` (not valid
    JSON), ``_not_obj`` (valid JSON but not an object), ``_extra_keys`` (the keys that are not
    columns of ``name``, or NULL), ``_dup_key`` (the first key the object has twice, or NULL) and
    every column of ``name`` as text (numbers as written, nested
    values as JSON). One JSON parse per line, plus a key listing only for lines that may hold
    extra keys.

    Returns (sql, the text columns, the SQL expression of the extras object: the JSON object, as
    text, of the extra keys the line has with a non-null value, NULL when there are none)."""
    cols = schema.TABLES[name].names
    struct = "{" + ", ".join(f'"{c}": "VARCHAR"' for c in cols) + "}"
    canon = "[" + ", ".join("'" + c + "'" for c in cols) + "]"
    # A line holds extra keys only if it has more keys than canonical fields with a value (json_keys
    # is cheap; filtering key lists is not, so only lines that fail this count are filtered). The
    # canonical names are a column, not a literal in the lambda: DuckDB rebuilds a literal list
    # for every row there (5x slower).
    present = " + ".join(f'CAST(j."{c}" IS NOT NULL AS INTEGER)' for c in cols)
    # The same count finds a key written twice (from_json would keep its first value silently,
    # Arrow and Python's parser the last): the line is quarantined as ambiguous (_dup_key).
    sql = f"""
        SELECT _line, line, _bad_json, _not_obj, _canon,
               list_filter(_keys, k -> NOT list_contains(_canon, k)) AS _extra_keys,
               list_filter(_keys, (k, i) -> list_position(_keys, k) < i)[1] AS _dup_key,
               j.*
        FROM (
        SELECT _line, line, j, _canon, j IS NULL AS _bad_json,
               j IS NOT NULL AND NOT starts_with(line, '{{')
                   AND NOT starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{{') AS _not_obj,
               CASE WHEN j IS NOT NULL AND len(json_keys(line)) <> {present}
                    THEN json_keys(line) END AS _keys
        FROM (
            SELECT _line, line, try(from_json(line, '{struct}')) AS j, {canon} AS _canon
            FROM (
                SELECT unnest(string_split(text, chr(10))) AS line,
                       unnest(range(first_line, first_line + pieces)) AS _line
                FROM {blocks}
            )
            -- (blank lines, of any length, as the fast path and Python's reader skip them;
            -- only a line that starts with a blank is trimmed)
            WHERE strlen(line) > 0 AND NOT (ascii(line) IN (32, 9, 13)
                                            AND trim(line, ' ' || chr(9) || chr(13)) = '')
        ))
    """
    return sql, list(cols), f"CASE WHEN len(_extra_keys) > 0 THEN {_EXTRAS_SQL} END"


# The JSON object (text) of the keys ``_extra_keys`` of the JSON object ``line`` that have a
# non-null value, NULL when none has: ``"key": null`` adds nothing, like a key the line lacks
# (on Arrow's path the two cannot be told apart; see lib/ingest/validate.py). A line with a key
# written twice is quarantined (``_dup_key``); were one here, its first value would count.
# Shared by the exact path (jsonl_rows_sql) and the chunked one (_own_values): the same line, the
# same text.
# Keys in sorted order (JSON objects have none), so the fast path, which reads each extra key
# as a column, writes the same text (lib/ingest/fastpath.py extras_sql).
def json_object_sql(entries: str) -> str:
    """SQL giving the JSON object (text) of ``entries``, a list of ``{'k': key, 'v': JSON value}``
    structs, keys sorted, NULL when the list is empty. The exact path (from each line) and the
    fast path (lib/ingest/fastpath.py, from columns) both build a row's extras with it."""
    return f"nullif(CAST(to_json(map_from_entries(list_sort({entries}))) AS VARCHAR), '{{}}')"


# The extras from one parse of the line for all its keys (json_extract of '$.*' beside
# json_keys), over rows with the line (``line``), its canonical names (``_canon``) and the first
# key it has twice (``_dup_key``). Extracting each key from the line inside a lambda parsed the
# whole line once per key, held until the row was done: one line of ~2,000 extra keys (30 KB)
# ran out of memory and failed its file. A line with a key written twice gets none (a map of a
# key twice raises): it is quarantined for that.
_EXTRAS_SQL = ("CASE WHEN _dup_key IS NULL THEN " + json_object_sql(
    "list_transform(list_filter(list_zip(json_keys(line), json_extract(line, '$.*')), "
    "e -> NOT list_contains(_canon, e[1]) AND json_type(e[2]) <> 'NULL'), "
    "e -> {'k': e[1], 'v': e[2]})") + " END")


JSONL = Format(name="jsonl", detect=_detect_jsonl, parse=_parse_jsonl, priority=90,
               doc="Canonical requests / evals / events / spans, one JSON object per line.",
               appendable=_appendable_jsonl)


# -- CSV ------------------------------------------------------------------------------------------
# Separators a header row may use: spreadsheets in locales with a decimal comma save "CSV" with
# semicolons, and tab-separated exports are common. A header is split by each; the one giving the
# most canonical column names wins (a comma on a tie).
CSV_DELIMITERS = (",", ";", "\t", "|")
_ALL_COLUMNS = frozenset(n for t in schema.TABLES.values() for n in t.names)


def csv_delimiter(header_line: str) -> str:
    """The separator of a CSV header row: the one of :data:`CSV_DELIMITERS` that splits it into
    the most canonical column names, then (a mapping's CSV has its own names) into the most
    fields; ``,`` on a tie."""
    best, best_score = ",", (-1, -1)
    for delimiter in CSV_DELIMITERS:
        if delimiter not in header_line and delimiter != ",":
            continue
        try:
            fields = next(csv.reader([header_line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        score = (sum(f.strip() in _ALL_COLUMNS for f in fields), len(fields))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_fields(header_line: str) -> tuple[list[str], str]:
    """The header's field names (stripped) and its separator."""
    delimiter = csv_delimiter(header_line)
    return [c.strip() for c in next(csv.reader([header_line], delimiter=delimiter))], delimiter


def csv_space_after_separator(header_line: str, delimiter: str) -> bool:
    """True when every separator of the header row is followed by a space (``a, b, c``, as
    hand-written files and ``", ".join(...)`` have it): the file's values then carry that space
    too, and it belongs to the separator, not to the value."""
    fields = next(csv.reader([header_line], delimiter=delimiter), [])
    return len(fields) > 1 and all(f.startswith(" ") and f.strip() for f in fields[1:])


def _csv_header(head: bytes) -> list[str] | None:
    first = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    if not first or first.lstrip().startswith((b"{", b"[")):
        return None
    try:
        return _csv_fields(first.decode("utf-8-sig"))[0]
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


def _detect_csv(head: bytes, filename: str) -> bool:
    header = _csv_header(head)
    return bool(header) and len(header) > 1 and table_for(header) is not None


def _parse_csv(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    yield from parse_csv_as(stream, None)


def parse_csv_as(stream: BinaryIO, table_name: str | None) -> Iterator[Chunk]:
    """CSV records as chunks of all-text tables with ``_line``; the table is ``table_name``, or
    recognized from the header when None (raises InputError if it names none)."""
    header_line: bytes | None = None
    columns: list[str] = []
    delimiter = ","
    spaced = False
    name: str | None = None
    carry, carry_line = b"", 0  # a quoted record still open at the end of a block
    for block in line_blocks(stream):
        data, first_line = block.data, block.first_line
        if carry:
            data, first_line = carry + data, carry_line
            carry = b""
        if header_line is None:
            stripped = data.lstrip(b"\r\n")
            if not stripped:
                yield Chunk(rejects=list(block.rejects))
                continue
            skipped = data[: len(data) - len(stripped)].count(b"\n")
            header_line, _, data = stripped.partition(b"\n")
            header_line = header_line.rstrip(b"\r")
            first_line += skipped + 1
            columns, delimiter = _csv_fields(header_line.decode("utf-8-sig"))
            spaced = csv_space_after_separator(header_line.decode("utf-8-sig"), delimiter)
            name = table_name or table_for(columns)
            if name is None:
                raise InputError(f"the CSV header {columns[:8]} names no canonical table (a "
                                 "file of requests needs request_id, or model and token "
                                 "counts; evals eval_id or metric and a result)")
            _refuse_repeated_names(columns)
        lines_of_data = LineBlock(first_line, data)
        record_lines, complete = _csv_records(lines_of_data)
        texts = _record_texts(lines_of_data, record_lines, complete)
        if complete < len(data):
            carry, carry_line = data[complete:], first_line + data[:complete].count(b"\n")
            data = data[:complete]
        all_records = record_lines
        data, record_lines, not_text = _drop_records_not_utf8(data, first_line, record_lines)
        table = None
        if not spaced:
            table, rejects = _arrow_csv(header_line, columns, data, record_lines, delimiter)
        if table is None:
            # each record from the texts (of the records as the block had them): the ones left
            # after those dropped for their bytes
            kept = np.searchsorted(all_records, record_lines)
            table, rejects = _python_csv(columns, [(int(all_records[i]), texts[int(i)].as_py())
                                                   for i in kept], delimiter, spaced)
        table = _without_empty_unnamed(table)
        if "_line" in table.column_names and len(all_records):
            lines = table.column("_line").to_numpy()
            if len(lines) != len(all_records):
                texts = texts.take(pa.array(np.searchsorted(all_records, lines)))
            table = table.append_column(RAW_TEXT_COLUMN, texts)
        rejects = list(block.rejects) + not_text + rejects
        yield Chunk(tables={name: table} if table.num_rows else {}, rejects=rejects)
    if carry:
        yield Chunk(rejects=[Reject(carry_line, _raw(carry),
                                    "unterminated quoted field at end of file")])


def _refuse_repeated_names(columns: list[str]) -> None:
    """Raise InputError for a CSV header naming a column twice: every record's value for it is
    ambiguous (a JSON line with a key twice is quarantined for the same reason)."""
    seen: dict[str, int] = {}
    for i, column in enumerate(c.strip() for c in columns):
        if not column:  # (trailing separators: see _without_empty_unnamed)
            continue
        if column in seen:
            raise InputError(f"the CSV header names {column!r} twice (columns {seen[column] + 1} "
                             f"and {i + 1}): give each column a name of its own")
        seen[column] = i


def _without_empty_unnamed(table: pa.Table) -> pa.Table:
    """``table`` without the columns that have no name and no value (a header's trailing
    separators, as spreadsheets write them: "a,b,,"). One unnamed column with values is kept
    (its values go into attributes under the key ""); several raise InputError."""
    unnamed = [i for i, n in enumerate(table.column_names) if user_key(n) == ""]
    if not unnamed:
        return table
    empty = [i for i in unnamed if table.column(i).null_count == table.num_rows]
    if len(unnamed) - len(empty) > 1:
        raise InputError(f"the CSV header leaves {len(unnamed) - len(empty)} columns that hold "
                         "values without a name: give each a name")
    # (by position: the unnamed columns share one name)
    return table.select([i for i in range(table.num_columns) if i not in empty]) if empty \
        else table


def _record_texts(block: LineBlock, record_lines: np.ndarray, end: int) -> pa.StringArray:
    """Each record of ``block`` (starting at ``record_lines``, the last ending at byte ``end``)
    as the file has it, for the quarantine to keep for a row that fails validation
    (lib.ingest.validate: RAW_TEXT_COLUMN) instead of a JSON rebuilt from the fields. Views of
    the block's bytes, not copies, until rows are dropped; trailing line ends stay on (validate
    trims them, only for the rows it quarantines). Not necessarily valid UTF-8: the records that
    are not are dropped before the texts are used. Uses the block's line numbers (computed once
    per block)."""
    numbers, starts, _ = block.line_numbers()
    offsets = np.append(starts[np.searchsorted(numbers, record_lines)], end)
    return pa.StringArray.from_buffers(len(record_lines), pa.py_buffer(
        offsets.astype(np.int32).tobytes()), pa.py_buffer(block.data))


def _csv_records(block: LineBlock) -> tuple[np.ndarray, int]:
    """Start line of each record (quoted fields may span lines) and the byte length of the
    complete records (a record still inside quotes at the end is left for the next block)."""
    numbers, starts, ends = block.line_numbers()
    if b'"' not in block.data:
        return numbers, len(block.data)
    data = block.data
    keep, open_quote, record_start_byte = [], False, 0
    for line_no, s, e in zip(numbers.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if not open_quote:
            keep.append(line_no)
            record_start_byte = s
        if data.count(b'"', s, e) % 2:
            open_quote = not open_quote
    if open_quote:
        keep.pop()
        return np.array(keep, np.int64), record_start_byte
    return np.array(keep, np.int64), len(data)


def _drop_records_not_utf8(data: bytes, first_line: int, record_lines: np.ndarray
                           ) -> tuple[bytes, np.ndarray, list[Reject]]:
    """``data`` (CSV records starting at ``record_lines``) without the records that are not valid
    UTF-8, which Arrow would refuse the whole block for; those become rejects."""
    try:
        data.decode("utf-8")
        return data, record_lines, []
    except UnicodeDecodeError:
        pass
    numbers, starts, _ = LineBlock(first_line, data).line_numbers()
    start_of = dict(zip(numbers.tolist(), starts.tolist(), strict=True))
    bounds = [start_of[n] for n in record_lines.tolist()] + [len(data)]
    kept, lines, rejects = [data[:bounds[0]]], [], []
    for i, line in enumerate(record_lines.tolist()):
        record = data[bounds[i]:bounds[i + 1]]
        try:
            record.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(Reject(line, _raw(record.rstrip(b"\r\n")),
                                  f"not valid UTF-8 text (byte {exc.start + 1} of the record)"))
            continue
        kept.append(record)
        lines.append(line)
    return b"".join(kept), np.array(lines, np.int64), rejects


def _arrow_csv(header: bytes, columns: list[str], data: bytes, record_lines: np.ndarray,
               delimiter: str = ",") -> tuple[pa.Table | None, list[Reject]]:
    """The records of ``data`` as an all-text table with ``_line``, and rejects; (None, []) when
    Arrow's rows do not line up with the records (a lone carriage return, which ends a row for
    Arrow but not a line here): :func:`_python_csv` reads that block instead."""
    invalid: list[tuple[int | None, str, int]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(header + b"\n" + data),
        read_options=pacsv.ReadOptions(use_threads=False,
                                       block_size=max(len(data) + 1024, 1 << 20)),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                         invalid_row_handler=on_invalid),
        # An unquoted NA, NaN, null... is a missing value (as R's write.csv and pandas write
        # one); a quoted "NA" is text (a customer or region named NA). An empty field is
        # missing, quoted or not (csv.QUOTE_ALL writes None as "").
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns}, strings_can_be_null=True,
            quoted_strings_can_be_null=False),
    )
    table = table.rename_columns([c.strip() for c in table.column_names])
    table = pa.Table.from_arrays(
        [pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
         if pa.types.is_string(col.type) else col for col in table.columns],
        names=table.column_names)
    if table.num_rows + len(invalid) != len(record_lines):
        return None, []
    rejects = []
    keep = np.ones(len(record_lines), dtype=bool)
    for number, text, found in invalid:
        # Arrow numbers rows from 1 with the header as row 1.
        idx = number - 2 if number is not None else None
        line = int(record_lines[idx]) if idx is not None and 0 <= idx < len(keep) else None
        if idx is not None and 0 <= idx < len(keep):
            keep[idx] = False
        rejects.append(Reject(line, text[: schema.RAW_MAX_CHARS],
                              _field_count_reason(len(columns), found)))
    lines = record_lines[keep]
    if len(lines) != table.num_rows:
        return None, []
    return keys_apart(table).append_column("_line", pa.array(lines, pa.int64())), rejects


# What Arrow's CSV reader reads as null in a text column (the _arrow_csv path): the same here.
_CSV_NULLS = frozenset(pacsv.ConvertOptions().null_values)
# Python's csv refuses a field over 128 KiB by default; Arrow's reader takes any a line can hold
# (lines are bounded by lib.ingest.streams.MAX_LINE_BYTES).
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


def _field_count_reason(expected: int, found: int) -> str:
    """The reason of a CSV record with the wrong number of fields: both numbers (the expected
    alone left its reader to count a long line's commas, review)."""
    return f"expected {expected} CSV fields, found {found}"


def _python_csv(columns: list[str], records: list[tuple[int, str]], delimiter: str,
                skip_space: bool) -> tuple[pa.Table, list[Reject]]:
    """:func:`_arrow_csv` with Python's csv reader, one record at a time: for a file with a space
    after each separator (``skip_space``: ``skipinitialspace`` drops it and still reads
    ``a, "b, c"`` as two fields; Arrow's reader has no such option and keeps `` gpt-4o``, an
    unpriced model), and for a block whose rows Arrow could not line up with its records.
    ``records``: (line, text) of each record. Same table (all text, ``_line``) and rejects. A
    record that reads as more than one (a lone carriage return ends a row for the csv readers)
    is a reject of its own, never shifting the others."""
    values: list[list[str | None]] = [[] for _ in columns]
    lines, rejects = [], []
    for line, text in records:
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                                          skipinitialspace=skip_space) if r]
        except csv.Error as exc:
            rejects.append(Reject(line, text.rstrip("\r\n")[: schema.RAW_MAX_CHARS],
                                  f"not a CSV record: {exc}"))
            continue
        if len(rows) != 1 or len(rows[0]) != len(columns):
            why = ("a carriage return ends the record early" if len(rows) > 1
                   else _field_count_reason(len(columns), len(rows[0]) if rows else 0))
            rejects.append(Reject(line, text.rstrip("\r\n")[: schema.RAW_MAX_CHARS], why))
            continue
        quoted = _quoted_fields(text, delimiter, skip_space)
        for i, (column, value) in enumerate(zip(values, rows[0], strict=True)):
            # as _arrow_csv reads them: a null marker is text when its field is quoted
            column.append(None if value == "" or (value in _CSV_NULLS and not (
                i < len(quoted) and quoted[i])) else value)
        lines.append(line)
    # (from arrays: a dict kept one of two unnamed columns, "a,b,,")
    table = pa.Table.from_arrays([pa.array(v, pa.string()) for v in values], names=columns)
    return keys_apart(table).append_column("_line", pa.array(lines, pa.int64())), rejects


def _quoted_fields(record: str, delimiter: str, skip_space: bool) -> list[bool]:
    """Whether each field of the CSV ``record`` (one record, as csv.reader reads it with
    ``delimiter`` and ``skipinitialspace=skip_space``) starts with a quote: csv.reader does not
    say (Python 3.12's QUOTE_NOTNULL would, for empty fields only)."""
    flags, at_start, in_quotes, i = [], True, False, 0
    while i < len(record):
        ch = record[i]
        if in_quotes:
            if ch == '"':
                if record[i + 1:i + 2] == '"':
                    i += 1  # an escaped quote
                else:
                    in_quotes = False
        elif at_start and skip_space and ch == " ":
            pass
        elif at_start:
            flags.append(ch == '"')
            in_quotes, at_start = ch == '"', False
            if ch == delimiter:  # an empty field
                flags[-1], at_start = False, True
        elif ch == delimiter:
            at_start = True
        i += 1
    if at_start:
        flags.append(False)  # the last field, empty
    return flags


CSV = Format(name="csv", detect=_detect_csv, parse=_parse_csv, priority=90,
             doc="Canonical requests / evals / events / spans as CSV with a header row "
                 "(separated by commas, semicolons, tabs or |).")


# -- Parquet -------------------------------------------------------------------------------------
def _detect_parquet(head: bytes, filename: str) -> bool:
    return head.startswith(b"PAR1")


def _parse_parquet(stream: BinaryIO, filename: str) -> Iterator[Chunk]:
    with tempfile.TemporaryFile(prefix="sightline-", suffix=".parquet") as spool:
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        try:
            pf = pq.ParquetFile(spool)
        except (pa.ArrowInvalid, OSError) as exc:  # its bytes will not change: say so once
            raise InputError(f"not a readable Parquet file: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                             ) from None
        name = table_for(pf.schema_arrow.names)
        if name is None:
            raise InputError(f"Parquet columns {pf.schema_arrow.names[:8]} name no canonical "
                             "table")
        row = 1
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            table = _signed(pa.Table.from_batches([batch]))
            lines = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
            row += table.num_rows
            yield Chunk(tables={name: keys_apart(table).append_column("_line", lines)})


def _signed(table: pa.Table) -> pa.Table:
    """``table`` with its unsigned 64-bit columns as the decimal text of their values: one past
    2^63 - 1 (a -1 that wrapped around in a u64 counter) is then quarantined on its row as "not
    an integer", where casting the column failed the whole file."""
    wide = [i for i, f in enumerate(table.schema) if pa.types.is_uint64(f.type)]
    for i in wide:
        table = table.set_column(i, table.field(i).name, table.column(i).cast(pa.string()))
    return table


PARQUET = Format(name="parquet", detect=_detect_parquet, parse=_parse_parquet, priority=90,
                 doc="Canonical requests / evals / events / spans as Parquet (line = row number).")

FORMATS = [JSONL, CSV, PARQUET]
