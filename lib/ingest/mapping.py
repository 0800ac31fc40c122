"""A user's own log shape, mapped onto a canonical table by a small YAML file (docs/mapping.md).

    table: requests            # requests | evals | events
    input: jsonl               # jsonl | csv | json (optional: guessed from the content)
    records: data.items        # json only: where the list of records is (optional)
    keep_unmapped: true        # other top-level fields go into attributes (default true)
    columns:
      request_id: id                         # a field path (dots go into nested objects)
      ts: {path: started, unit: s}           # epoch seconds (s | ms | us | ns), or ISO text
      latency_ms: {path: duration, unit: s}  # seconds → milliseconds
      provider: {value: openai}              # a constant
      input_tokens: usage.prompt_tokens
      logged_cost_usd: {path: cost, scale: 0.01}   # cents → dollars
      status: {path: success, values: {true: ok, false: error}}   # renamed values
      # Anthropic's raw usage.input_tokens EXCLUDES cache reads and writes; ours includes them:
      # input_tokens: {sum: [usage.input_tokens, usage.cache_read_input_tokens,
      #                      usage.cache_creation_input_tokens]}

For a ``*_ms`` column, ``unit`` converts to milliseconds; for a timestamp, it says what an epoch
number counts (``format: "%d/%m/%Y %H:%M"`` parses other text); ``scale`` multiplies. ``sum``
(numeric columns only) adds several paths: an absent part counts as 0, all absent gives null, and
``unit`` / ``scale`` apply to the total; a part that is not a number (or, on a column that cannot
be negative, a negative part) quarantines the row instead of being dropped. The mapped
rows then go through the same validation, pricing and quarantine as every format. Paths are
resolved in SQL over Arrow (nested objects as structs, or JSON text), never row by row.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as pa
import yaml

from lib import schema
from lib.ingest.base import Chunk, Format, Reject
from lib.ingest.formats.canonical import (
    DUPLICATE_KEY_REASON,
    KeyedObject,
    keys_apart,
    parse_csv_as,
    parse_jsonl_as,
    user_key,
)
from lib.ingest.formats.json_values import is_text
from lib.ingest.streams import text_start
from lib.ingest.validate import NON_NEGATIVE, RAW_TEXT_COLUMN, REQUIRED, extras_sql
from lib.schema import sql_identifier as _q
from lib.schema import sql_literal as _lit
from lib.store.connections import close as close_connection
from lib.store.connections import connect
from lib.yaml_files import NumbersLoader

MS_PER = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6, "min": 60_000.0, "h": 3_600_000.0}
EPOCH_DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
INPUTS = ("jsonl", "csv", "json")
JSON_CHUNK_ROWS = 50_000


class MappingError(ValueError):
    """The mapping file is malformed; the message names the file and the key."""


def load(path: str | os.PathLike) -> Format:
    """The Format a YAML mapping file describes (never auto-detected: ``--mapping`` forces it).
    Raises MappingError when the file is malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:  # a folder, a binary file given by mistake
        raise MappingError(f"{path}: cannot read mapping ({exc})") from exc
    return loads(text, str(path))


