"""lib/ui/widgets.for_display: what a table is given to show."""

from __future__ import annotations

import polars as pl

from lib.ui.widgets import for_display


def test_whole_columns_are_rounded_and_missing_text_is_blank():
    frame = pl.DataFrame({"latency_ms": [16923.4, 1039.5, None], "cost_usd": [0.00123, None, 1.0],
                          "error_type": ["timeout", None, None], "n": [1, 2, 3]})
    shown = for_display(frame, ("latency_ms", "not_a_column"))
    assert shown["latency_ms"].to_list() == [16923.0, 1040.0, None]  # a number stays missing
    assert shown["cost_usd"].to_list() == [0.00123, None, 1.0]  # not listed: untouched
    assert shown["error_type"].to_list() == ["timeout", "", ""]
    assert shown["n"].to_list() == [1, 2, 3] and shown.columns == frame.columns
