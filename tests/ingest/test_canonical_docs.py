"""docs/canonical.md, the page a user writing canonical files reads (README and docs/mapping.md
sent them to "design §3", a file the repository does not hold, and no page listed the columns,
found in review): it names every column of every table, and its example line, copied as a
reader copies it, is stored as it says."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from lib import schema
from lib.ingest.pipeline import ingest_paths
from lib.store import Engine, Lake

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "canonical.md"
LINEAGE = {f.name for f in schema.LINEAGE}


def _section(table: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {table}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("table", ["requests", "evals", "events", "spans"])
def test_every_column_of_each_table_is_in_its_section(table):
    section = _section(table)
    listed = set(re.findall(r"`([a-z_0-9]+)`", section))
    columns = {f.name for f in schema.TABLES[table]} - LINEAGE
    assert columns - listed == set()


def test_readme_and_the_mapping_page_send_readers_to_it_not_to_a_missing_design():
    assert "(docs/canonical.md)" in (ROOT / "README.md").read_text()
    for page in ("README.md", "docs/mapping.md", "docs/provider-logs.md"):
        assert "design §3" not in (ROOT / page).read_text(), page


def test_its_example_line_is_stored_as_it_says(tmp_path):
    (line,) = re.findall(r"```json\n(.*?)\n```", DOC.read_text(), flags=re.S)
    src = tmp_path / "app.jsonl"
    src.write_text(line + "\n")
    old = time.time() - 600
    os.utime(src, (old, old))
    lake = Lake(tmp_path / "store")
    (f,) = ingest_paths(lake, [str(src)], overrides={}).files
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 1}, 0)
    engine = Engine(lake)
    try:
        row = engine.query("SELECT * FROM requests").to_dicts()[0]
    finally:
        engine.close()
    # "stored with a cost of $0.00907 ... and attributes = {"plan": "enterprise"}"
    assert round(row["cost_usd"], 6) == 0.00907
    assert row["attributes"] == '{"plan":"enterprise"}'
