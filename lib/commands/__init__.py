"""The CLI's command registry: one module per command, listed here once."""

from lib.commands import demo, summary

COMMANDS = [demo, summary]