def loads(text: str, where: str, label: str | None = None) -> Format:
    """The Format a mapping's YAML text describes; ``where`` names it in messages, ``label`` in
    the format's name (``mapping:<label>``; a file's name by default). Raises MappingError when
    the text is malformed."""
    try:
        spec = yaml.load(text, Loader=NumbersLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:  # (one line, as a prices file's: PyYAML's ran over five)
        from lib.formatting import yaml_problem

        raise MappingError(f"{where}: cannot read mapping ({yaml_problem(exc)})") from exc
    mapping = Mapping.from_spec(spec, where)
    return Format(name=f"mapping:{label or Path(where).name}", detect=lambda head, filename: False,
                  parse=mapping.parse, priority=1000, doc=f"user mapping {where}",
                  identity="mapping " + hashlib.sha256(text.encode()).hexdigest())


TOP_KEYS = ("table", "input", "records", "keep_unmapped", "columns")
RULE_KEYS = ("path", "value", "sum", "values", "unit", "scale", "format")


class Mapping:
    """A validated mapping: target table, input kind, and one SQL expression per column."""

    def __init__(self, table: str, columns: dict[str, dict], input_kind: str | None,
                 records: str | None, keep_unmapped: bool, where: str):
        self.table, self.columns, self.input_kind = table, columns, input_kind
        self.records, self.keep_unmapped, self.where = records, keep_unmapped, where

    @classmethod
    def from_spec(cls, spec, where: str) -> Mapping:
        if not isinstance(spec, dict):
            raise MappingError(f"{where}: a mapping is a YAML object with table and columns")
        unknown = sorted(str(k) for k in spec if k not in TOP_KEYS)
        if unknown:
            raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)} (a mapping has "
                               f"{', '.join(TOP_KEYS)})")
        keep = spec.get("keep_unmapped", True)
        if not isinstance(keep, bool):
            raise MappingError(f"{where}: keep_unmapped must be true or false, not {keep!r}")
        table = spec.get("table")
        if table not in ("requests", "evals", "events", "spans"):
            raise MappingError(f"{where}: table must be requests, evals, events or spans")
        input_kind = spec.get("input")
        if input_kind is not None and input_kind not in INPUTS:
            raise MappingError(f"{where}: input must be one of {', '.join(INPUTS)}")
        if spec.get("records") is not None and input_kind not in (None, "json"):
            raise MappingError(f"{where}: records applies to input: json only (it says where "
                               "the list of records is in one JSON document)")
        cols = spec.get("columns")
        if not isinstance(cols, dict) or not cols:
            raise MappingError(f"{where}: columns must map canonical columns to fields")
        target = schema.TABLES[table]
        columns = {}
        for col, rule in cols.items():
            if col not in target.names:
                raise MappingError(f"{where}: {col!r} is not a column of {table}")
            rule = {"path": rule} if isinstance(rule, str) else rule
            if not isinstance(rule, dict) or not ({"path", "value", "sum"} & rule.keys()):
                raise MappingError(f"{where}: columns.{col} needs a path, a value or a sum")
            _check_rule(rule, col, target.field(col).type, f"{where}: columns.{col}")
            if "sum" in rule:
                _check_sum(rule, target.field(col).type, f"{where}: columns.{col}")
            if "values" in rule:
                rule = {**rule, "values": _check_values(rule, f"{where}: columns.{col}")}
            unit = rule.get("unit")
            if unit is not None:
                ok = EPOCH_DIVISOR if target.field(col).type == schema.TS else MS_PER
                if unit not in ok or (target.field(col).type != schema.TS
                                      and not col.endswith("_ms")):
                    raise MappingError(f"{where}: columns.{col}: unit {unit!r} not allowed here")
            columns[col] = rule
        return cls(table, columns, input_kind, spec.get("records"), keep, where)

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, stream: BinaryIO, filename: str) -> Iterator[Chunk]:
        # With records given the input is one JSON document (which may well be on one line).
        kind = self.input_kind or ("json" if self.records else _guess(stream, filename))
        if kind == "jsonl":
            chunks = parse_jsonl_as(stream, self.table)
        elif kind == "csv":
            chunks = parse_csv_as(stream, self.table)
        else:
            chunks = self._json_document(stream)
        con = connect(config={"autoinstall_known_extensions": False,
                              "autoload_known_extensions": False})
        con.execute("SET TimeZone = 'UTC'")
        try:
            for chunk in chunks:
                tables, not_read = {}, {}
                for name, table in chunk.tables.items():
                    tables[self.table], absent = self._apply(con, table,
                                                             json_lines=kind == "jsonl")
                    not_read = {absent_field_note(col, self.columns[col], self.table)
                                : table.num_rows for col in absent}
                    assert name == self.table
                yield Chunk(tables=tables, rejects=chunk.rejects, not_read=not_read)
        finally:
            close_connection(con)

    def _json_document(self, stream: BinaryIO) -> Iterator[Chunk]:
        # Bytes that are not UTF-8 become lone surrogates, so only their records are rejected
        # (below), like a "\ud800" escape.
        data = stream.read()
        # UTF-16/32 as json.loads detects it (PowerShell writes UTF-16); UTF-8 with bytes that are
        # not kept as lone surrogates.
        text = data.decode(json.detect_encoding(data), "surrogateescape").removeprefix("\ufeff")
        try:
            doc = json.loads(text, object_pairs_hook=KeyedObject.of_pairs)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply to read (Python's json "
                             "stops at about 1,000 levels)") from None
        records = _at(doc, self.records) if self.records else doc
        if not isinstance(records, list):
            raise ValueError(f"records {self.records or '(document)'} is not a list")
        for start in range(0, len(records), JSON_CHUNK_ROWS):
            # A record's "line" is its position in the list, from 1.
            part, numbers, rejects = [], [], []
            for number, record in enumerate(records[start:start + JSON_CHUNK_ROWS], start + 1):
                if not isinstance(record, dict):
                    rejects.append(Reject(number, _raw(record), "not a JSON object"))
                elif getattr(record, "repeated", None) is not None:
                    rejects.append(Reject(number, _raw(record),
                                          DUPLICATE_KEY_REASON.format(
                                              json.dumps(record.repeated, ensure_ascii=False))))
                elif not is_text(record):
                    rejects.append(Reject(number, _raw(record), "not valid UTF-8 text (or a lone "
                                                                "surrogate escape)"))
                else:
                    part.append(record)
                    numbers.append(number)
            if not part:
                yield Chunk(rejects=rejects)
                continue
            table = _records_table(part)
            lines = pa.array(numbers, pa.int64())
            yield Chunk(tables={self.table: keys_apart(table).append_column("_line", lines)},
                        rejects=rejects)

    def _apply(self, con: duckdb.DuckDBPyConnection, table: pa.Table,
               json_lines: bool = False) -> tuple[pa.Table, list[str]]:
        """``table`` (a block of records) mapped, and the columns whose fields no record of it
        has (every part of a sum absent)."""
        # by the user's keys (a "_line" of theirs is a column named apart: keys_apart)
        types = {user_key(f.name): f.type for f in table.schema}
        target = schema.TABLES[self.table]
        source = "mapped_input"
        # Arrow's JSON reader types text that looks like a date as a timestamp ("2026-03-01" as
        # 2026-03-01 00:00:00): a field holding one is read again from the line as written, text
        # (or an object's JSON, for paths into it), so a prompt version "2026-03-01" stays that.
        internal = ("_line", RAW_TEXT_COLUMN)
        # The user's fields go to DuckDB by position: its names are case-insensitive, and JSON
        # keys "M" and "m" are two fields.
        alias = {user_key(n): f"_f{i}" for i, n in enumerate(table.column_names)
                 if n not in internal}
        table = table.rename_columns([n if n in internal else alias[user_key(n)]
                                      for n in table.column_names])
        retyped = [n for n in alias if RAW_TEXT_COLUMN in table.column_names
                   and _holds_timestamp(types[n])]
        if retyped:
            source = "(SELECT * REPLACE ({}) FROM mapped_input)".format(", ".join(
                f"{_as_written(c, types[c])} AS {_q(alias[c])}" for c in retyped))
            types.update({c: pa.string() for c in retyped})
        exprs, used, absent = {}, set(), []
        for col, rule in self.columns.items():
            if "sum" in rule:
                paths = [str(p) for p in rule["sum"]]
                used.update(_path_parts(p)[0] for p in paths)
                if all(_path_sql(p, types, alias) == "NULL" for p in paths):
                    absent.append(col)
                expr = _sum_sql(paths, types, alias, rule, target.field(col).type,
                                col in NON_NEGATIVE.get(self.table, []))
            elif "value" in rule:
                expr = _convert(_literal(rule["value"]), rule, target.field(col).type)
            else:
                top = _path_parts(str(rule["path"]))[0]
                used.add(top)
                expr = _path_sql(str(rule["path"]), types, alias)
                if expr == "NULL":
                    absent.append(col)
                if "values" in rule:
                    expr = _values_sql(expr, rule["values"])
                expr = _convert(expr, rule, target.field(col).type)
            exprs[col] = expr
        if self.keep_unmapped:
            rest = [c for c in alias if c not in used and c not in self.columns]
            if rest and json_lines and RAW_TEXT_COLUMN in table.column_names:
                # Kept as the line has them: Arrow types a field for the whole block, so a 2
                # beside an "x" in another row was kept as "2", and 2 beside 2.5 as 2.0 (review)
                source = "(SELECT * REPLACE ({}) FROM {})".format(", ".join(
                    f"{_as_logged(c)} AS {_q(alias[c])}" for c in rest), source)
            if rest:
                # Only the keys this row has with a value: Arrow gives a row the keys its
                # neighbours in the block have, as nulls (lib.ingest.validate.extras_sql).
                extras = extras_sql([alias[c] for c in rest], labels=rest)
                mapped = exprs.get("attributes")
                # A mapped attributes object takes the other fields too (its own keys win); a
                # mapped value that is no object is left for validation to quarantine.
                exprs["attributes"] = extras if mapped is None else (
                    f"CASE WHEN {mapped} IS NULL THEN {extras} "
                    f"WHEN {extras} IS NULL THEN CAST({mapped} AS VARCHAR) "
                    f"WHEN json_type(try_cast(CAST({mapped} AS VARCHAR) AS JSON)) = 'OBJECT' "
                    f"THEN CAST(json_merge_patch({extras}, CAST({mapped} AS VARCHAR)) AS VARCHAR) "
                    f"ELSE CAST({mapped} AS VARCHAR) END")
        selects = [f"{expr} AS {_q(col)}" for col, expr in exprs.items()]
        selects += [c for c in internal if c in table.column_names]
        con.register("mapped_input", table)
        try:
            return con.execute(f"SELECT {', '.join(selects)} FROM {source}").to_arrow_table(), \
                absent
        finally:
            con.unregister("mapped_input")


