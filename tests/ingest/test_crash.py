"""kill -9 of a real ingest process at several points leaves the store exactly before or after."""

from __future__ import annotations

import pytest

from lib.ingest.pipeline import ingest_paths
from lib.store import Lake
from tests.conftest import kill_9_at, leftovers
from tests.ingest.conftest import canonical_request, jsonl_bytes


@pytest.mark.parametrize("stage, after", [
    ("after_first_chunk", False),  # data files half written, invisible
    ("before_publish", False),     # data files complete and renamed, manifest entry not written
    ("after_commit", True),        # committed: the kill comes too late to undo anything
])
@pytest.mark.parametrize("bad_line", [False, True], ids=["fast-path", "exact-path"])
def test_kill_9_leaves_store_before_or_after(lake, write, totals, tmp_path, stage, after,
                                             bad_line):
    ingest_paths(lake, [str(write("old.jsonl", [canonical_request(i) for i in range(3)]))])
    # A malformed line sends the file down the exact (segmented SQL) path instead of the fast one.
    content = jsonl_bytes([canonical_request(i) for i in range(100, 150)])
    new = write("new.jsonl", content + (b"{not json\n" if bad_line else b""))
    kill_9_at(stage, [str(lake.root), str(new)], tmp_path / "paused")
    expected = 53 if after else 3
    assert totals("SELECT count(*), count(DISTINCT request_id) FROM requests") == \
        (expected, expected)
    # Killed mid-batch, the writer left scratch and data files behind (invisible to readers).
    assert bool(leftovers(lake.root)) != after
    # The lock died with the process; finishing the job later gives exactly the full result
    # (committed, the file is known unchanged and skipped), and clears what the killed one left.
    report = ingest_paths(Lake(lake.root), [str(new)])
    assert (report.files[0].skipped is not None) == after
    assert totals("SELECT count(*), sum(input_tokens) FROM requests") == (53, 53_000)
    assert totals("SELECT count(*) FROM quarantine") == (int(bad_line),)
    assert leftovers(lake.root) == []
