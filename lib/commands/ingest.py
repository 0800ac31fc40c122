"""``ingest PATH_OR_URI… [--format F] [--mapping FILE] [--dry-run]``: files, folders, globs,
s3:// prefixes.

Reports per source the rows stored, skipped as duplicates and quarantined (with the first
reasons), the format's notes on what it did not read, and errors. ``--dry-run`` does all of it,
deduplication against the store included, and stores nothing: the report says what would be
stored. Exit 0, or 2 when a source was
unreadable (design §6). A progress bar with rows/s goes to stderr only when stderr is a terminal.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from lib import pricing
from lib.commands.base import UsageError, open_store_lake, print_json
from lib.formatting import plural, table_rows, terminal_text
from lib.ingest import failures, memo
from lib.ingest import formats as registry
from lib.ingest.mapping import MappingError
from lib.ingest.pipeline import FileReport, IngestReport, Progress, ingest_paths
from lib.store import compact, store_option

NAME = "ingest"
HELP = "ingest log and eval files, folders, globs or s3:// prefixes into the store"
EXIT_UNREADABLE = 2
MAX_SKIPPED_LINES = 10


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URI",
                   help="file, folder (recursive), glob, s3://bucket/prefix, or - for "
                        "standard input")
    p.add_argument("--format", help="force a format instead of detecting it: one of "
                   + ", ".join(f.name for f in registry.registered()))
    p.add_argument("--mapping", metavar="FILE", help="YAML mapping of your fields onto a "
                   "canonical table (docs/mapping.md)")
    p.add_argument("--dry-run", action="store_true",
                   help="read, check and deduplicate as usual, report what would be stored, and "
                        "store nothing (try a file or a mapping before it counts)")
    p.add_argument("--prices", metavar="FILE",
                   help="price overrides YAML (default: $SIGHTLINE_PRICES, else prices.yaml), "
                        "as `reprice --prices` takes")
    p.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (default: "
                   "$SIGHTLINE_S3_ENDPOINT_URL)")
    p.add_argument("--compact-min-files", type=int, default=None,
                   help="compact a partition holding more than this many small files after "
                        "ingesting (default: $SIGHTLINE_COMPACT_MIN_FILES or 16; 0 = never)")


def run(args) -> int:
    if args.format and args.mapping:
        raise UsageError("--format and --mapping are exclusive: a mapping is its own format")
    lake = open_store_lake(args.store)
    if args.dry_run:
        lake = lake.checking()
    try:
        # a bad prices file (or compaction setting) is named before any reading
        overrides = pricing.load_overrides(args.prices)
        if args.compact_min_files is None:
            compact.default_min_files()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    # A manifest entry that does not read hides its rows from the dedupe: a file it ingested is
    # stored again, and counted twice once the entry reads again (found in review).
    for problem in lake.manifest_problems():
        print(f"warning: {problem}; rows it lists are not seen, so they may be stored again "
              "(and counted twice once it reads again): mend it first", file=sys.stderr)
    bar = _ProgressBar() if sys.stderr.isatty() and not args.json else None
    try:
        report = ingest_paths(lake, args.paths, fmt=args.format, progress=bar,
                              mapping=args.mapping, s3_endpoint_url=args.s3_endpoint_url,
                              compact_min_files=args.compact_min_files, overrides=overrides)
    except (ValueError, MappingError) as exc:
        known = ", ".join(f.name for f in registry.registered())
        listed = args.mapping or "known formats" in str(exc)
        raise UsageError(f"{exc}" if listed else f"{exc} (formats: {known})") from exc
    finally:
        if bar:
            bar.close()
    # (sources that could not be reached: the Data page says so, not only cron's mail)
    failures.record_failed_run(lake, report, args.paths)
    if args.json:
        print_json(report.to_dict())
    else:
        print(render(report, store_option(lake.root), args.prices))
    return 0 if report.ok else EXIT_UNREADABLE


def render(report: IngestReport, store_opt: str = "", prices: str | None = None) -> str:
    """The human-readable report: one line per source, reasons and notes indented, a total
    line. Past ``MAX_SKIPPED_LINES`` skipped sources (a cron job over a folder that keeps its old
    files), they are one line; ``--json`` lists each. ``store_opt`` (lib.store.store_option) ends
    the commands it gives: a bare `remove` of a batch in another store went to data/store;
    ``prices`` is the `--prices` file the run read (the overrides its notes name)."""
    # (what an earlier run read or found unreadable, unchanged: a skip of another kind, such as
    # a file still being written or an archived S3 object, keeps its own line)
    skipped = [f for f in report.files if f.skipped
               and f.skipped.startswith((memo.ALREADY_INGESTED, memo.ALREADY_SEEN))]
    collapse = len(skipped) > MAX_SKIPPED_LINES
    collapsed = {id(f) for f in skipped} if collapse else set()
    # Sources, reasons and notes quote the input (names, values): escaped for the terminal.
    lines = [terminal_text(_file_line(f, report.dry_run))
             + "".join(f"\n    {terminal_text(r)}" for r in f.reasons)
             + (f"\n    … and {f.quarantined - len(f.reasons):,} more "
                + ("(an ingest keeps them all in the quarantine, which the Data page lists and "
                   "downloads)" if report.dry_run else
                   "(the quarantine keeps them all: see them on the Data page, or "
                   "download them there)")
                if f.quarantined > len(f.reasons) else "")
             + "".join(f"\n    note: {terminal_text(n)}"
                       for n in f.notes + _unpriced_notes(f, store_opt, prices, report.dry_run)
                       + _undo_note(f, store_opt))
             for f in report.files if id(f) not in collapsed]
    if collapse:
        # (an earlier run that found a source unreadable said why then; --json says it again)
        unreadable = sum(f.skipped.startswith(memo.ALREADY_SEEN)
                         and not f.skipped.endswith(memo.SAME_CONTENT) for f in skipped)
        if len(skipped) > unreadable:
            lines.append(f"{len(skipped) - unreadable:,} source(s) skipped: unchanged since an "
                         "earlier run read them (--json lists each)")
        if unreadable:
            lines.append(f"{unreadable:,} source(s) skipped: unchanged since an earlier run "
                         "could not read them, saying why (--json lists each)")
    t = report.totals()
    stored = sum(t["stored"].values())
    dupes = sum(t["duplicates"].values())
    lines.append(f"total: {t['files']:,} source(s), {stored:,} "
                 f"{'would be stored' if report.dry_run else 'stored'}, {dupes:,} duplicate(s), "
                 f"{t['quarantined']:,} {'to quarantine' if report.dry_run else 'quarantined'}, "
                 f"{t['errors']} error(s)"
                 + (f", {t['skipped_files']:,} skipped" if t["skipped_files"] else "")
                 + (f", {t['unpriced']:,} without a cost" if t["unpriced"] else ""))
    if report.dry_run:
        lines.append("dry run: nothing was stored")
    comp = report.compaction or {}
    if comp.get("error"):  # (the rows are stored; only the housekeeping after them failed)
        lines.append(f"compaction did not run: {terminal_text(comp['error'])}")
    if comp.get("merged"):
        lines.append(f"compacted {comp['files_before']} small files into {comp['files_after']}")
    if comp.get("gc_removed"):
        lines.append(f"deleted {len(comp['gc_removed'])} replaced file(s) no reader needs any more "
                     "(replaced over an hour ago)")
    return "\n".join(lines)


UNPRICED_SHOWN = 5  # models a note names; --json lists them all


def _unpriced_notes(f: FileReport, store_opt: str = "", prices: str | None = None,
                    dry_run: bool = False) -> list[str]:
    """Which of the requests ``f`` stored (in a dry run: would store) have no cost (unknown,
    not $0), and what to do: the overrides file named is ``prices`` (``--prices``), else the one
    the environment names. A dry run's are priced before the ingest, with no reprice after."""
    if not f.unpriced:
        return []
    if prices:
        name, prices_opt = prices, f" --prices {shlex.quote(str(Path(prices).resolve()))}"
    else:
        name, prices_opt = pricing.overrides_name(), pricing.prices_option()
    then = (" before the ingest" if dry_run else
            f", then run `python -m lib reprice{store_opt}{prices_opt}`")
    notes = []
    for logged, why in ((True, f"their models have no price: add them to {name} (or "
                               f"`priced_as` the model they answered as){then}"),
                        (False, "they logged no input token count")):
        group = [u for u in f.unpriced if u["usage_logged"] is logged]
        if not group:
            continue
        named = ", ".join(f"{u['provider'] or '(no provider)'} {u['model']} ({u['requests']:,})"
                          for u in group[:UNPRICED_SHOWN])
        more = (f" and {len(group) - UNPRICED_SHOWN:,} more models"
                if len(group) > UNPRICED_SHOWN else "")
        verb = "would be stored" if dry_run else "stored"
        notes.append(f"{plural(sum(u['requests'] for u in group), 'request')} {verb} without a "
                     f"cost (unknown, not $0): {named}{more}; {why}."
                     + ("" if dry_run else " The Data page lists them."))
    return notes


