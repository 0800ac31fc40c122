"""The format registry: every log format Sightline reads, one module each, listed here once.

Adding a format = one module defining ``FORMAT = Format(...)`` (lib/ingest/base.py) plus its test,
and one line below. Detection asks formats in ``priority`` order.
"""

from __future__ import annotations

import importlib

from lib.ingest.base import Format

# Module names under lib.ingest.formats, each exposing FORMAT (or FORMATS, a list).
MODULES: list[str] = [
    "openinference",
    "otlp",
    "otlp_proto",
    "otlp_logs",
    "langfuse",
    "canonical",
    "canonical_json",
    "promptfoo",
    "inspect_ai",
    "inspect_eval",
    "provider_native",
]


def registered() -> list[Format]:
    """All registered formats, in detection order."""
    out: list[Format] = []
    for name in MODULES:
        mod = importlib.import_module(f"lib.ingest.formats.{name}")
        out.extend(getattr(mod, "FORMATS", None) or [mod.FORMAT])
    return sorted(out, key=lambda f: (f.priority, f.name))


def by_name(name: str) -> Format:
    for f in registered():
        if f.name == name:
            return f
    raise KeyError(name)
