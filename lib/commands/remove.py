"""``remove BATCH_ID [--reason TEXT]``: take every row an ingested batch stored out of the store.

For a file that went in wrong (misnamed fields, a wrong mapping, the wrong environment): its
rows, quarantine included, leave in one atomic commit of kind ``remove`` that records the batch,
the rows taken out, who ran it and why (the audit trail; the batch's own commit stays in the
manifest). The batch's content is forgotten, so the corrected file, or the same file under a
corrected mapping, can be ingested again.
"""

from __future__ import annotations

import getpass

from lib.commands.base import UsageError, open_existing_lake, print_json
from lib.formatting import table_rows, terminal_text

INTERRUPTED = "nothing was removed (the batch leaves in one commit); run it again"
NAME = "remove"
HELP = "take every row an ingested batch stored out of the store (so it can be ingested again)"
MIN_PREFIX = 8


def add_arguments(p) -> None:
    p.add_argument("batch", metavar="BATCH_ID",
                   help="the batch's commit id (the Data page's Batches table, or `ingest "
                        f"--json`'s batch_id), or a unique prefix of {MIN_PREFIX}+ characters")
    p.add_argument("--reason", help="why, kept in the remove commit")


def run(args) -> int:
    lake = open_existing_lake(args.store)
    if len(args.batch) < MIN_PREFIX:
        raise UsageError(f"a batch id or a prefix of at least {MIN_PREFIX} characters, "
                         f"got {args.batch!r}")
    ids = [c.commit_id for c in lake.commits() if c.commit_id.startswith(args.batch)]
    if not ids:
        raise UsageError(f"no batch {args.batch!r} in {lake.root}")
    if len(ids) > 1:
        raise UsageError(f"{args.batch!r} names {len(ids)} commits: give more of the id")
    try:
        commit = lake.remove_batch(ids[0], info={"by": _user(), "reason": args.reason})
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    taken = commit.info["removed_rows"]
    others = same_source_batches(lake, ids[0])
    from lib.ingest import appended

    # (batches that read what was appended to a file after this one: lib/ingest/appended.py)
    read_whole = bool(set(others) & appended.cut_off(lake.commits(), appended.index_of(lake)))
    overlapping = later_batches_with_duplicates(lake, ids[0], set(taken))
    if args.json:
        print_json({"removed_batch": ids[0], "source": commit.source, "removed_rows": taken,
                    "files_rewritten": len(commit.removed), "commit_id": commit.commit_id,
                    "same_source_batches": others, "source_read_whole_next": read_whole,
                    "later_batches_with_duplicates": overlapping})
        return 0
    rows = table_rows(taken)
    print(f"removed batch {ids[0]} ({terminal_text(commit.source)}): {rows}; "
          f"{len(commit.removed)} file(s) "
          f"replaced in commit {commit.commit_id}. Its source can be ingested again.")
    if read_whole:
        # (a file read on from where this batch's read ended, as it grew: lib/ingest/appended.py)
        print(f"Other batches read the same source: {', '.join(others)}, some of them what "
              "was appended after this batch's read: the next ingest of the source reads it "
              "again from the end of the last read before this batch's (whole, if this batch "
              "read it from the start), bringing back this batch's rows (theirs count as "
              "duplicates).")
    elif others and any(n for table, n in taken.items() if table != "quarantine"):
        # (a file read again after it changed: the later batches stored only the rows this one
        # had not. A batch that stored none, only quarantined, as a read under the wrong format
        # does, cost the others no row: the advice to remove them too was wrong, review)
        print(f"Other batches read the same source: {', '.join(others)}. Rows they skipped "
              "as already stored by this batch left with it; to ingest the source again "
              "whole, remove those batches too.")
    if overlapping:
        # (two sources logging the same calls, an app's and a gateway's: the later one's copies
        # of this batch's rows were skipped as duplicates, and leave with this batch; its file,
        # already ingested, is not read again by itself. Found in review.)
        listed = "; ".join(
            f"{terminal_text(b['source'])} (batch {b['batch']}: "
            + table_rows(b["duplicates"]) + ")"
            for b in overlapping)
        print(f"Batches of other sources ingested after this one skipped rows as already "
              f"stored, perhaps as this batch's, which left with it: {listed}. To store their "
              "copies of those rows, remove those batches too and ingest their sources again.")
    return 0


def later_batches_with_duplicates(lake, batch_id: str, tables: set[str]) -> list[dict]:
    """The live ingest batches of other sources, committed after ``batch_id``, that skipped rows
    of ``tables`` as duplicates: ``[{"batch", "source", "duplicates": {table: rows}}]`` in
    commit order. Their skipped rows may have been ``batch_id``'s (or repeats within them:
    the manifest does not say which)."""
    from lib.store.lake import removed_batches

    commits = lake.commits()
    at = next(i for i, c in enumerate(commits) if c.commit_id == batch_id)
    source, gone = commits[at].source, removed_batches(commits)
    out = []
    for c in commits[at + 1:]:
        skipped = {t: n for t, n in (c.info.get("duplicates") or {}).items() if t in tables}
        if c.kind == "ingest" and c.source != source and c.commit_id not in gone and skipped:
            out.append({"batch": c.commit_id, "source": c.source, "duplicates": skipped})
    return out


def same_source_batches(lake, batch_id: str) -> list[str]:
    """The ids of the other live ingest batches read from the source ``batch_id`` was read
    from, in commit order."""
    from lib.store.lake import removed_batches

    commits = lake.commits()
    source = next((c.source for c in commits if c.commit_id == batch_id), None)
    gone = removed_batches(commits)
    return [c.commit_id for c in commits if c.kind == "ingest" and c.source == source
            and c.commit_id != batch_id and c.commit_id not in gone]


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return None
