"""Helpers for format tests: run a parser and gather its chunks into whole tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc


def collect(chunks: list) -> tuple[dict, list, list]:
    """(tables by name — each concatenated over the chunks, or None —, all rejects, chunks)."""
    tables = {}
    for name in ("requests", "spans", "evals"):
        parts = [c.tables[name] for c in chunks if name in c.tables]
        tables[name] = pa.concat_tables(parts) if parts else None
    return tables, [r for c in chunks for r in c.rejects], chunks


def parse_file(fmt, path: Path, **kwargs) -> tuple[dict, list, list]:
    """All chunks of a file parsed by ``fmt``, gathered by :func:`collect`."""
    with open(path, "rb") as f:
        return collect(list(fmt.parse(f, path.name, **kwargs)))


def total(table: pa.Table, column: str) -> int:
    return pc.sum(table[column]).as_py() or 0