def absent_field_note(column: str, rule: dict, table: str = "requests") -> str:
    """The report's note (a ``Chunk.not_read`` key, counting records) on the records without the
    field ``column``'s rule reads: a path mistyped (``usage.prompt_token``) stored every row with
    that column empty, and nothing said so. A column no row of ``table`` is stored without
    (request_id, ts, model…) quarantines them instead: the note said "stored" over a report of
    every row quarantined, found in review."""
    fields = " or ".join(str(p) for p in rule["sum"]) if "sum" in rule else str(rule["path"])
    fate = ("quarantined (a row needs it)" if column in REQUIRED.get(table, ())
            else f"stored with {column} empty")
    return f"record(s) without the field {fields} (columns.{column} of the mapping): {fate}."


def _holds_timestamp(typ: pa.DataType) -> bool:
    """Whether Arrow typed some value in ``typ`` (nested too) as a timestamp or date."""
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return True
    if pa.types.is_struct(typ):
        return any(_holds_timestamp(typ.field(i).type) for i in range(typ.num_fields))
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _holds_timestamp(typ.value_type)
    return False


def _as_written(key: str, typ: pa.DataType) -> str:
    """SQL: top-level field ``key`` of each row's line as written: its text, or its JSON."""
    path = _lit("$." + json.dumps(key, ensure_ascii=False))
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return f"json_extract_string({_q(RAW_TEXT_COLUMN)}, {path})"
    return f"json_extract({_q(RAW_TEXT_COLUMN)}, {path})"


