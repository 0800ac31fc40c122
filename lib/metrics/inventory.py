"""What is in the store: tables, row counts, time ranges, freshness, batches, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from lib import schema
from lib.formatting import table_rows
from lib.ingest.appended import READ
from lib.ingest.base import not_read_notes
from lib.ingest.values import REASON_SEPARATOR
from lib.store.engine import Engine


def tables(engine: Engine) -> pl.DataFrame:
    """Per table: ``table, rows, first_ts, last_ts, last_ingested_at, files`` (times UTC)."""
    parts = []
    for name in schema.TABLES:
        parts.append(
            f"SELECT '{name}' AS \"table\", count(*) AS rows, min(ts) AS first_ts, "
            f"max(ts) AS last_ts, max(ingested_at) AS last_ingested_at, "
            f"{len(engine.files.get(name, []))} AS files FROM {name}")
    return engine.query(" UNION ALL ".join(parts))


# The kinds of commit the lake writes, as the Data page offers them to pick from.
BATCH_KINDS = ("ingest", "seen", "failed", "demo", "compact", "reprice", "remove")
# Those that write rows already stored again (merged, repriced, or kept beside a batch taken
# out): their files' rows are no rows stored, nor inputs quarantined.
REWRITE_KINDS = ("compact", "reprice", "remove")


def batches(engine: Engine, *, limit: int | None = None, kind: str | None = None,
            source_contains: str | None = None) -> pl.DataFrame:
    """The manifest, newest first: ``committed_at, kind, source, format, rows, quarantined,
    files, removed, note, commit_id``. A batch taken out later (``python -m lib remove``) says
    so in its note, and the remove commit names it. ``rows`` counts the rows stored over all tables,
    ``quarantined`` the inputs kept aside (apart: a batch of 1 good and 1 bad line stored 1 row),
    both null for a commit that rewrote stored rows (:data:`REWRITE_KINDS`), whose note says how
    many it rewrote;
    ``note`` says why a "seen" source gave no rows, or what an ingest read but did not store
    ("3 log record(s) that are not gen_ai.evaluation.result events: not read").
    Only commits of ``kind`` and whose source holds ``source_contains`` (case-insensitive),
    at most ``limit`` of them (the newest: a year of a file a minute is half a million)."""
    commits = engine.commits()
    removed_by = {c.info["removed_batch"]: c.commit_id for c in commits
                  if c.kind == "remove" and isinstance(c.info, dict)
                  and c.info.get("removed_batch")}
    needle = source_contains.casefold() if source_contains else None
    rows = []
    for c in reversed(commits):
        if limit is not None and len(rows) >= limit:
            break
        if (kind is not None and c.kind != kind) or \
                (needle is not None and needle not in c.source.casefold()):
            continue
        info = c.info if isinstance(c.info, dict) else {}
        note = _note(info)
        rewrote = c.kind in REWRITE_KINDS
        if rewrote and sum(c.rows.values()):
            # (they were "Rows stored" and "Quarantined": a remove after a compaction read as
            # storing the 1,868 rows it kept and quarantining 903, review)
            rewritten = table_rows({t: n for t, n in c.rows.items() if n})
            note = "; ".join(filter(None, [note, f"rewrote {rewritten} already stored"]))
        if c.commit_id in removed_by:
            note = "; ".join(filter(None, [f"removed by commit {removed_by[c.commit_id]}",
                                           note]))
        rows.append({
            "committed_at": c.committed_at, "kind": c.kind, "source": c.source,
            "format": info.get("format"),
            "rows": None if rewrote else sum(n for t, n in c.rows.items()
                                             if t != "quarantine"),
            "quarantined": None if rewrote else c.rows.get("quarantine", 0),
            "files": len(c.added), "removed": len(c.removed), "note": note,
            "commit_id": c.commit_id,
        })
    frame = pl.DataFrame(rows, schema={
        "committed_at": pl.String, "kind": pl.String, "source": pl.String, "format": pl.String,
        "rows": pl.Int64, "quarantined": pl.Int64, "files": pl.Int64, "removed": pl.Int64,
        "note": pl.String, "commit_id": pl.String})
    return frame.with_columns(pl.col("committed_at").str.to_datetime(time_zone="UTC"))


def failed_note(info: dict) -> str:
    """What a "failed" record (lib/ingest/failures.py) says: how many sources could not be
    read, and the first reasons."""
    errors = info.get("errors") if isinstance(info.get("errors"), list) else []
    more = info["failed"] - len(errors)
    return (f"{info['failed']:,} source(s) could not be read, and are read again by the next "
            "run: " + "; ".join(str(e) for e in errors) + (f"; … and {more:,} more"
                                                           if more > 0 else ""))


def recent_failed_run(engine: Engine, within_s: float = 86_400) -> dict | None:
    """The newest "failed" record committed in the last ``within_s`` seconds, as
    ``{committed_at, source, note}``, or None."""
    for c in reversed(engine.commits()):
        at = datetime.fromisoformat(c.committed_at)
        if (datetime.now(UTC) - at).total_seconds() > within_s:
            return None
        if c.kind == "failed" and isinstance(c.info, dict) and c.info.get("failed"):
            return {"committed_at": at, "source": c.source, "note": failed_note(c.info)}
    return None


def _note(info: dict) -> str | None:
    """A commit's note: why a "seen" source gave no rows, else what its format did not read and
    the hints on its fields (lib.ingest.hints)."""
    if info.get("seen"):
        return info["seen"]
    if info.get("failed"):  # (lib/ingest/failures.py)
        return failed_note(info)
    if info.get("removed_batch"):
        taken = info.get("removed_rows") if isinstance(info.get("removed_rows"), dict) else {}
        rows = table_rows(taken)
        who = " by " + str(info["by"]) if info.get("by") else ""
        why = f": {info['reason']}" if info.get("reason") else ""
        return f"took out batch {info['removed_batch']} ({rows}){who}{why}"
    not_read = info.get("not_read")
    notes = not_read_notes(not_read) if isinstance(not_read, dict) else []
    read = info.get(READ)
    if isinstance(read, dict) and read.get("start"):
        notes.insert(0, f"bytes {read['start']:,}-{read.get('end', 0):,} of the file: what was "
                        "appended since the read before")
    hints = info.get("hints")
    notes += [h for h in hints if isinstance(h, str)] if isinstance(hints, list) else []
    return "; ".join(notes) or None


# The checks a quarantine reason names: its "; "-separated parts ("missing ts; missing model"),
# each without the value it quotes after ": " ("input_tokens is negative: -10"), a format's
# "span not usable: <why>" with its why ("span not usable: gen_ai.usage.input_tokens is not an
# integer"), and with numbers as N ("expected N CSV fields, found N", "byte N of the record",
# "N of N bytes" for "46 of 3,171 bytes"), so rows failing the same check group together; hex
# ids (a span's) as ID. A value holding "; " is quoted as a JSON string
# (lib.ingest.values.shown), and so is a key in a reason (canonical's DUPLICATE_KEY_REASON):
# such strings are emptied before the split ('key "id" appears twice' is the check 'a key
# appears twice').
_CHECK_OF_PART = ("CASE WHEN regexp_matches(x, '^[^:]* not (usable|readable|storable): ') "
                  "THEN split_part(x, ': ', 1) || ': ' || split_part(x, ': ', 2) "
                  "ELSE split_part(x, ': ', 1) END")
_QUOTED_VALUES = ("regexp_replace(regexp_replace(coalesce(reason, 'no reason'), "
                  r"""'key "([^"\\]|\\.)*"', 'a key', 'g'), """
                  r"""': "([^"\\]|\\.)*"', ': ""', 'g')""")
_CHECKS_SQL = (f"list_distinct(list_transform(string_split({_QUOTED_VALUES}, "
               f"'{REASON_SEPARATOR}'), "
               f"x -> regexp_replace(regexp_replace({_CHECK_OF_PART}, "
               "'\\b([0-9a-f]{16}|[0-9a-f]{32})\\b', 'ID', 'g'), "
               "'([ (])[0-9]+(,[0-9]{3})*([ )]|$)', '\\1N\\3', 'g')))")


# A raw text cut to RAW_MAX_CHARS characters is that long; one cut to as many bytes before it was
# decoded is that many bytes, or up to 2 more where a character cut in two became one U+FFFD, or
# longer still where bytes that were not UTF-8 became U+FFFD (3 bytes each). A longer raw text
# without a U+FFFD is whole: every record of 700 Chinese characters was flagged cut (review).
_RAW_CUT_SQL = (f"coalesce(length(raw) >= {schema.RAW_MAX_CHARS} OR (strlen(raw) >= "
                f"{schema.RAW_MAX_CHARS} AND (strlen(raw) <= {schema.RAW_MAX_CHARS + 2} "
                "OR contains(raw, chr(65533)))), false)")


def quarantine(engine: Engine, limit: int | None = None, *, source_file: str | None = None,
               check: str | None = None) -> pl.DataFrame:
    """Quarantined inputs, newest first: ``ingested_at, source_file, line, reason, raw,
    raw_cut``; only those of ``source_file`` and failing ``check`` (as :func:`quarantine_checks`
    names it) when given. ``raw_cut``: the raw text reached the schema.RAW_MAX_CHARS limit the
    quarantine keeps, so the record may be longer (in characters, or in bytes where the JSON-lines
    readers cut a line before decoding it: :data:`_RAW_CUT_SQL`; a record exactly that long is
    flagged too, the store keeping no other sign)."""
    where, params = [], {}
    if source_file is not None:
        where.append("source_file = $file")
        params["file"] = source_file
    if check is not None:
        where.append(f"list_contains({_CHECKS_SQL}, $check)")
        params["check"] = check
    lim = f"LIMIT {int(limit)}" if limit else ""
    return engine.query(
        f"SELECT ingested_at, source_file, line, reason, raw, {_RAW_CUT_SQL} AS raw_cut "
        "FROM quarantine "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY ingested_at DESC, source_file, line {lim}", params)


def quarantine_files(engine: Engine) -> list[str]:
    """The source files of quarantined inputs, by name."""
    return engine.query("SELECT DISTINCT source_file FROM quarantine WHERE source_file "
                        "IS NOT NULL ORDER BY 1")["source_file"].to_list()


def quarantine_checks(engine: Engine) -> pl.DataFrame:
    """Why inputs were quarantined, the most frequent first: ``check`` (a reason without the
    value it quotes, e.g. "input_tokens is negative"), ``inputs`` failing it (an input failing
    two checks counts under each), ``files`` they came from, ``last_ingested_at`` (UTC)."""
    return engine.query(
        f"SELECT c AS check, count(*) AS inputs, count(DISTINCT source_file) AS files, "
        f"max(ingested_at) AS last_ingested_at "
        f"FROM (SELECT source_file, ingested_at, unnest({_CHECKS_SQL}) AS c FROM quarantine) "
        f"GROUP BY c ORDER BY inputs DESC, c")

