"""``python -m lib <command>``: the command line (design §6).

Each command is a module in ``lib/commands/`` with ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int`` (and ``WRITES = False`` when it only reads the store, or
``INTERRUPTED``: what a Ctrl-C leaves of what it writes), listed once in
``lib/commands/__init__.py``. Exit status: 0 success,
1 a gate or check failed, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading

from lib.commands import COMMANDS
from lib.commands.base import UsageError, print_json

EXIT_OK, EXIT_GATE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # (128 + SIGINT, as a shell reports Ctrl-C)
EXIT_TERMINATED = 143  # (128 + SIGTERM)
# What a Ctrl-C leaves of a command that writes, unless its module says (``INTERRUPTED``): a
# reprice read "the batch being written was not stored" where it writes no batch (review).
INTERRUPTED = ("what was committed before stays; the batch being written was not stored, and a "
               "run again goes on from there")


class Terminated(KeyboardInterrupt):
    """SIGTERM (cron's ``timeout``, a service stop), ended as Ctrl-C ends a command: it ended
    silently, found in review (the store was safe, but nothing said the run was cut)."""

    received = False


def _terminate(signum, frame):
    Terminated.received = True  # (DuckDB may turn the raise into its own "interrupted")
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    last_error: str | None = None  # (for --json: the document says it too)

    def error(self, message):  # argparse exits 2 on usage errors, as design §6 wants
        _Parser.last_error = f"{self.prog}: error: {message}"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lib", description="Sightline command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        p.add_argument("--store", help="store root (default: $SIGHTLINE_STORE, else data/store)")
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        module.add_arguments(p)
        p.set_defaults(_run=module.run, command=module.NAME,
                       _writes=getattr(module, "WRITES", True),
                       _interrupted=getattr(module, "INTERRUPTED", INTERRUPTED))
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed with a command's paths anywhere among its options (``ingest a.jsonl
    --mapping m.yaml b.jsonl`` failed on b.jsonl, found in review): argparse mixes them only
    in a parser without subcommands, so the command's own parser reads what follows its name."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if first is None or argv[first] not in commands.choices \
            or any(a in ("-h", "--help") for a in argv[:first]):
        return parser.parse_args(argv)
    return commands.choices[argv[first]].parse_intermixed_args(argv[first + 1:])


def _never_fail_on_encoding() -> None:
    """A file name or model name the output's encoding cannot write (``PYTHONIOENCODING=ascii``,
    an old cron's locale) is written escaped (``caf\\xe9``): it crashed the command after the
    batch was committed, found in review, so the run looked failed and the report was lost."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # (not a test's captured buffer)
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # (a closed or detached stream: nothing to write to)
                pass


class _ReaderGoneIsNotAnError:
    """Standard output for a command whose reader may stop early (``summary | head`` under
    ``set -o pipefail``, a CI step): once the pipe is broken, what is left of the output goes
    nowhere and the command goes on to its own exit status. The broken pipe ended the command
    with status 0, so ``summary`` with unreadable files (1) or ``compare`` on a regression (1,
    the gate) passed."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_nowhere()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_nowhere()

    def _to_nowhere(self) -> None:
        # (on the file descriptor: Python's own flush at exit, of what is still buffered,
        # would meet the broken pipe again and end the process with status 120)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _never_fail_on_encoding()
    stdout, sys.stdout = sys.stdout, _ReaderGoneIsNotAnError(sys.stdout)
    try:
        return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv: list[str]) -> int:
    try:
        args = _parse(build_parser(), argv)
    except SystemExit as exc:
        # --json promises one JSON document on stdout: a usage error is one too (jq in a cron
        # pipeline read an empty input, found in review), the message still on stderr
        if exc.code == EXIT_USAGE and "--json" in argv:
            print_json({"error": _Parser.last_error})
        raise
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        return _failed(args, str(exc))
    except OSError as exc:  # (a store's file gone or unreadable: one line, not a traceback)
        return _failed(args, str(exc))
    except KeyboardInterrupt as exc:  # (a batch is atomic: the one being written is not stored)
        ended = isinstance(exc, Terminated) or Terminated.received
        message = "terminated (SIGTERM)" if ended else "interrupted"
        if args._writes:
            message += f": {args._interrupted}"
        print(message, file=sys.stderr)
        if getattr(args, "json", False):  # (one document on stdout, as promised: review)
            print_json({"error": message, "interrupted": True})
        return EXIT_TERMINATED if ended else EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _failed(args, message: str) -> int:
    """Say ``message`` on stderr (and as the JSON document with ``--json``); the exit status."""
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print_json({"error": message})
    return EXIT_USAGE
