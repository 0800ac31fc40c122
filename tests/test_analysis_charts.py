"""Chart builders of lib/analysis_charts.py: what they draw where."""

from __future__ import annotations

import math

import polars as pl
import pytest

from lib.analysis_charts import log_histogram


def test_the_objective_is_labelled_where_its_line_is_on_the_log_axis():
    # Plotly places an annotation on a log axis at 10^x: at x = 2000 it was off the chart
    frame = pl.DataFrame({"bin_start_ms": [100.0, 1000.0], "bin_end_ms": [1000.0, 10000.0],
                          "requests": [5, 3], "share": [0.625, 0.375]})
    fig = log_histogram(frame, objective_ms=2000)
    (line,) = fig.layout.shapes
    (label,) = fig.layout.annotations
    assert fig.layout.xaxis.type == "log" and line.x0 == 2000
    assert label.x == pytest.approx(math.log10(2000)) and label.text == "objective 2,000 ms"
    # inside the axis range Plotly draws: the bars' span, 100 to 10,000 ms
    assert math.log10(100) < label.x < math.log10(10_000)
