"""The lake store (Parquet files + manifest) and the DuckDB engine that reads it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from lib.store.engine import Engine
from lib.store.lake import Commit, Lake, Snapshot, WriteResult, content_hash_of

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_STORE = PROJECT_DIR / "data" / "store"


def store_root(explicit: str | os.PathLike | None = None) -> Path:
    """The store root: ``explicit`` (``--store``), else ``$SIGHTLINE_STORE``, else data/store."""
    value = explicit or os.environ.get("SIGHTLINE_STORE") or DEFAULT_STORE
    return Path(value).expanduser().resolve()


def store_option(root: str | os.PathLike) -> str:
    """`` --store ROOT`` for a command the app tells its user to run, or "" for the default
    store, which the CLI finds by itself. The app's ``SIGHTLINE_STORE`` is often set for its own
    process alone (``SIGHTLINE_STORE=... streamlit run app.py``): the bare command, pasted into
    another shell, wrote to data/store while the app went on showing its empty store."""
    root = Path(root).expanduser().resolve()
    return "" if root == DEFAULT_STORE.resolve() else f" --store {shlex.quote(str(root))}"


def state_dir(root: Path) -> Path:
    """Where small mutable state (SQLite, caches) lives: beside the lake, in ``<root>/_state``."""
    path = root / "_state"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_lake(explicit: str | os.PathLike | None = None) -> Lake:
    return Lake(store_root(explicit))


__all__ = ["Commit", "Engine", "Lake", "Snapshot", "WriteResult", "content_hash_of", "open_lake",
           "store_root", "state_dir", "DEFAULT_STORE", "PROJECT_DIR"]
