"""The engine answers in UTC whatever the host's time zone: the pages state UTC, and days, hours
and buckets must be UTC days and hours. DuckDB takes its default zone from the host (TZ), and a
session's SET does not reach the cursors queries run on, so the setting must be global."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from lib.store import Lake
from tests.conftest import make_request, requests_table

ROOT = Path(__file__).resolve().parents[2]


def test_queries_on_cursors_are_in_utc_on_a_host_in_another_zone(tmp_path):
    lake = Lake(tmp_path / "store")
    # 02:00 UTC on 2 November is still 1 November in New York
    lake.append({"requests": requests_table([make_request(
        1, ts=datetime(2026, 11, 2, 2, 0, tzinfo=UTC))])}, source="t")
    script = textwrap.dedent(f"""
        import json
        from lib.store import Engine, Lake
        eng = Engine(Lake({str(lake.root)!r}))
        row = eng.query("SELECT current_setting('TimeZone') AS zone, "
                        "CAST(ts AS DATE)::VARCHAR AS day, hour(ts) AS hour, "
                        "date_trunc('day', ts)::VARCHAR AS trunc FROM requests").row(0)
        print(json.dumps(row))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "TZ": "America/New_York"}, check=True)
    assert json.loads(out.stdout) == ["UTC", "2026-11-02", 2, "2026-11-02 00:00:00+00"]
