"""The CLI's command registry: one module per command, listed here once."""

from lib.commands import changes, compact, demo, ingest, reprice, summary

COMMANDS = [demo, summary, ingest, compact, reprice, changes]
