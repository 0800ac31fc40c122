"""Lake.begin / BatchWriter: a streamed batch is one atomic, idempotent commit."""

from __future__ import annotations

import pytest

from lib.store import Lake
from tests.conftest import make_request, requests_table


def test_chunks_become_one_commit_with_rows_deduped_across_chunks(lake):
    with lake.begin("f.jsonl") as batch:
        assert batch.add({"requests": requests_table([make_request(i) for i in range(3)])}) == \
            {"requests": 3}
        assert batch.add({"requests": requests_table([make_request(i) for i in range(2, 5)])}) \
            == {"requests": 2}
        assert lake.snapshot().files["requests"] == []  # invisible until commit
        result = batch.commit(content_hash="h")
    assert result.stored == {"requests": 5} and result.duplicate_rows == {"requests": 1}
    assert [c.content_hash for c in lake.commits()] == ["h"]
    assert sum(f["rows"] for f in result.commit.added) == 5


def test_known_content_hash_is_a_no_op_and_writes_nothing(lake):
    with lake.begin("a") as batch:
        batch.add({"requests": requests_table([make_request(1)])})
        batch.commit(content_hash="same")
    with lake.begin("b") as batch:
        batch.add({"requests": requests_table([make_request(2)])})
        result = batch.commit(content_hash="same")
    assert result.duplicate_batch and len(lake.commits()) == 1
    assert not [p for p in lake.root.rglob("*.tmp")]


def test_leaving_the_block_without_commit_aborts(lake):
    with pytest.raises(RuntimeError), lake.begin("a") as batch:
        batch.add({"requests": requests_table([make_request(1)])})
        raise RuntimeError("boom")
    assert lake.commits() == [] and not list((lake.root / "requests").rglob("*.*"))
    # and the writer lock was released: another batch goes through
    with Lake(lake.root).begin("b") as batch:
        assert batch.commit().commit is not None


def test_rows_already_in_the_lake_are_duplicates(lake):
    lake.append({"requests": requests_table([make_request(1)])}, source="old")
    with lake.begin("new") as batch:
        batch.add({"requests": requests_table([make_request(1), make_request(2)])})
        result = batch.commit()
    assert result.stored == {"requests": 1} and result.duplicate_rows == {"requests": 1}


def test_a_repeated_key_with_other_values_goes_to_on_conflict_with_its_line(lake):
    """Within a batch, across chunks and inside one: a repeat saying the same is a duplicate;
    one saying something else is handed over with its line. A key already in the lake is a
    duplicate whatever it says."""
    import pyarrow as pa

    lake.append({"requests": requests_table([make_request(9)])}, source="old")
    handed = []

    def chunk(rows, lines):
        return requests_table(rows).append_column("_line", pa.array(lines, pa.int64()))

    changed = make_request(1, output_tokens=7)
    with lake.begin("new") as batch:
        batch.add({"requests": chunk([make_request(1), make_request(2)], [1, 2])},
                  on_conflict=lambda name, rows: handed.append((name, rows)))
        assert batch.add({"requests": chunk(
            [make_request(1), changed, make_request(3), make_request(3, status="error"),
             make_request(9, output_tokens=7)], [3, 4, 5, 6, 7])},
            on_conflict=lambda name, rows: handed.append((name, rows))) == {"requests": 1}
        result = batch.commit()
    assert result.stored == {"requests": 3}
    assert result.duplicate_rows == {"requests": 2}  # line 3 (as line 1) and line 7 (in the lake)
    assert [name for name, _ in handed] == ["requests"]
    rows = handed[0][1]
    assert rows.column("_line").to_pylist() == [4, 6]
    assert rows.column("output_tokens").to_pylist() == [7, make_request(3)["output_tokens"]]
    assert rows.column("status").to_pylist() == [make_request(1)["status"], "error"]


def test_a_continued_batch_compares_with_the_rows_its_source_stored_before(lake):
    """A read going on where earlier reads of the same source stopped: their rows are the first
    of their keys; another source's are duplicates whatever they say."""
    lake.append({"requests": requests_table([make_request(1), make_request(2)])}, source="f")
    lake.append({"requests": requests_table([make_request(3)])}, source="other")
    handed = []
    with lake.begin("f", continued=True) as batch:
        batch.add({"requests": requests_table([
            make_request(1), make_request(2, output_tokens=7), make_request(3, output_tokens=7),
            make_request(4)])}, on_conflict=lambda name, rows: handed.append(rows))
        result = batch.commit()
    assert result.stored == {"requests": 1} and result.duplicate_rows == {"requests": 2}
    assert [t.column("request_id").to_pylist() for t in handed] == [["r2"]]


def test_without_on_conflict_a_repeat_with_other_values_counts_as_a_duplicate(lake):
    with lake.begin("new") as batch:
        batch.add({"requests": requests_table([make_request(1),
                                               make_request(1, output_tokens=7)])})
        result = batch.commit()
    assert result.stored == {"requests": 1} and result.duplicate_rows == {"requests": 1}


def test_rewrite_of_named_files_refuses_files_no_longer_live(lake):
    lake.append({"requests": requests_table([make_request(1)])}, source="a")
    path = lake.snapshot().files["requests"][0]
    day = path.split("date=")[1].split("/")[0]
    table = requests_table([make_request(1)])
    lake.rewrite("requests", {day: table}, kind="compact", source="t", files={day: [path]})
    with pytest.raises(ValueError, match="no longer live"):
        lake.rewrite("requests", {day: table}, kind="compact", source="t", files={day: [path]})


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_error_after_the_commit_is_published_keeps_its_files(lake, monkeypatch, error):
    """An interrupt just after the manifest link, or a failed fsync of the manifest folder:
    the commit is visible, so the files it lists must stay (deleting them would leave a
    manifest naming files that do not exist). An error, unlike an interrupt, is not raised:
    the batch is stored, and its result says so."""
    from lib.store import lake as lake_module

    def failing_fsync_dir(path):
        raise error("after the link")

    monkeypatch.setattr(lake_module, "_fsync_dir", failing_fsync_dir)
    with lake.begin("a") as batch:
        batch.add({"requests": requests_table([make_request(1)])})
        if error is KeyboardInterrupt:
            with pytest.raises(KeyboardInterrupt):
                batch.commit(content_hash="h")
        else:
            result = batch.commit(content_hash="h")
            assert result.commit is not None and result.stored == {"requests": 1}
    monkeypatch.undo()
    (commit,) = lake.commits()
    assert all((lake.root / f["path"]).exists() for f in commit.added)
    assert Lake(lake.root).snapshot().files["requests"] == [commit.added[0]["path"]]
    with Lake(lake.root).begin("b") as batch:  # the lock was released
        assert batch.commit().commit is not None