def _as_logged(key: str) -> str:
    """SQL: top-level field ``key`` of each row's line as JSON as written; NULL where the line
    lacks it or wrote null (a null is dropped from attributes: lib.ingest.validate.extras_sql)."""
    path = _lit("$." + json.dumps(key, ensure_ascii=False))
    value = f"json_extract({_q(RAW_TEXT_COLUMN)}, {path})"
    return f"CASE WHEN json_type({value}) = 'NULL' THEN NULL ELSE {value} END"


def _guess(stream: BinaryIO, filename: str) -> str:
    head = stream.peek(65536) if hasattr(stream, "peek") else b""
    text = text_start(head)
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        # Without ``records`` a JSON document must be the list of records itself: one that
        # starts with an object is JSON lines, whatever its first line holds (cut off, longer
        # than the head: that line is quarantined, the others go on).
        return "jsonl"
    return "csv"


def _at(doc, path: str):
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):  # a constant object (attributes) as JSON text
        return _lit(json.dumps(value, ensure_ascii=False))
    return _lit(value)


def _raw(value) -> str:
    return json.dumps(value)[:schema.RAW_MAX_CHARS]  # ASCII: a lone surrogate stays an escape




def _records_table(records: list[dict]) -> pa.Table:
    """The records as a table with a column for every key any of them has (Arrow's from_pylist
    takes the first record's keys only, silently dropping the others'). A column whose values
    Arrow cannot hold as one type (types differ, a number past 64 bits) is all text, for
    validation to type."""
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([_text(v) for v in values], pa.string())
    return pa.table(columns)


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _path_parts(path: str) -> list[str]:
    """The fields of a dotted path, a list's index written ``choices.0`` or ``choices[0]``."""
    return re.sub(r"\[(\d+)\]", r".\1", path).split(".")


