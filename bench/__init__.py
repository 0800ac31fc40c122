"""Benchmarks: Sightline against the plainest DuckDB query answering the same question.

`python -m bench` runs every `bench/*_bench.py`; `python -m bench.overview_bench` runs one.
"""
