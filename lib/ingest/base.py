"""The contract between a log format and the ingest pipeline.

A format is one module in ``lib/ingest/formats/`` that defines a :class:`Format` instance and is
listed in ``lib/ingest/formats/__init__.py`` (the registry). The pipeline opens the file (gzip is
undone before a format sees it), asks each registered format's ``detect`` in ``priority`` order
unless ``--format`` names one, then feeds the stream to ``parse``, validates what comes out
(lib/ingest/validate.py), prices requests, and commits to the lake.

``parse`` yields :class:`Chunk` objects so large files stream with bounded memory. Rows a format
cannot map at all (bad JSON, wrong shape) go into ``Chunk.rejects`` with their 1-based line number
and a reason; they end up in the quarantine table, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa


@dataclass
class Reject:
    """One input record that could not be used: where it was, what it was, and why."""

    line: int | None
    raw: str
    reason: str


class BadValue(ValueError):
    """A value a record cannot be stored with: the message names the field and quotes the value
    ("gen_ai.usage.input_tokens is not an integer: 1e400"); the format quarantines the record
    with it and goes on."""


@dataclass
class Chunk:
    """Part of a parsed file: canonical tables (any subset of lib.schema.TABLES) plus rejects.

    Tables may hold any subset of the canonical columns; missing ones become null. Each table may
    carry a ``_line`` int64 column (1-based source line) so validation can name the line.
    ``not_read`` counts input read but deliberately not stored, by what it is (a plural noun
    phrase: {"log record(s) that are not gen_ai.evaluation.result events": 1204}); the file's
    report sums them over its chunks and says so ("1,204 log record(s) that are not ...: not
    read"), so nothing is left out silently.
    """

    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    not_read: dict[str, int] = field(default_factory=dict)


def not_read_notes(not_read: dict[str, int]) -> list[str]:
    """``Chunk.not_read`` counts as the report's sentences: "1,204 log record(s) that are not
    gen_ai.evaluation.result events: not read"; a key that ends with a period is a sentence of
    its own ("3 span(s) naming a model ...: kept as spans, not counted as requests.")."""
    return [f"{n:,} {what}" if what.endswith(".") else f"{n:,} {what}: not read"
            for what, n in not_read.items()]


@dataclass(frozen=True)
class Format:
    """A registered log format.

    name      -- what ``--format`` takes, e.g. ``otlp-json``.
    detect    -- ``(head: bytes, filename: str) -> bool`` from the first bytes (≤ 64 KiB, already
                 decompressed) and the file name (compression suffix removed).
    parse     -- ``(stream: BinaryIO, filename: str) -> Iterator[Chunk]``; ``stream`` is binary,
                 decompressed, positioned at the start.
    priority  -- lower is asked first; specific formats before generic ones.
    doc       -- one line for ``--help`` and the docs.
    finish    -- optional ``(batch: BatchWriter) -> dict[str, int]``: a pass over the rows the
                 file gave, once all are written and before the batch commits (lib.store.lake's
                 ``written_files`` / ``replace_written``); returns counts for the report's notes,
                 as ``Chunk.not_read``.
    unit      -- what a quarantined record's ``line`` counts, for the report ("line 3"; an OTLP
                 protobuf file's are export requests: "request 3").
    appendable -- optional ``(head: bytes) -> bool``: True when a file starting with ``head``
                 has records that follow one another (lines, length-prefixed requests) and that
                 a read from a record's start gives as a whole read would: a file that grew
                 since a run read it is read from where that read ended
                 (lib/ingest/appended.py).
    """

    name: str
    detect: Callable[[bytes, str], bool]
    parse: Callable[[BinaryIO, str], Iterator[Chunk]]
    priority: int = 50
    doc: str = ""
    # What, besides the content, decides the rows a file gives (a mapping's own text): a file
    # ingested again under a changed mapping is read again, not skipped as already ingested.
    identity: str = ""
    finish: Callable[[Any], dict[str, int]] | None = None
    unit: str = "line"
    appendable: Callable[[bytes], bool] | None = None