def _path_sql(path: str, types: dict[str, pa.DataType], alias: dict[str, str]) -> str:
    """SQL reading a dotted path: struct fields and list items (a part that is a number indexes
    a list from 0, as ``choices.0.message.content`` in an OpenAI response; it gave null for every
    row, without a word), or JSON text past the first that is neither."""
    parts = _path_parts(path)
    if parts[0] not in types:
        return "NULL"
    expr, typ = _q(alias[parts[0]]), types[parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        if pa.types.is_list(typ) or pa.types.is_large_list(typ):
            if not part.isdigit():
                return "NULL"  # (a list has no named fields)
            expr, typ = f"list_extract({expr}, {int(part) + 1})", typ.value_type
            continue
        if pa.types.is_struct(typ):
            if typ.get_field_index(part) < 0:
                return "NULL"
        if pa.types.is_struct(typ) and len({f.name.lower() for f in typ}) == typ.num_fields:
            expr, typ = f"struct_extract({expr}, {_lit(part)})", typ.field(part).type
        else:
            if pa.types.is_struct(typ):
                # fields whose names differ only in case ("P", "p"), which DuckDB's struct
                # fields cannot tell apart (struct_extract_at too): through the JSON text
                expr = f"to_json({expr})"
            # Text that is not a JSON object (CSV's "", "n/a") has no such path: absent, like a
            # missing struct field (json_extract_string would raise and fail the whole file).
            # A number is a key of an object ({"0": ...}) or else an index of an array.
            keys = "$." + ".".join(f'"{p}"' for p in parts[i:])
            text = f"CAST({expr} AS VARCHAR)"
            found = f"try(json_extract_string({text}, {_lit(keys)}))"
            if any(p.isdigit() for p in parts[i:]):
                items = "$" + "".join(f"[{p}]" if p.isdigit() else f'."{p}"' for p in parts[i:])
                found = f"coalesce({found}, try(json_extract_string({text}, {_lit(items)})))"
            return found
    if pa.types.is_struct(typ) or pa.types.is_list(typ) or pa.types.is_map(typ):
        return f"CAST(to_json({expr}) AS VARCHAR)"
    return expr


def _check_rule(rule: dict, col: str, target: pa.DataType, where: str) -> None:
    """Refuse a rule whose intent is unclear: an unknown (misspelled) key, a path and a value
    together, a path that is not text, a scale that is not a finite number, a format or unit that
    is not text, a format on a column that is no timestamp."""
    unknown = sorted(str(k) for k in rule if k not in RULE_KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)} (a column's rule has "
                           f"{', '.join(RULE_KEYS)})")
    if {"path", "value"} <= rule.keys():
        raise MappingError(f"{where}: a path or a value, not both")
    if "path" in rule and not (isinstance(rule["path"], str) and rule["path"]):
        raise MappingError(f"{where}: path must be a field path (text), not {rule['path']!r}")
    scale = rule.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not math.isfinite(scale)):
        raise MappingError(f"{where}: scale must be a finite number, not {scale!r}")
    for key in ("unit", "format"):
        if rule.get(key) is not None and not isinstance(rule[key], str):
            raise MappingError(f"{where}: {key} must be text, not {rule[key]!r}")
    if rule.get("format") is not None and target != schema.TS:
        raise MappingError(f"{where}: format applies to timestamps only ({col} is not one)")


