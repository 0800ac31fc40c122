"""Canonical JSONL goes through DuckDB in segments: the same guarantees as any format, checked
across segment boundaries (tiny segments here), plus what only this path does itself."""

from __future__ import annotations

import gzip
import json

import pytest

from lib.ingest import pipeline
from lib.ingest.pipeline import ingest_paths
from tests.ingest.conftest import canonical_request


@pytest.fixture(autouse=True)
def tiny_segments(monkeypatch):
    monkeypatch.setattr(pipeline, "SEGMENT_BYTES", 600)  # a few lines per segment


def _lines(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_line_numbers_are_exact_across_segments_with_blank_lines(lake, write, totals):
    rows = [canonical_request(i) for i in range(12)]
    rows[3] = canonical_request(3, input_tokens=-1)
    rows[9] = "{broken"
    content = _lines(rows[:5]) + b"\n  \n\r\n" + _lines(rows[5:])  # 3 blank lines after line 5
    f = ingest_paths(lake, [str(write("b.jsonl", content))]).files[0]
    assert (f.format, f.stored, f.quarantined, f.error) == ("jsonl", {"requests": 10}, 2, None)
    assert totals("SELECT list(line ORDER BY line) FROM quarantine") == ([4, 13],)
    reasons = dict(totals("SELECT map_from_entries(list((line, reason))) FROM quarantine")[0])
    assert reasons[4] == "input_tokens is negative: -1"
    assert reasons[13].startswith("not valid JSON")
    assert totals("SELECT count(*), round(sum(cost_usd), 6) FROM requests") == (10, 0.075)


def test_repeats_across_segments_keep_the_first_line(lake, write, totals):
    """A repeat saying the same is a duplicate; one saying something else is quarantined,
    naming the line that was stored, in another segment as in the same one."""
    rows = [canonical_request(i) for i in range(8)]
    rows += [canonical_request(2, latency_ms=999.0), canonical_request(7),
             canonical_request(7, latency_ms=999.0)]
    f = ingest_paths(lake, [str(write("d.jsonl", rows))]).files[0]
    assert (f.stored, f.duplicates, f.quarantined) == ({"requests": 8}, {"requests": 1}, 2)
    assert totals("SELECT count(*) FILTER (latency_ms = 999.0), count(DISTINCT request_id) "
                  "FROM requests") == (0, 8)
    assert totals("SELECT list(line ORDER BY line), list(reason ORDER BY line) "
                  "FROM quarantine") == ([9, 11], [
        'request_id already in this file with other values (the first is stored): "r2"',
        'request_id already in this file with other values (the first is stored): "r7"'])


def test_rows_already_in_the_lake_are_duplicates(lake, write, totals):
    ingest_paths(lake, [str(write("a.jsonl", [canonical_request(i) for i in range(5)]))])
    f = ingest_paths(lake, [str(write("b.jsonl", [canonical_request(i) for i in range(3, 9)]))]
                     ).files[0]
    assert f.stored == {"requests": 4} and f.duplicates == {"requests": 2}
    assert totals("SELECT count(*), count(DISTINCT request_id) FROM requests") == (9, 9)


def test_extra_keys_are_folded_into_attributes(lake, write, totals):
    rows = [canonical_request(1, attributes={"region": "eu"}, tenant_tier="gold"),
            canonical_request(2, team={"name": "x/y"}),
            canonical_request(3, model=None, attributes={"a": 1}),
            canonical_request(4)]
    f = ingest_paths(lake, [str(write("x.jsonl", rows))]).files[0]
    assert f.stored == {"requests": 3} and f.quarantined == 1  # r3: missing model
    got = dict(totals("SELECT map_from_entries(list((request_id, attributes))) FROM requests")[0])
    assert json.loads(got["r1"]) == {"region": "eu", "tenant_tier": "gold"}
    assert json.loads(got["r2"]) == {"team": {"name": "x/y"}}
    assert got["r4"] is None


def test_loose_types_are_typed_like_the_other_formats(lake, write, totals):
    rows = [canonical_request(1, input_tokens="1000", ts=1772323200, cache_hit="true"),
            canonical_request(2, output_tokens=500.0, ts="2026-03-01T00:00:00+01:00"),
            canonical_request(3, input_tokens=10.5)]
    f = ingest_paths(lake, [str(write("t.jsonl", rows))]).files[0]
    assert f.stored == {"requests": 2} and f.quarantined == 1
    assert totals("SELECT reason FROM quarantine")[0] == "input_tokens is not an integer: 10.5"
    assert totals("SELECT list(strftime(ts, '%Y-%m-%dT%H:%M:%S') ORDER BY request_id), "
                  "sum(input_tokens), count(*) FILTER (cache_hit) FROM requests") == \
        (["2026-03-01T00:00:00", "2026-02-28T23:00:00"], 2000, 1)


def test_not_utf8_and_not_objects_are_quarantined_and_the_rest_kept(lake, write, totals):
    content = (_lines([canonical_request(1)]) + b'{"request_id": "\xff\xfe"}\n' + b"[1, 2]\n"
               + _lines([canonical_request(2)]))
    f = ingest_paths(lake, [str(write("u.jsonl.gz", gzip.compress(content)))]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 2, None)
    reasons = dict(totals("SELECT map_from_entries(list((line, reason))) FROM quarantine")[0])
    assert reasons[2].startswith("not valid UTF-8") and reasons[3] == "not a JSON object"


@pytest.mark.parametrize("line", [b"null", b"  null ", b"true", b"3", b'"text"'])
def test_a_line_of_valid_json_that_is_no_object_says_so(lake, write, totals, line):
    # `null` (DuckDB's from_json reads it as no value) was "not valid JSON", which it is
    content = _lines([canonical_request(1)]) + line + b"\n" + _lines([canonical_request(2)])
    f = ingest_paths(lake, [str(write("n.jsonl", content))]).files[0]
    assert (f.stored, f.quarantined) == ({"requests": 2}, 1)
    assert totals("SELECT line, reason FROM quarantine") == (2, "not a JSON object")


def test_progress_is_reported_per_segment(lake, write):
    path = write("p.jsonl", [canonical_request(i) for i in range(20)])
    seen = []
    ingest_paths(lake, [str(path)], progress=seen.append)
    assert len(seen) > 2 and seen[-1].rows == 20
    assert [p.rows for p in seen] == sorted(p.rows for p in seen)


def test_a_key_written_twice_is_quarantined_as_ambiguous_and_the_rest_kept(lake, write, totals):
    # Parsers disagree on which of the two values counts (DuckDB the first, Arrow and Python the
    # last), so neither is stored. A null extra key and a repeated nested key are no repeat.
    twice = json.dumps(canonical_request(2))[:-1] + ', "input_tokens": 7}'
    nested = json.dumps(canonical_request(3, note=None))[:-1] + ', "attributes": {"a": 1}}'
    rows = [canonical_request(1), twice, nested,
            json.dumps(canonical_request(4))[:-1] + ', "team": 1, "team": 2}']
    f = ingest_paths(lake, [str(write("k.jsonl", _lines(rows)))]).files[0]
    assert (f.stored, f.quarantined, f.error) == ({"requests": 2}, 2, None)
    assert f.reasons == [
        'line 2: key "input_tokens" appears twice in the object: which value is meant is '
        'ambiguous',
        'line 4: key "team" appears twice in the object: which value is meant is ambiguous']
    assert totals("SELECT list(request_id ORDER BY request_id), sum(input_tokens) "
                  "FROM requests") == (["r1", "r3"], 2000)


def test_a_segment_past_the_memory_limit_is_parsed_a_half_at_a_time(lake, write, totals,
                                                                     monkeypatch):
    """Some lines cost DuckDB far more memory than their size: a segment that runs out of it is
    parsed in halves, down to one block, with the same rows, lines and quarantine (here DuckDB
    refuses any parse of more than one block, as it ran out on a real segment in review)."""
    import duckdb

    real = pipeline._parse_segment
    sizes = []

    def parse(con, select, blocks, params):
        con = getattr(con, "real", con)  # (a half's call gets the whole's stand-in)

        class Refusing:
            real = con

            def __getattr__(self, name):
                return getattr(con, name)

            def execute(self, sql, *args):
                if sql.startswith("CREATE OR REPLACE TEMP TABLE parsed") and blocks.num_rows > 1:
                    raise duckdb.OutOfMemoryException("Out of Memory Error: (test)")
                return con.execute(sql, *args)

        sizes.append(blocks.num_rows)
        return real(Refusing(), select, blocks, params)

    monkeypatch.setattr(pipeline, "_parse_segment", parse)
    monkeypatch.setattr(pipeline, "SEGMENT_BYTES", 1 << 20)
    from lib.ingest import streams

    blocks_of = streams.text_blocks
    monkeypatch.setattr(streams, "text_blocks", lambda stream: blocks_of(stream, 2000))
    rows = [canonical_request(i) for i in range(40)]
    rows[17] = canonical_request(17, input_tokens=-1)
    f = ingest_paths(lake, [str(write("w.jsonl", rows))]).files[0]
    assert max(sizes) >= 4 and min(sizes) == 1  # it did split, down to single blocks
    assert (f.error, f.stored, f.quarantined) == (None, {"requests": 39}, 1)
    assert totals("SELECT line FROM quarantine") == (18,)
    assert totals("SELECT count(DISTINCT request_id) FROM requests") == (39,)
