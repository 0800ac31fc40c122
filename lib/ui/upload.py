"""The Data page's upload: files through `st.file_uploader` into the same pipeline as the CLI.

"Check" runs the same pipeline on a dry-run view of the lake (lib.store.Lake.checking): the
report says what would be stored, and nothing is. A mapping typed here (docs/mapping.md) is the
same as the CLI's ``--mapping`` file."""

from __future__ import annotations

import streamlit as st

from lib import pricing
from lib.commands.ingest import render
from lib.formatting import plural
from lib.ingest import formats as registry
from lib.ingest.mapping import MappingError, loads
from lib.ingest.pipeline import NOT_TEXT, IngestReport, Progress, ingest_stream
from lib.store import Engine, store_option
from lib.ui.widgets import md_escape, md_escape_lines

MAPPING_CHOICE = "your own shape: a YAML mapping"
MAPPING_EXAMPLE = """table: requests
columns:
  request_id: id
  ts: {path: started, unit: s}
  latency_ms: {path: timing.duration, unit: s}
  provider: {value: openai}
  model: llm.name
  input_tokens: usage.prompt
  output_tokens: usage.completion"""


def upload_section(engine: Engine) -> IngestReport | None:
    """File picker, format (or mapping) choice, Check and Ingest buttons; shows the same report
    as the CLI. Returns the report of the button pressed, if any."""
    limit_mb = st.get_option("server.maxUploadSize")
    # (the commands it gives carry --store when the app reads another store than data/store)
    store_opt = store_option(engine.lake.root)
    names = ["auto-detect"] + [f.name for f in registry.registered()] + [MAPPING_CHOICE]
    files = st.file_uploader(
        "Log or eval files (JSONL, JSON arrays, CSV, Parquet, OTLP traces or evaluation logs in "
        "JSON or protobuf, OpenInference, Langfuse, promptfoo, Inspect .eval or JSON; gzip or "
        "zstd welcome)",
        accept_multiple_files=True,
        key="upload_files",
        help=f"Up to {limit_mb} MB per file (server.maxUploadSize in .streamlit/config.toml). "
             f"For bigger files or folders use `python -m lib ingest PATH{store_opt}`.")
    # Said on the page, not only in the help: a file over the limit is refused by the browser
    # before the server sees it, with a red chip that names neither the way round nor why.
    st.caption(f"Up to {limit_mb:,} MB per file. Bigger files, folders and `s3://` prefixes: "
               f"`python -m lib ingest PATH{store_opt}` on the server.")
    fmt = st.selectbox("Format", names, key="upload_format",
                       help="Detected from the content unless you choose one. For fields of "
                            f"your own, choose “{MAPPING_CHOICE}”.")
    mapping_text = None
    if fmt == MAPPING_CHOICE:
        mapping_text = st.text_area(
            "Mapping (YAML): which of your fields is which column", key="upload_mapping",
            height=220, placeholder=MAPPING_EXAMPLE,
            help="Paths into your records, unit conversions (s → ms) and constants: see "
                 "docs/mapping.md. The same text works as a file for `python -m lib ingest "
                 "--mapping FILE`.")
    if not files:
        st.session_state.pop(LAST_RESULT, None)
        return None
    # What a report is of: once a file is added or taken away, or the format or mapping changed,
    # a Check's is no longer what "Ingest" would do ("Checked: … what Ingest would store" stayed
    # over a report of one file under "Ingest 2 file(s)", review). An ingest's stays: it did.
    made_for = ([(f.file_id, f.name, f.size) for f in files], fmt, mapping_text)
    buttons = st.container(horizontal=True)
    check = buttons.button(f"Check {len(files)} file(s)", key="upload_check",
                        help="Read and validate as an ingest would, against what is stored, "
                             "and store nothing.")
    go = buttons.button(f"Ingest {len(files)} file(s)", type="primary", key="upload_go")
    if not (check or go):
        kept = st.session_state.get(LAST_RESULT)
        if kept and (not kept["dry_run"] or kept["made_for"] == made_for):
            _show(kept)  # (a rerun of the page: the report stays)
        return None
    st.session_state.pop(LAST_RESULT, None)
    forced = None if fmt == "auto-detect" else fmt
    if mapping_text is not None:
        try:
            forced = loads(mapping_text, "Mapping", label="Data page")
        except MappingError as exc:
            # (it quotes the user's keys, which may look like markdown)
            st.error(md_escape_lines(exc))
            return None
    try:
        overrides = pricing.load_overrides()
    except ValueError as exc:  # a prices file named by $SIGHTLINE_PRICES that is wrong
        st.error("The price overrides cannot be read, so nothing was ingested: "
                 + md_escape_lines(exc))
        return None
    lake = engine.lake.checking() if check else engine.lake
    bar = st.progress(0.0, text=waiting_text(lake) or "Starting…")
    combined = IngestReport(dry_run=lake.dry_run)
    for i, (uf, name) in enumerate(zip(files, distinct_names([f.name for f in files]),
                                       strict=True)):
        def tick(p: Progress, i=i, name=name) -> None:
            frac = (i + (p.fraction or 0.0)) / len(files)
            # (a progress text is markdown: the file's name is the user's, made inert)
            bar.progress(min(frac, 1.0), text=md_escape(f"{name}: ")
                                              + (f"{p.stage}… " if p.stage else "")
                                              + f"{p.rows:,} rows, {p.rows_per_s:,.0f} rows/s")
        uf.seek(0)  # a file checked on an earlier run is read again from its start
        report = ingest_stream(lake, uf, uf.name, fmt=forced, progress=tick,
                               source=f"upload:{name}", overrides=overrides)
        combined.files.extend(report.files)
        combined.compaction = merged_compaction(combined.compaction, report.compaction)
    bar.progress(1.0, text="Done")
    if not check:
        engine.refresh(force=True)
        st.cache_data.clear()  # new rows: cached results keyed on the old version are stale
    result = outcome(combined, len(files), store_opt)
    st.session_state[LAST_RESULT] = {**result, "made_for": made_for, "dry_run": bool(check)}
    _show(result)
    return combined


