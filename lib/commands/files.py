"""``files [--table T] [--json]``: the Parquet files that hold the store's rows now.

For Spark, Trino, Athena, ClickHouse or DuckDB reading the lake without Sightline: a glob over a
table's folder also reads the files that compaction, ``reprice`` or ``remove`` replaced until
they are deleted an hour later (readers still on the older version need them), and so counts
their rows twice; this list, the manifest's, never does.
"""

from __future__ import annotations

from lib import schema
from lib.commands.base import open_existing_lake, print_json
from lib.formatting import terminal_text

WRITES = False  # (a Ctrl-C has no batch to speak of)
NAME = "files"
HELP = ("list the Parquet files that hold the store's rows now, for other readers (a folder "
        "glob also reads replaced files for an hour)")


def add_arguments(p) -> None:
    p.add_argument("--table", choices=list(schema.TABLES),
                   help="one table's files (default: every table's)")


def run(args) -> int:
    lake = open_existing_lake(args.store)
    snap = lake.snapshot()
    tables = [args.table] if args.table else list(snap.files)
    files = {t: [str(lake.root / p) for p in sorted(snap.files.get(t, []))] for t in tables}
    if args.json:
        print_json({"store": str(lake.root), "version": snap.version, "files": files})
        return 0
    for t in tables:
        for path in files[t]:
            print(terminal_text(path))
    return 0
