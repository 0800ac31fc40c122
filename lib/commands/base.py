"""What every command shares: the usage error, JSON output, window parsing, opening the store."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime


class UsageError(Exception):
    """Bad usage or unreadable input: reported on stderr, exit status 2."""


def print_json(doc) -> None:
    """Print one JSON document on stdout (the ``--json`` contract)."""
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_time(value: str | None) -> datetime | None:
    """ISO date or time → aware UTC datetime; naive values are UTC (design §6)."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"not an ISO date or time: {value!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def parse_window(value: str) -> tuple[datetime, datetime]:
    """``FROM..TO`` → (from, to), half-open."""
    if ".." not in value:
        raise UsageError(f"a window is FROM..TO, got {value!r}")
    a, b = value.split("..", 1)
    start, end = parse_time(a), parse_time(b)
    if start >= end:
        raise UsageError(f"window {value!r} is empty: FROM must be before TO")
    return start, end


def filter_values(items: list[str]) -> dict[str, list[str]]:
    """``--where KEY=VALUE`` options → ``{column: [values]}`` for :class:`lib.filters.Filters`
    (a key is a filter key, ``attr.<key>``, or the column's own name, as the sidebar's URL
    filters take them; a column given twice keeps both values, either matching)."""
    from lib.filters import column_for_key, key_for_column

    values: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--where takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        # The column's own name too (customer_id), as `summary --where` takes it: a filter
        # copied from one command to the other was refused.
        column = column_for_key(key.strip()) or column_for_key(key_for_column(key.strip()))
        if column is None:
            raise UsageError(f"cannot filter on {key!r}")
        values.setdefault(column, []).append(value)
    return values


def finite_or_none(value):
    """``value``, or None for NaN and ±infinity: strict JSON has neither (``json.dump`` wrote
    ``Infinity``, which ``jq`` and ``JSON.parse`` refuse)."""
    import math

    return None if isinstance(value, float) and not math.isfinite(value) else value


def unread_files(engine) -> list[str]:
    """The store's data files that cannot be read (``engine.problems()``), each also said on
    stderr: a command whose numbers leave their rows out puts them in its document and exits
    1 (a check failed)."""
    problems = engine.problems()
    for problem in problems:
        print(f"warning: {problem}; its rows are not counted", file=sys.stderr)
    return problems


def read_store(store: str | None):
    """``(engine, problems)`` for a command that answers from the existing store at ``--store``
    (:func:`open_existing_lake`): an engine keeping one version for the whole answer, and the
    data files it cannot read (:func:`unread_files`), which would silently change the answer."""
    from lib.store import Engine

    engine = Engine(open_existing_lake(store), auto_refresh=False)
    return engine, unread_files(engine)


def open_store_lake(store: str | None):
    """The lake at ``--store`` (or ``$SIGHTLINE_STORE``, or the default), to write to: a usage
    error (exit 2) for a URI (the store is a local folder; `--store s3://…` made a folder named
    "s3:") or a path that is a file."""
    import os
    import re

    from lib.formatting import terminal_text
    from lib.store import open_lake

    given = store or os.environ.get("SIGHTLINE_STORE") or ""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", given):
        raise UsageError(f"the store is a local folder, not {terminal_text(given)} (ingest "
                         "reads s3:// sources into it: `ingest s3://bucket/prefix`)")
    lake = open_lake(store)
    if lake.root.exists() and not lake.root.is_dir():
        raise UsageError(f"{terminal_text(lake.root)} is a file, not a store folder")
    return lake


def open_existing_lake(store: str | None):
    """The lake at ``--store`` (or the default), to read: as :func:`open_store_lake`, and a usage
    error when no store is there (no ``_manifest/``: a mistyped path, or a folder of logs, read
    as an empty store, would report zeros)."""
    lake = open_store_lake(store)
    if not (lake.root / "_manifest").is_dir():
        from lib.formatting import terminal_text

        raise UsageError(f"no store at {terminal_text(lake.root)} (no _manifest/ folder; run "
                         "`python -m lib demo` or `ingest` first)")
    return lake