def waiting_text(lake) -> str | None:
    """What the progress bar says before the first file while another writer holds the store
    (a cron ingest, a compaction): the upload, Check included, waits for it, and "Starting…" at
    0% for minutes looked hung (review); None when nothing holds it."""
    if not lake.writer_busy():
        return None
    return ("Waiting for another writer (an ingest, compact, reprice or remove, from the "
            "command line or another upload) to finish: this upload starts when it does…")


LAST_RESULT = "upload_last_result"  # (kept in the session: a rerun of the page keeps the report)


def outcome(report: IngestReport, n_files: int, store_opt: str = "") -> dict:
    """What the page says of an upload's ``report`` (``n_files`` files): the banner's kind
    ("error", "warning", "info" or "success") and words, the report's text in the page's
    wording, whether to offer a mapping, and ``store_opt`` (lib.store.store_option), which
    ends the commands it gives. A banner says what happened: "Ingested." over a
    report of nothing stored, or "The others went in." where there were none, misled (review)."""
    text = page_wording(render(report, store_opt))
    failed = sum(1 for f in report.files if f.error)
    stored = sum(sum(f.stored.values()) for f in report.files)
    quarantined = sum(f.quarantined for f in report.files)
    unpriced = sum(u["requests"] for f in report.files for u in f.unpriced)
    if failed:
        kind, words = "error", (
            f"{failed:,} of {n_files:,} file(s) could not be read: see the report below."
            + (" Checked: nothing was stored." if report.dry_run else
               " The rows of the others went in." if stored else ""))
    elif report.dry_run:
        kind, words = "info", ("Checked: nothing was stored. The report below says what "
                               "“Ingest” would store.")
    elif not stored:
        kind, words = "warning", (
            "Nothing new was stored: "
            + ("every row was quarantined (listed under Quarantine below)"
               if quarantined and not any(f.duplicates or f.duplicate_file
                                          for f in report.files)
               else "see the report below (rows already stored are counted as duplicates, "
                    "failed rows are listed under Quarantine)") + ".")
    else:
        # (a request without a cost is a warning: its spend is missing from every total)
        kind, words = ("warning" if unpriced else "success"), (
            f"Ingested: {stored:,} row(s) stored"
            + (f", {quarantined:,} quarantined" if quarantined else "")
            + (f", {plural(unpriced, 'request')} of them without a cost (see the note)"
               if unpriced else "")
            + ". The report below is the same as `python -m lib ingest` prints.")
    # A mapping describes fields of text records: offered where the report suggests one for a
    # file that is text, not for a PNG or random bytes, where nothing of the kind can help.
    offer = any(MAPPING_CHOICE in page_wording(said) for f in report.files if not binary(f)
                for said in [*f.notes, *f.reasons, f.error or ""])
    return {"kind": kind, "words": words, "text": text, "offer_mapping": offer,
            "store_opt": store_opt}


