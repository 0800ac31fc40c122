"""The Data page's upload: files through `st.file_uploader` into the same pipeline as the CLI."""

from __future__ import annotations

import streamlit as st

from lib.commands.ingest import render
from lib.ingest import formats as registry
from lib.ingest.pipeline import IngestReport, Progress, ingest_stream
from lib.store import Engine


def upload_section(engine: Engine) -> IngestReport | None:
    """File picker, format choice and an Ingest button; shows the same report as the CLI."""
    limit_mb = st.get_option("server.maxUploadSize")
    names = ["auto-detect"] + [f.name for f in registry.registered()]
    files = st.file_uploader(
        "Log or eval files (JSONL, JSON arrays, CSV, Parquet, OTLP JSON traces or evaluation logs, "
        "OpenInference, Langfuse, promptfoo, Inspect; gzip welcome)", accept_multiple_files=True,
        key="upload_files",
        help=f"Up to {limit_mb} MB per file (server.maxUploadSize in .streamlit/config.toml). "
             "For bigger files or folders use `python -m lib ingest PATH`.")
    fmt = st.selectbox("Format", names, key="upload_format",
                       help="Detected from the content unless you choose one.")
    if not files:
        return None
    if not st.button(f"Ingest {len(files)} file(s)", type="primary", key="upload_go"):
        return None
    bar = st.progress(0.0, text="Starting…")
    combined = IngestReport()
    for i, uf in enumerate(files):
        def tick(p: Progress, i=i, name=uf.name) -> None:
            frac = (i + (p.fraction or 0.0)) / len(files)
            bar.progress(min(frac, 1.0), text=f"{name}: {p.rows:,} rows, "
                                              f"{p.rows_per_s:,.0f} rows/s")
        report = ingest_stream(engine.lake, uf, uf.name,
                               fmt=None if fmt == "auto-detect" else fmt, progress=tick,
                               source=f"upload:{uf.name}")
        combined.files.extend(report.files)
        combined.compaction = report.compaction or combined.compaction
    bar.progress(1.0, text="Done")
    engine.refresh(force=True)
    st.cache_data.clear()  # new rows: cached results keyed on the old version are stale anyway
    text = render(combined)  # shown as plain text: file names and reasons come from the input
    if combined.ok:
        st.success("Ingested. The report below is the same as `python -m lib ingest` prints.")
    else:
        st.error("Some files could not be read: see the report below. The others went in.")
    st.code(text, language=None, wrap_lines=True)  # notes and reasons are long lines
    return combined
