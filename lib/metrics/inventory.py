"""What is in the store: tables, row counts, time ranges, freshness, batches, quarantine."""

from __future__ import annotations

import polars as pl

from lib import schema
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


def batches(engine: Engine) -> pl.DataFrame:
    """The manifest, newest first: ``committed_at, kind, source, rows, files, removed, note,
    commit_id`` (rows is the total over tables; note says why a "seen" source gave no rows)."""
    commits = engine.lake.commits()
    rows = [{
        "committed_at": c.committed_at, "kind": c.kind, "source": c.source,
        "rows": sum(c.rows.values()), "files": len(c.added), "removed": len(c.removed),
        "note": (c.info or {}).get("seen") if isinstance(c.info, dict) else None,
        "commit_id": c.commit_id,
    } for c in reversed(commits)]
    frame = pl.DataFrame(rows, schema={"committed_at": pl.String, "kind": pl.String,
                                       "source": pl.String, "rows": pl.Int64, "files": pl.Int64,
                                       "removed": pl.Int64, "note": pl.String,
                                       "commit_id": pl.String})
    return frame.with_columns(pl.col("committed_at").str.to_datetime(time_zone="UTC"))


def quarantine(engine: Engine, limit: int | None = None) -> pl.DataFrame:
    """Quarantined inputs, newest first: ``ingested_at, source_file, line, reason, raw``."""
    lim = f"LIMIT {int(limit)}" if limit else ""
    return engine.query(
        "SELECT ingested_at, source_file, line, reason, raw FROM quarantine "
        f"ORDER BY ingested_at DESC, source_file, line {lim}")

