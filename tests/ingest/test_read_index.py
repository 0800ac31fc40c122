"""The index of reads that growing files go on from (lib/ingest/appended.py): moved on over new
commits (``ReadIndex.extended``, what a run does after each file it commits), it answers as the
index made anew of all the commits does, on random histories of chains, copies, removed
batches, reads that never reached the start and a clock set back."""

from __future__ import annotations

import random

import pytest

from lib.ingest import appended
from lib.store.lake import Commit, removed_batches


def _history(rng: random.Random, n: int) -> list[Commit]:
    commits, ends = [], []
    for i in range(n):
        if rng.random() < 0.08 and commits:
            victim = rng.choice(commits).commit_id
            commits.append(Commit(f"c{i}", "remove", "x", None, f"t{i:05d}", {}, [], [],
                                  {"removed_batch": victim}))
            continue
        ino, fmt, readers = rng.choice([1, 2, 3, None]), rng.choice(["jsonl", "otlp"]), \
            rng.choice(["r1", "r2"])
        start, after = 0, None
        if ends and rng.random() < 0.6:  # goes on from an earlier read, mostly of the same file
            prev = rng.choice(ends)
            start, after = prev[0], prev[1]
            ino = prev[2] if rng.random() < 0.8 else ino
            fmt, readers = (prev[3], prev[4]) if rng.random() < 0.9 else (fmt, readers)
        elif rng.random() < 0.1:  # names a read no commit holds
            start, after = rng.choice([0, 10]), rng.choice([None, "s1"])
        end, sha = start + rng.randint(1, 20), f"s{rng.randint(0, 30)}"
        info = {"format": fmt, "readers": readers, "file": {"path": f"/f{ino}", "ino": ino},
                "read": {"start": start, "end": end, "sha256": sha, "after": after}}
        if rng.random() < 0.05:
            info["seen"] = "x"
        ends.append((end, sha, ino, fmt, readers))
        commits.append(Commit(f"c{i}", "ingest" if rng.random() < 0.95 else "demo", f"/f{ino}",
                              sha, f"t{i:05d}", {}, [], [], info))
    if rng.random() < 0.3:  # a clock set back: two commits out of their order
        a, b = rng.randrange(n), rng.randrange(n)
        commits[a], commits[b] = commits[b], commits[a]
    return commits


def _answers(index: appended.ReadIndex, commits: list[Commit]) -> tuple:
    return (sorted(index.reads), sorted(index.waiting),
            [sorted(index.of_file(i)) for i in (1, 2, 3)],
            [index.covers(f"s{k}", f, r) for k in range(31) for f in ("jsonl", "otlp")
             for r in ("r1", "r2")],
            appended.cut_off(commits, index))


@pytest.mark.parametrize("seed", range(4))
def test_an_index_moved_on_over_new_commits_answers_as_one_made_anew(seed):
    rng = random.Random(seed)
    for _ in range(150):
        commits = _history(rng, rng.randint(2, 40))
        k = rng.randint(1, len(commits) - 1)
        if any(c.kind == "remove" for c in commits[k:]):
            continue  # (index_of makes the index anew then)
        before = appended.read_index(commits[:k], removed_batches(commits[:k]))
        if rng.random() < 0.5:  # lookups made before, moved on too
            before.of_file(1)
            before.covers("s1", "jsonl", "r1")
        moved_on = before.extended(commits[k:])
        anew = appended.read_index(commits, removed_batches(commits))
        assert _answers(moved_on, commits) == _answers(anew, commits)


def test_index_of_moves_its_index_on_while_the_commits_only_grow(tmp_path, monkeypatch):
    from lib.store import Lake

    rng = random.Random(9)
    commits = [c for c in _history(rng, 30) if c.kind != "remove"]
    lake = Lake(tmp_path / "store")
    made = []
    real = appended.read_index
    monkeypatch.setattr(appended, "read_index", lambda c, r: made.append(len(c)) or real(c, r))
    first = appended.index_of(lake, commits[:10])
    assert appended.index_of(lake, list(commits[:10])) is first  # the same commits: as it was
    grown = appended.index_of(lake, commits[:20])
    assert made == [10] and sorted(grown.reads) == sorted(real(commits[:20], set()).reads)
    # longer, but the commits it was made of are not where they were: made anew
    assert sorted(appended.index_of(lake, commits[:5] + commits[6:25]).reads) == \
        sorted(real(commits[:5] + commits[6:25], set()).reads)
    assert made == [10, 24]
