"""The CLI's command registry: one module per command, listed here once."""

from lib.commands import (
    changes,
    compact,
    compare,
    demo,
    drift,
    files,
    ingest,
    remove,
    reprice,
    summary,
)

COMMANDS = [demo, summary, ingest, remove, compact, reprice, changes, drift, compare, files]