def _check_sum(rule: dict, target: pa.DataType, where: str) -> None:
    parts = rule["sum"]
    if {"path", "value"} & rule.keys():
        raise MappingError(f"{where}: sum cannot be combined with path or value")
    if not isinstance(parts, list) or not parts or not all(
            isinstance(p, str) and p for p in parts):
        raise MappingError(f"{where}: sum must be a list of field paths")
    if target not in (pa.int64(), pa.float64()):
        raise MappingError(f"{where}: sum is only for numeric columns")


def _check_values(rule: dict, where: str) -> dict[str, str | None]:
    """The rule's ``values`` as text → text (YAML's ``true: ok`` reads its key as a boolean and
    ``200: ok`` as a number: both are compared as the JSON text of the logged value, ``true`` and
    ``200``)."""
    values = rule["values"]
    if "path" not in rule:
        raise MappingError(f"{where}: values renames the values of a path (it needs one)")
    if not isinstance(values, dict) or not values:
        raise MappingError(f"{where}: values must map logged values to stored ones, e.g. "
                           "{true: ok, false: error}")
    out = {}
    for k, v in values.items():
        if isinstance(k, dict | list) or k is None or isinstance(v, dict | list):
            raise MappingError(f"{where}: values maps one logged value (text, a number, true "
                               f"or false) to one stored value, not {k!r}: {v!r}")
        if _text(k) in out:  # (YAML keeps the last 429: twice; true and "true" are one text)
            raise MappingError(f"{where}: values lists the logged value {_text(k)} twice")
        out[_text(k)] = _text(v)
    return out


def _values_sql(expr: str, values: dict[str, str | None]) -> str:
    """SQL: the value at ``expr`` renamed by ``values`` (compared as its text: JSON's true is
    'true'); a value not listed passes on as it is, for validation to take or quarantine."""
    text = f"CAST({expr} AS VARCHAR)"
    cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v) if v is not None else 'NULL'}"
                     for k, v in values.items())
    return f"CASE {text} {cases} ELSE {text} END"


def _sum_sql(paths: list[str], types: dict[str, pa.DataType], alias: dict[str, str],
             rule: dict, target: pa.DataType, non_negative: bool) -> str:
    """SQL adding the numbers at ``paths``, as text that validation then types: an absent part
    counts as 0 and all absent gives NULL; ``unit`` / ``scale`` apply to the total. A part that is
    there but not a finite number gives ``'value (path)'`` instead (validation quarantines it as
    not a number), and on a ``non_negative`` column a negative part gives its own value (quarantined
    as negative), so a bad part never hides inside a plausible total."""
    texts = [f"CAST({_path_sql(p, types, alias)} AS VARCHAR)" for p in paths]
    nums = [f"TRY_CAST({t} AS DOUBLE)" for t in texts]
    bad = [f"CASE WHEN {t} IS NOT NULL AND NOT coalesce(isfinite({n}), false) "
           f"THEN left({t}, 20) || {_lit(' (' + p + ')')} END"
           for p, t, n in zip(paths, texts, nums, strict=True)]
    if non_negative:
        bad += [f"CASE WHEN {n} < 0 THEN {t} END" for t, n in zip(texts, nums, strict=True)]
    total = (f"CASE WHEN {' OR '.join(f'{t} IS NOT NULL' for t in texts)} "
             f"THEN {' + '.join(f'coalesce({n}, 0)' for n in nums)} END")
    return f"coalesce({', '.join(bad)}, CAST({_convert(total, rule, target)} AS VARCHAR))"


