"""A real promptfoo output (tests/ingest/fixtures/promptfoo/, written by promptfoo 0.121.20
itself: its README says how) becomes the eval rows promptfoo's own figures say. Expected values
are computed here from the JSON promptfoo wrote, never copied from a reader's output."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lib.ingest.pipeline import ingest_paths

OUTPUT = Path(__file__).parent / "fixtures" / "promptfoo" / "out.json.gz"


def real_output() -> dict:
    return json.loads(gzip.decompress(OUTPUT.read_bytes()))


@pytest.fixture
def ingested(lake):
    report = ingest_paths(lake, [str(OUTPUT)]).files[0]
    assert (report.error, report.format, report.quarantined) == (None, "promptfoo", 0)
    return report


def test_overall_rows_count_what_promptfoo_counts(ingested, totals):
    stats = real_output()["results"]["stats"]
    # promptfoo's successes, failures and errors (a provider that failed: no grade)
    assert totals("SELECT count(*) FILTER (passed), count(*) FILTER (NOT passed), "
                  "count(*) FILTER (label = 'error' AND passed IS NULL AND score IS NULL) "
                  "FROM evals WHERE metric = 'overall'") == (
        stats["successes"], stats["failures"], stats["errors"])


def test_an_assert_set_is_named_by_its_type(ingested, totals):
    # an assert-set's own result has no `assertion`: its type is in metadata.assertionSet
    sets = [c for r in real_output()["results"]["results"]
            for c in (r.get("gradingResult") or {}).get("componentResults") or []
            if "assertion" not in c]
    assert sets and {c["metadata"]["assertionSet"]["type"] for c in sets} == {"assert-set"}
    assert totals("SELECT count(*) FILTER (metric = 'assert:assert-set'), "
                  "count(*) FILTER (metric LIKE '%unknown%'), "
                  "list(DISTINCT score) FILTER (metric = 'assert:assert-set') FROM evals") == (
        len(sets), 0, sorted({c["score"] for c in sets}))
