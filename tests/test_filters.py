"""Global filters: URL round-trips, SQL with bound parameters only, previous period, presets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lib.filters import DEFAULT_PRESET, PRESETS, Filters, column_for_key, column_sql
from tests.conftest import T0, make_request, requests_table

NOW = datetime(2026, 3, 2, 12, 34, 56, 789000, tzinfo=UTC)


# -- URL round trip -------------------------------------------------------------------------------
@pytest.mark.parametrize("filters", [
    Filters.last("24h", NOW),
    Filters.last("1h", NOW, provider=["openai", "anthropic"], feature=["chat"]),
    Filters.between(datetime(2026, 2, 1, 8, 30, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC),
                    customer_id=["cust-017"], prompt_version=["v13"]),
    Filters.last("7d", NOW, **{"attr.region": ["eu-west"], "app_version": ["v2.4.0"]}),
])
def test_to_query_from_query_round_trip(filters):
    q = filters.to_query()
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in q.values())
    assert Filters.from_query(q, NOW) == filters
    # Also when the URL gives single values as plain strings.
    flat = {k: v[0] for k, v in q.items() if len(v) == 1}
    multi = {k: v for k, v in q.items() if len(v) != 1}
    assert Filters.from_query({**flat, **multi}, NOW) == filters


def test_round_trip_keeps_the_display_zone():
    f = Filters.from_query({"range": "24h", "tz": "Europe/Paris"}, NOW)
    assert f.tz == "Europe/Paris"
    assert f.to_query()["tz"] == ["Europe/Paris"]
    assert Filters.from_query(f.to_query(), NOW).tz == "Europe/Paris"
    # The zone is only how times are shown: the window is the same instants.
    assert (f.start, f.end) == (Filters.last("24h", NOW).start, Filters.last("24h", NOW).end)
    assert Filters.from_query({"tz": "Mars/Olympus"}, NOW).tz == "UTC"


def test_query_keys_are_the_url_names():
    f = Filters.last("24h", NOW, customer_id=["c2", "c1", "c1"])
    q = f.to_query()
    assert q["customer"] == ["c1", "c2"]  # deduplicated and sorted
    assert "customer_id" not in q and q["range"] == ["24h"] and "from" not in q
    custom = Filters.between(T0, T0 + timedelta(hours=2)).to_query()
    assert custom == {"range": ["custom"], "from": ["2026-03-02T12:00:00Z"],
                      "to": ["2026-03-02T14:00:00Z"]}


def test_malformed_queries_fall_back_to_defaults():
    default = Filters.last(DEFAULT_PRESET, NOW)
    assert Filters.from_query({}, NOW) == default
    assert Filters.from_query({"range": "42y"}, NOW) == default
    # custom with a bad or backwards window
    assert Filters.from_query({"range": "custom", "from": "nope", "to": "2026-01-01"}, NOW) \
        == default
    assert Filters.from_query({"range": "custom", "from": "2026-01-02", "to": "2026-01-01"},
                              NOW) == default
    # unknown keys and bad attribute keys are ignored, empty values dropped
    f = Filters.from_query({"bogus": "1", "attr.x' OR 1=1 --": "y", "provider": ["", "openai"],
                            "model": [""]}, NOW)
    assert f.values == (("provider", ("openai",)),)
    # from/to without a range: a custom window
    f = Filters.from_query({"from": "2026-01-01", "to": "2026-01-02T06:00:00+02:00"}, NOW)
    assert f.preset == "custom"
    assert (f.start, f.end) == (datetime(2026, 1, 1, tzinfo=UTC),
                                datetime(2026, 1, 2, 4, tzinfo=UTC))


# -- SQL ------------------------------------------------------------------------------------------
def test_where_binds_every_value_as_a_parameter():
    evil = "x'); DROP TABLE requests; --"
    f = Filters.between(T0, T0 + timedelta(hours=1), provider=["openai", evil])
    sql, params = f.where()
    assert evil not in sql and "openai" not in sql and "DROP" not in sql
    assert set(params.values()) >= {"openai", evil, T0, T0 + timedelta(hours=1)}
    for name in params:
        assert f"${name}" in sql


def test_where_on_a_real_table_with_hostile_values(lake, engine):
    names = ["O'Brien", "x'); DROP TABLE requests; --", "plain", "%", "a\\b"]
    lake.append({"requests": requests_table(
        [make_request(i, customer_id=c) for i, c in enumerate(names)])}, source="t")
    window = dict(start=T0, end=T0 + timedelta(hours=1))
    for name in names:
        sql, params = Filters.between(**window, customer_id=[name]).where()
        got = engine.query(f"SELECT customer_id FROM requests WHERE {sql}", params)
        assert got["customer_id"].to_list() == [name]
    sql, params = Filters.between(**window, customer_id=names[:2]).where()
    assert engine.scalar(f"SELECT count(*) FROM requests WHERE {sql}", params) == 2
    assert engine.row_count("requests") == 5  # the table is still there


def test_where_window_is_half_open(lake, engine):
    lake.append({"requests": requests_table([make_request(i) for i in range(5)])}, source="t")
    # r1 at T0+1min is in, r3 at T0+3min is the exclusive end.
    sql, params = Filters.between(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)).where()
    got = engine.query(f"SELECT request_id FROM requests WHERE {sql} ORDER BY ts", params)
    assert got["request_id"].to_list() == ["r1", "r2"]


def test_attribute_filters(lake, engine):
    attrs = [{"region": "eu-west", "tier.name": "gold"}, {"region": "us-east"},
             {"region": "eu-west"}, {}]
    lake.append({"requests": requests_table(
        [make_request(i, attributes=json.dumps(a)) for i, a in enumerate(attrs)])}, source="t")
    window = dict(start=T0, end=T0 + timedelta(hours=1))
    q = Filters.between(**window, **{"attr.region": ["eu-west"]}).to_query()
    assert q["attr.region"] == ["eu-west"]
    f = Filters.from_query(q, NOW)
    sql, params = f.where()
    got = engine.query(f"SELECT request_id FROM requests WHERE {sql} ORDER BY 1", params)
    assert got["request_id"].to_list() == ["r0", "r2"]
    sql, params = Filters.between(**window, **{"attr.tier.name": ["gold"]}).where()
    assert engine.scalar(f"SELECT count(*) FROM requests WHERE {sql}", params) == 1


@pytest.mark.parametrize("key", ["attr.x' OR 1=1 --", "attr.", "attr.a b", "attr.$..x",
                                 "attr." + "k" * 101, "latency_ms", "input_text", "1=1"])
def test_bad_keys_are_refused(key):
    assert column_for_key(key) is None
    assert column_sql(key) is None
    # Even forced into a Filters, a bad column adds no SQL.
    f = Filters.between(T0, T0 + timedelta(hours=1)).with_value(key, ["v"])
    sql, params = f.where()
    assert sql == "ts >= $f_start AND ts < $f_end"
    assert set(params) == {"f_start", "f_end"}


def test_where_per_table_keeps_only_columns_that_exist():
    f = Filters.between(T0, T0 + timedelta(hours=1), model=["gpt-4o"], provider=["openai"],
                        service=["api"])
    ev_sql, ev_params = f.where("evals")
    assert "model IN" in ev_sql and "provider" not in ev_sql and "service" not in ev_sql
    assert "gpt-4o" in ev_params.values() and "openai" not in ev_params.values()
    e_sql, _ = f.where("events")
    assert "service IN" in e_sql and "model" not in e_sql
    r_sql, r_params = f.where("requests", prefix="p")
    assert all(name.startswith("p_") for name in r_params)
    assert r_sql.count(" IN (") == 3


# -- periods and presets --------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_end_at_the_next_minute_and_previous_has_equal_length(preset):
    f = Filters.last(preset, NOW)
    assert f.end == datetime(2026, 3, 2, 12, 35, tzinfo=UTC)  # NOW rounded up to the minute
    assert f.duration == PRESETS[preset]
    prev = f.previous()
    assert prev.duration == f.duration and prev.end == f.start
    assert prev.start == f.start - PRESETS[preset]
    assert prev.values == f.values
    # A whole minute is not rounded up.
    assert Filters.last(preset, datetime(2026, 3, 2, 12, 35, tzinfo=UTC)).end == f.end


def test_previous_of_a_custom_window_keeps_filters():
    f = Filters.between(datetime(2026, 2, 1, 8, 30, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC),
                        provider=["openai"])
    prev = f.previous()
    assert prev.end == f.start and prev.duration == f.duration == timedelta(days=1, hours=15.5)
    assert prev.get("provider") == ("openai",)
    assert prev.previous().end == prev.start


def test_with_value_and_describe():
    f = Filters.last("24h", NOW).with_value("provider", ["openai"])
    assert f.get("provider") == ("openai",)
    assert f.with_value("provider", []).values == ()
    text = Filters.between(T0, T0 + timedelta(hours=2), customer_id=["c1"]).describe()
    assert text == "2026-03-02 12:00 → 2026-03-02 14:00 UTC · customer = c1"


def test_describe_is_one_line_whatever_the_logged_values():
    # a service "svc\n\n    # x" from the logs split the pages' caption into two paragraphs
    # (the second indented after a blank line: a code block)
    text = Filters.between(T0, T0 + timedelta(hours=2), service=["svc\n\n    # x"]).describe()
    assert "\n" not in text
    assert text.endswith("service = svc\\n\\n    # x")


@pytest.mark.parametrize("query, said", [
    ({"range": "24h", "tz": "Europe/Paris"}, []),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, []),
    # a valid window wins over an unknown range, as from_query decides: nothing passed over
    ({"range": "banana", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, []),
    # a known range ignores from/to altogether
    ({"range": "24h", "from": "junk"}, []),
    ({"range": "banana"}, ["time range `banana` is not one Sightline knows: showing the last 7 "
                           "days"]),
    ({"tz": "Mars/Base"}, ["time zone `Mars/Base` is not known: times are shown in UTC"]),
    ({"range": "custom", "from": "x"},
     ["`from` `x` and `to` `(none)` make no window (two ISO times from 1970 to 2200, the first "
      "before the second): showing the last 7 days"]),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
     ["`from` `2026-01-02T00:00:00Z` and `to` `2026-01-01T00:00:00Z` make no window (two ISO "
      "times from 1970 to 2200, the first before the second): showing the last 7 days"]),
    # a window reaching year 1 or 9999 broke every page (date arithmetic overflowed)
    ({"from": "2026-11-01T00:00:00Z", "to": "9999-12-30T00:00:00Z"},
     ["`from` `2026-11-01T00:00:00Z` and `to` `9999-12-30T00:00:00Z` make no window (two ISO "
      "times from 1970 to 2200, the first before the second): showing the last 7 days"]),
    # a value from a URL is quoted as code, without the backticks that would end the quote
    ({"range": ["`<b>x</b>`", "7d"]},
     ["time range `'<b>x</b>'` is not one Sightline knows: showing the last 7 days"]),
])
def test_query_problems_say_what_from_query_passes_over(query, said):
    assert Filters.query_problems(query) == said
    f = Filters.from_query(query, NOW)
    if any("showing the last 7 days" in s for s in said):
        assert f.preset == "7d" and f.duration == timedelta(days=7)
    if any("time zone" in s for s in said):
        assert f.tz == "UTC"


@pytest.mark.parametrize("query", [
    {"range": "24h"}, {"range": "banana"}, {"range": "custom"}, {"range": "Custom"},
    {"range": "7D"}, {"range": ""}, {"range": ["", "24h"]},
    {"from": "2026-01-01T00:00:00Z"}, {"to": "2026-01-01T00:00:00Z"},
    {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
    {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    {"range": "banana", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
    {"range": "banana", "from": "2026-01-01T00:00:00Z"},
    {"range": "custom", "from": "", "to": ""}, {"range": "24h", "from": "junk"},
    {"range": "custom", "from": "0001-01-01T00:00:00+01:00", "to": "2026-01-01T00:00:00Z"},
    {"tz": "Europe/Paris"}, {"tz": "Mars/Base"}, {"tz": "localtime"}, {"tz": "Factory"},
    {"tz": ""}, {"tz": "../../etc/passwd"},
])
def test_query_problems_mirror_what_from_query_shows(query):
    said = " ".join(Filters.query_problems(query))
    f = Filters.from_query(query, NOW)
    first = {k: (v if isinstance(v, str) else v[0]) for k, v in query.items()}
    if "showing the last 7 days" in said:
        assert f.preset == DEFAULT_PRESET and f.duration == PRESETS[DEFAULT_PRESET]
    elif first.get("range") in PRESETS:
        assert f.preset == first["range"]
    elif "from" in first or "to" in first or first.get("range") == "custom":
        # no word said: the link's own window is shown
        assert f.preset == "custom"
        assert (f.start, f.end) == (datetime.fromisoformat(first["from"].replace("Z", "+00:00")),
                                    datetime.fromisoformat(first["to"].replace("Z", "+00:00")))
    else:
        assert f.preset == DEFAULT_PRESET and not first.get("range")
    if "tz" in first:
        assert ("time zone" in said) == (f.tz != first["tz"])
        assert f.tz in (first["tz"], "UTC")
    # whatever the link says, its zone can show times: every page converts with Polars
    import polars as pl
    pl.Series([NOW]).dt.convert_time_zone(f.tz)


def test_a_link_value_cannot_leave_its_code_quote():
    # A blank line ends a markdown code span: what followed would be a live link in the warning.
    (said,) = Filters.query_problems({"range": "x\n\n[Sign in again](https://evil.example)"})
    assert "\n" not in said and said.count("`") == 2
    assert said.startswith("time range `x  [Sign in again](https://evil.example)` is not one")
    (said,) = Filters.query_problems({"range": "a\u2028b\x00c\x1bd`e"})
    assert said.startswith("time range `a b c d'e` is not one")
    (said,) = Filters.query_problems({"range": "custom", "from": "", "to": " "})
    assert said.startswith("`from` `(empty)` and `to` `(empty)` make no window")


def test_a_pinned_window_is_its_exact_instants():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 27, 3, 30, 12, tzinfo=UTC)
    f = Filters.last("7d", now, feature=["chat"])
    pinned = f.pinned()
    assert (pinned.start, pinned.end, pinned.values) == (f.start, f.end, f.values)
    q = pinned.to_query()
    assert q["range"] == ["custom"] and q["feature"] == ["chat"]
    # read back, the link gives the same window whenever it is opened
    later = Filters.from_query(q, now + timedelta(days=7))
    assert (later.start, later.end) == (f.start, f.end)