def _undo_note(f: FileReport, store_opt: str = "") -> list[str]:
    """For a stored file whose fields look misnamed: how to take it out before ingesting it
    corrected (its rows' ids would otherwise be skipped as duplicates)."""
    if not (f.hints and f.batch_id and f.stored):
        return []
    return [f"to ingest it again corrected, first take this batch out: python -m lib remove "
            f"{f.batch_id}{store_opt}"]


def _file_line(f: FileReport, dry_run: bool = False) -> str:
    if f.error:
        return f"{f.source}: error: {f.error}"
    if f.skipped:
        return f"{f.source}: skipped, {f.skipped}"
    if f.duplicate_file:
        if dry_run:  # (a Check of two copies of one new file: the second was "already ingested")
            return (f"{f.source}: same content as a file checked above or one already "
                    "ingested, nothing would be stored")
        return f"{f.source}: already ingested (same content), nothing stored"
    stored = table_rows(f.stored, empty="0 rows")
    dupes = sum(f.duplicates.values())
    return (f"{f.source} [{f.format}]: {'would store' if dry_run else 'stored'} {stored}; "
            f"{dupes:,} duplicate(s); {f.quarantined:,} "
            f"{'to quarantine' if dry_run else 'quarantined'}")


class _ProgressBar:
    """A one-line progress bar on stderr: source, percent of bytes, rows and rows/s."""

    WIDTH = 24

    def __init__(self):
        self._last = 0.0
        self._shown = False

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        frac = p.fraction
        bar = ("#" * int(frac * self.WIDTH)).ljust(self.WIDTH) if frac is not None else "?" * 3
        source = terminal_text(p.source)
        name = source if len(source) < 40 else "…" + source[-39:]
        files = f"{p.files_done + 1}/{p.files_total} " if p.files_total else ""
        pct = f"{p.stage}…" if p.stage else f"{frac * 100:5.1f}%" if frac is not None else ""
        sys.stderr.write(f"\r{files}{name} [{bar}] {pct} {p.rows:,} rows "
                         f"{p.rows_per_s:,.0f} rows/s\033[K")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
