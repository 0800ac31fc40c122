"""The app's engine is refreshed once per page run (lib/ui/store.py): the Cost page's token mix
and what-if read the version its tiles read, not a batch that landed in the middle of the run."""

from __future__ import annotations

from datetime import timedelta

from lib.filters import Filters
from lib.metrics import cost
from lib.store import Engine
from tests.conftest import T0, make_request, requests_table


def test_the_token_mix_does_not_move_the_app_engine_to_a_newer_version(lake):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    engine = Engine(lake, auto_refresh=False)  # as the app's
    try:
        f = Filters.between(T0, T0 + timedelta(hours=1))
        run_version = engine.version
        tiles = cost.totals(engine, f)
        lake.append({"requests": requests_table([make_request(10 + i) for i in range(4)])},
                    source="b")  # lands while the page runs
        mix = cost.token_mix(engine, f)
        assert engine.version == run_version
        assert mix["tokens"].sum() == 3 * 1500  # the three requests the tiles counted
        assert cost.totals(engine, f) == tiles
    finally:
        engine.close()


def test_the_cli_engine_still_reads_the_newest_version(lake):
    lake.append({"requests": requests_table([make_request(i) for i in range(3)])}, source="a")
    engine = Engine(lake)
    try:
        f = Filters.between(T0, T0 + timedelta(hours=1))
        cost.token_mix(engine, f)
        lake.append({"requests": requests_table([make_request(10 + i) for i in range(4)])},
                    source="b")
        assert cost.token_mix(engine, f)["tokens"].sum() == 7 * 1500
    finally:
        engine.close()
