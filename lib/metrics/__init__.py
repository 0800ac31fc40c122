"""Metrics: functions of (engine, filters) returning Polars frames, computed in DuckDB SQL.

Pages, the CLI, the weekly report and the alert evaluator call the same functions.
"""
