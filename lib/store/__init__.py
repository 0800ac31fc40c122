"""The lake store (Parquet files + manifest) and the DuckDB engine that reads it."""

from __future__ import annotations

import os
from pathlib import Path

from lib.store.engine import Engine
from lib.store.lake import Commit, Lake, Snapshot, WriteResult, content_hash_of

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_STORE = PROJECT_DIR / "data" / "store"


def store_root(explicit: str | os.PathLike | None = None) -> Path:
    """The store root: ``explicit`` (``--store``), else ``$SIGHTLINE_STORE``, else data/store."""
    value = explicit or os.environ.get("SIGHTLINE_STORE") or DEFAULT_STORE
    return Path(value).expanduser().resolve()


def state_dir(root: Path) -> Path:
    """Where small mutable state (SQLite, caches) lives: beside the lake, in ``<root>/_state``."""
    path = root / "_state"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_lake(explicit: str | os.PathLike | None = None) -> Lake:
    return Lake(store_root(explicit))


__all__ = ["Commit", "Engine", "Lake", "Snapshot", "WriteResult", "content_hash_of", "open_lake",
           "store_root", "state_dir", "DEFAULT_STORE", "PROJECT_DIR"]