def _number(expr: str) -> str:
    """SQL: the value as a DOUBLE, NULL when it is no number (a boolean is none: DuckDB would
    cast true to 1)."""
    return (f"CASE WHEN typeof({expr}) = 'BOOLEAN' THEN NULL "
            f"ELSE TRY_CAST({expr} AS DOUBLE) END")


def _convert(expr: str, rule: dict, target: pa.DataType) -> str:
    unit, scale, fmt = rule.get("unit"), rule.get("scale"), rule.get("format")
    if target == schema.TS:
        # A value that does not convert is passed on as its text, for validation to type or
        # quarantine ("ts is not a timestamp: abc"): strptime and to_timestamp would raise and
        # fail the whole file.
        text = f"CAST({expr} AS VARCHAR)"
        if not fmt and not unit:
            return expr
        converted = text
        if unit:
            # The unit is what the number counts: one out of range for it (milliseconds under
            # unit: s) is passed on with the reason, never re-read in a unit its size suggests.
            seconds = f"({_number(expr)} / {EPOCH_DIVISOR[unit]})"
            time = (f"CASE WHEN {seconds} BETWEEN -62135596800 AND 253402300799 "
                    f"THEN to_timestamp({seconds}) END")
            converted = (f"CASE WHEN {time} IS NOT NULL THEN CAST({time} AS VARCHAR) "
                         f"WHEN {seconds} IS NOT NULL THEN {text} || "
                         f"{_lit(f' (an epoch out of range for unit {unit})')} ELSE {text} END")
        if fmt:
            # With a unit too (a log mixing "02/03/2026 12:00" and epochs), text the format
            # parses is that time and the rest goes by the unit: the unit is not dropped.
            time = f"try_strptime({text}, {_lit(fmt)})"
            converted = (f"CASE WHEN {time} IS NULL THEN {converted} "
                         f"ELSE CAST({time} AS VARCHAR) END")
        return converted
    if not unit and scale is None:
        return expr
    number = _number(expr)
    factor = Decimal(repr(MS_PER[unit])) if unit else Decimal(1)
    if scale is not None:
        factor *= Decimal(repr(float(scale)))
    converted = f"({number} * {float(factor)!r})"
    if factor == factor.quantize(Decimal("1e-9")) and abs(factor) < Decimal("1e11"):
        # In decimal, so 1.001 s is 1001 ms and 57 cents $0.57, not the float product's
        # 1000.9999999999999 and 0.5700000000000001; past DECIMAL's range, the float product.
        # Through text: DuckDB's DECIMAL(38, 24) → DOUBLE is not correctly rounded (0.35 gives
        # 0.35000000000000003), its text → DOUBLE is.
        exact = (f"try(CAST(CAST(TRY_CAST(CAST({expr} AS VARCHAR) AS DECIMAL(38, 15)) "
                 f"* CAST('{factor:f}' AS DECIMAL(20, 9)) AS VARCHAR) AS DOUBLE))")
        converted = f"coalesce({exact}, {converted})"
    # A value that is not a number is passed on as it is, so validation quarantines it with its
    # own text ("latency_ms is not a finite number: n/a") instead of it becoming a silent null.
    return (f"CASE WHEN {number} IS NULL THEN CAST({expr} AS VARCHAR) "
            f"ELSE CAST({converted} AS VARCHAR) END")
