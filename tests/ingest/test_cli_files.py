"""``python -m lib files``: the live Parquet files, which other readers take instead of a glob;
and every command's ``--store`` is a local store folder (design §6)."""

from __future__ import annotations

import json

import duckdb

from lib.cli import main
from tests.ingest.conftest import canonical_request


def _rows(files: list[str]) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchone()[0]


def test_the_files_hold_each_row_once_where_a_glob_counts_replaced_files_too(lake, write,
                                                                            capsys):
    root = str(lake.root)
    for n in range(3):  # three small ingests of one day, then merged into one file
        path = write(f"{n}.jsonl", [canonical_request(10 * n + i) for i in range(4)])
        assert main(["ingest", str(path), "--store", root]) == 0
    assert main(["compact", "--store", root, "--no-gc"]) == 0
    capsys.readouterr()
    assert main(["files", "--table", "requests", "--store", root]) == 0
    listed = capsys.readouterr().out.split()
    glob = f"{root}/requests/**/*.parquet"
    assert len(listed) == 1 and _rows(listed) == 12
    assert _rows([glob]) == 24  # the three replaced files are still there, for an hour
    assert main(["files", "--store", root, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"]["requests"] == listed and set(doc["files"]) >= {"requests", "evals"}


def test_a_uri_or_a_file_is_no_store(tmp_path, write, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = write("a.jsonl", [canonical_request(1)])
    assert main(["ingest", str(log), "--store", "s3://bucket/lake"]) == 2
    assert "the store is a local folder, not s3://bucket/lake" in capsys.readouterr().err
    assert not (tmp_path / "s3:").exists()  # (it made a folder named "s3:")
    (tmp_path / "afile").write_text("x")
    for argv in (["summary"], ["ingest", str(log)], ["compact"], ["reprice", "--dry-run"]):
        assert main([*argv, "--store", str(tmp_path / "afile")]) == 2, argv
        assert "is a file, not a store folder" in capsys.readouterr().err


def test_reading_a_folder_that_is_not_a_store_is_an_error_not_zeros(tmp_path, write, capsys):
    logs = tmp_path / "logs"
    write("logs/a.jsonl", [canonical_request(1)])
    assert main(["summary", "--store", str(logs), "--json"]) == 2
    assert "no store at" in capsys.readouterr().err