def _show(result: dict | None) -> None:
    if not result:
        return
    getattr(st, result["kind"])(result["words"])
    # shown as plain text: file names and reasons come from the input; notes and reasons are
    # long lines
    st.code(result["text"], language=None, wrap_lines=True)
    if result["offer_mapping"]:
        st.info(f"To read such fields here, choose **Format → {MAPPING_CHOICE}** and describe "
                "them (the same YAML as `--mapping`, see docs/mapping.md), then **Check**. A "
                "corrected file's rows with ids already stored are skipped as duplicates: take "
                "a batch that went in wrong out first (`python -m lib remove "
                f"BATCH_ID{result.get('store_opt', '')}`).")


def merged_compaction(done: dict | None, more: dict | None) -> dict | None:
    """The automatic compactions after the files of one upload (each file is its own ingest),
    as one report's (lib.store.compact.CompactReport.to_dict, or ``{"error": ...}``), as the
    CLI's run compacts once after all its sources: the last file's alone, even one that merged
    nothing, hid what the others' did (review)."""
    if not done or not more:
        return done or more
    out = {key: [*done.get(key, []), *more.get(key, [])]
           for key in ("merged", "gc_removed", "unreadable")}
    out["files_before"] = done.get("files_before", 0) + more.get("files_before", 0)
    out["files_after"] = done.get("files_after", 0) + more.get("files_after", 0)
    if done.get("error") or more.get("error"):
        out["error"] = done.get("error") or more.get("error")
    return out


def distinct_names(names: list[str]) -> list[str]:
    """``names`` of one upload's files, a name met again numbered ("log.jsonl (2)"): two files
    of one name (from two folders) were one name in the report, the batches and the quarantine
    (review)."""
    taken = set(names)  # (a number never makes the name of another file: "log.jsonl (2)")
    seen: set[str] = set()
    out = []
    for name in names:
        shown, n = name, 1
        while shown in seen or (shown != name and shown in taken):
            n += 1
            shown = f"{name} ({n})"
        seen.add(shown)
        out.append(shown)
    return out


# The report's guidance (lib.ingest's errors and hints, lib.commands.ingest.render) is written
# for the command line; here it names the page's own controls. Replaced at rendering, phrase by
# phrase: a phrase reworded there is shown as written, still right for the CLI.
_PAGE_WORDS = (
    # (a binary file: a format may read it, a mapping of text fields never can)
    ("); use --format or --mapping to say what it is", "); if it is one of them, choose it "
     "under Format above", NOT_TEXT),
    ("use --format or --mapping to say what it is", "choose its format under Format above, or "
     f"“{MAPPING_CHOICE}” to describe its fields", None),
    ("or force a format with --format", "or choose its format under Format above", None),
    ("--format openai or --format anthropic", "Format openai or anthropic", None),
    ("with --mapping (docs/mapping.md", f"with Format → “{MAPPING_CHOICE}” (docs/mapping.md",
     None),
    ("or map one with a mapping file, see docs/mapping.md", "or map one with Format → "
     f"“{MAPPING_CHOICE}”, see docs/mapping.md", None),
    ("(the quarantine keeps them all: see them on the Data page, or download them there)",
     "(under Quarantine below: its "
     "downloads hold them all)", None),
    ("(an ingest keeps them all in the quarantine, which the Data page lists and downloads)",
     "(“Ingest” keeps them all in the quarantine below)", None),
    # (lib.commands.ingest._unpriced_notes)
    (". The Data page lists them.", ": see “Requests without a cost” below.", None),
)


def page_wording(text: str) -> str:
    """The CLI's report ``text`` as the upload shows it: its ``--format`` and ``--mapping``
    advice in the page's own controls."""
    lines = []
    for line in text.split("\n"):
        for cli, page, only_after in _PAGE_WORDS:
            if only_after is None or only_after in line:
                line = line.replace(cli, page)
        lines.append(line)
    return "\n".join(lines)


def binary(report) -> bool:
    """True when ``report`` (a FileReport) is of a file whose content is not text. Told by its
    error's words, lib.ingest.pipeline._unrecognized's: the report has no field saying so."""
    return bool(report.error) and report.error.startswith(NOT_TEXT)
