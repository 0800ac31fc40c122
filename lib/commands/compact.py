"""``compact [--min-files N] [--gc-age S]``: merge small files, then delete old orphans."""

from __future__ import annotations

from lib.commands.base import open_existing_lake, print_json
from lib.store import compact as compaction

INTERRUPTED = ("the partitions merged before stay merged (each is its own commit), the others "
               "are as they were; run it again to go on")
NAME = "compact"
HELP = "merge each partition's small files into one, then delete orphan files over an hour old"


def add_arguments(p) -> None:
    p.add_argument("--min-files", type=int, default=1,
                   help="compact a partition with more than this many small files (default 1)")
    p.add_argument("--small-mb", type=float, default=compaction.SMALL_FILE_BYTES / 2**20,
                   help="a file under this many MiB is small (default 32)")
    p.add_argument("--gc-age", type=float, default=compaction.GC_AGE_S,
                   help="delete orphan files older than this many seconds (default 3600)")
    p.add_argument("--no-gc", action="store_true", help="do not delete orphan files")


def run(args) -> int:
    lake = open_existing_lake(args.store)
    report = compaction.compact(lake, min_files=args.min_files,
                                small_bytes=int(args.small_mb * 2**20))
    if not args.no_gc:
        report.gc_removed = [str(p) for p in compaction.gc(lake, older_than_s=args.gc_age)]
    # (each file left out was named on stderr as it was found; a cron job sees the status)
    status = 1 if report.unreadable else 0
    if args.json:
        print_json(report.to_dict())
        return status
    if report.merged:
        for m in report.merged:
            print(f"{m['table']} {m['day']}: {m['files']} files → 1 ({m['rows']:,} rows)")
    print(f"compacted {report.files_before} files into {report.files_after}; "
          f"deleted {len(report.gc_removed)} orphan file(s)"
          + (f"; left {len(report.unreadable)} unreadable file(s) as they were"
             if report.unreadable else ""))
    return status
