"""Data: what is in the store — tables, freshness, batches, quarantine, requests without a cost."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from lib import formatting, pricing, schema
from lib.metrics import inventory
from lib.store import compact, store_option
from lib.ui import filters as ui_filters
from lib.ui import store, upload, widgets

TS_FORMAT = "YYYY-MM-DD HH:mm:ss"
# (inventory.quarantine's raw_cut)
RAW_CUT_HELP = (f"True when the raw text reached the {schema.RAW_MAX_CHARS:,}-character limit "
                "the quarantine keeps (in bytes, for a line cut before it was decoded): the "
                "record may be longer than shown. A record exactly that long is flagged too.")
engine = store.engine()
# The commands this page gives carry --store when the app reads another store than data/store:
# its SIGHTLINE_STORE is often set for the app alone, and a bare command went to data/store.
store_opt = store_option(engine.lake.root)
f = ui_filters.current()

st.title("Data")
header = st.empty()


def say_store() -> None:
    header.caption(f"Store: `{engine.lake.root}` · manifest version `{engine.version}` · "
                   f"times in {f.tz}. The sidebar filters do not apply on this page: it shows "
                   "everything.")


say_store()  # (said before the upload too: it was blank while one ran, found in review)
widgets.problems_banner(engine)
if failed := inventory.recent_failed_run(engine):
    # (an S3 endpoint gone, a permission denied: said only in cron's mail before, review)
    when = failed["committed_at"].astimezone(ZoneInfo(f.tz)).strftime("%Y-%m-%d %H:%M")
    st.warning(f"The ingest run of {when} ({f.tz}) over "
               f"{widgets.md_escape(formatting.cut(failed['source'], 200))} did not read "
               f"everything. {widgets.md_escape(failed['note'])}.",
               icon=":material/cloud_off:")

with st.expander("Upload logs or eval results", icon=":material/upload:"):
    upload.upload_section(engine)
say_store()  # (an upload may have changed the manifest version)

with st.spinner("Reading the store…"):
    tables = inventory.tables(engine)
now = datetime.now(UTC)
cols = st.columns(len(tables))
for col, row in zip(cols, tables.iter_rows(named=True)):
    with col:
        # (in days and hours: a latency's units said "4320.0 min ago" of three days, review)
        fresh = "never" if row["last_ingested_at"] is None else \
            f"{formatting.duration(now - row['last_ingested_at'])} ago"
        st.metric(row["table"].capitalize(), formatting.count(row["rows"]),
                  help=f"{row['rows']:,} rows in {row['files']} file(s); last ingest {fresh}",
                  border=True)

st.subheader("Tables")
widgets.dataframe(
    # An empty table's times are a dash, not "None"; the text sorts as the times do.
    tables.select("table", "rows", "files", "first_ts", "last_ts", "last_ingested_at")
    .with_columns(pl.col(c).dt.convert_time_zone(f.tz).dt.strftime("%Y-%m-%d %H:%M:%S")
                  .fill_null("–") for c in ("first_ts", "last_ts", "last_ingested_at")),
    hide_index=True, width="stretch",
    column_config={
        "table": st.column_config.TextColumn("Table"),
        "rows": st.column_config.NumberColumn("Rows", format="localized"),
        "files": st.column_config.NumberColumn("Live files"),
        "first_ts": st.column_config.TextColumn(f"First event ({f.tz})"),
        "last_ts": st.column_config.TextColumn(f"Last event ({f.tz})"),
        "last_ingested_at": st.column_config.TextColumn(f"Last ingested ({f.tz})"),
    },
)

# Before the first ingest the sections below have nothing to say "every row passed" about.
never_ingested = not any(c.kind in ("ingest", "demo") for c in engine.commits())
NOTHING_YET = "Nothing has been ingested yet."
if tables["rows"].sum() == 0:
    widgets.empty_state(
        "The store is empty",
        "Upload files under **Upload logs or eval results** at the top of this page, or, from "
        "the command line, ingest logs (files, folders, globs or `s3://` prefixes) or write the "
        "demo data:",
        f"python -m lib ingest path/to/logs/{store_opt}\npython -m lib demo{store_opt}")

st.subheader("Quarantine")
q_count = int(tables.filter(pl.col("table") == "quarantine")["rows"][0])
if q_count == 0 and never_ingested:
    st.caption(NOTHING_YET)
elif q_count == 0:
    st.success("No quarantined input: every row ingested so far passed validation.")
else:
    st.warning(f"{q_count:,} input record(s) failed validation and were kept aside with their "
               "reason. They are not counted anywhere else.")
    checks = inventory.quarantine_checks(engine)
    widgets.dataframe(
        checks.with_columns(pl.col("last_ingested_at").dt.convert_time_zone(f.tz)),
        hide_index=True, width="stretch",
        column_config={
            "check": st.column_config.TextColumn(
                "Check failed", help="The reason without the value it quotes. An input failing "
                                     "two checks counts under each."),
            "inputs": st.column_config.NumberColumn("Inputs", format="localized"),
            "files": st.column_config.NumberColumn("Files"),
            "last_ingested_at": st.column_config.DatetimeColumn(f"Last ingested ({f.tz})",
                                                                format=TS_FORMAT)})
    pick_file, pick_check = st.columns(2)
    ALL_FILES, ALL_CHECKS = "All files", "All checks"
    # (names and checks from the input: their bidi controls shown as escapes, values as kept)
    source = pick_file.selectbox("File", [ALL_FILES, *inventory.quarantine_files(engine)],
                                 key="quarantine_file", format_func=widgets.shown_str)
    check = pick_check.selectbox("Check failed", [ALL_CHECKS, *checks["check"]],
                                 key="quarantine_check", format_func=widgets.shown_str)
    picked = {"source_file": None if source == ALL_FILES else source,
              "check": None if check == ALL_CHECKS else check}
    SHOWN = 1000
    q = inventory.quarantine(engine, limit=SHOWN + 1, **picked)
    if q.is_empty():
        # (the check list is every file's: an empty table under a file and a check of another
        # said nothing, review)
        st.caption("No quarantined input of this file failed this check: pick “All checks” "
                   "or “All files” to see the others.")
    if q.height > SHOWN:
        st.caption(f"The newest {SHOWN:,} inputs are listed; the downloads hold all of them.")
    # (the line and its reason first: at phone width the first columns are what shows)
    widgets.dataframe(q.head(SHOWN).with_columns(pl.col("ingested_at").dt.convert_time_zone(f.tz)),
                 hide_index=True, width="stretch",
                 column_order=("line", "reason", "source_file", "raw", "raw_cut", "ingested_at"),
                 column_config={"source_file": st.column_config.TextColumn("File"),
                                "line": st.column_config.NumberColumn(
                                    "Line", help="The line of the file; in a JSON array the "
                                                 "record's position, in an OTLP protobuf file "
                                                 "the export request's number."),
                                "reason": st.column_config.TextColumn("Reason"),
                                "raw": st.column_config.TextColumn("Raw (truncated)"),
                                "raw_cut": st.column_config.CheckboxColumn(
                                    "Raw cut?", help=RAW_CUT_HELP),
                                "ingested_at": st.column_config.DatetimeColumn(
                                    f"Ingested ({f.tz})", format=TS_FORMAT)})
    # (made on click: the whole quarantine, not read on every run of the page.) Not named after
    # the sidebar's window, which this page does not apply: the files hold everything.
    # (named after the file and check picked: two downloads of one store must not pass for
    # each other, found in review)
    def whole_quarantine() -> pl.DataFrame:
        # Made on click, maybe hours after the page ran: by then the files of the version it
        # read may have been replaced and deleted (an hour after a compaction), and the download
        # failed without a word (review). The newest version, as Explore's export reads it.
        engine.refresh()
        return inventory.quarantine(engine, **picked)

    widgets.downloads(whole_quarantine,
                      "_".join(["quarantine", *(widgets.file_name_part(v.rsplit("/", 1)[-1])
                                                for v in picked.values() if v)]),
                      key="dl_quarantine", windowed=False)

st.subheader("Requests without a cost")
unpriced = pricing.unpriced_models(engine)
# The overrides file and the reprice command as this app has them: with SIGHTLINE_PRICES or
# SIGHTLINE_STORE set for the app alone, "prices.yaml" and a bare `reprice` were other files.
prices_file = pricing.overrides_name()
reprice = pricing.reprice_command(engine.lake.root)
broken = pricing.overrides_problem()
if broken:  # (the advice below sent its reader to add prices to a file nothing could read)
    st.error(f"`{prices_file}` cannot be read, so every ingest and `reprice` stops until it "
             "is fixed: " + widgets.md_escape_lines(broken))
if unpriced.is_empty() and never_ingested:
    st.caption(NOTHING_YET)
elif unpriced.is_empty() and not tables.filter(pl.col("table") == "requests")["rows"][0]:
    # (a store of eval results alone was told "Every request has a cost", review)
    st.caption("No requests are stored, so none is without a cost.")
elif unpriced.is_empty():
    st.success("Every request has a cost: its model has a price (genai-prices, or an override in "
               f"{prices_file}) and its token counts were logged.")
else:
    why = {
        pricing.NO_PRICE: f"add the model's prices to `{prices_file}`, or, for a deployment or "
                          "alias name, the model it is billed as (`priced_as`, e.g. the model "
                          f"it answered as), then run `{reprice}`.",
        pricing.NO_USAGE: "the call succeeded but its log has no input token count (every call "
                          "reads input: priced on its output alone, it would cost too little); "
                          "log the provider's usage to cost it.",
        pricing.TIMED_OUT: "the client gave up waiting, but the provider may have finished the "
                           "call and billed it; its usage is unknown.",
    }
    # (only the reasons listed: all three, whatever the list held, buried the one that applied)
    listed = set(unpriced["reason"])
    st.warning("These requests' cost is left empty (not $0), so cost totals leave them out. "
               + " ".join(f"**{reason}**: {said}" for reason, said in why.items()
                          if reason in listed))
    widgets.dataframe(
        widgets.for_display(unpriced.with_columns(
            pl.col("first_seen", "last_seen").dt.convert_time_zone(f.tz))),
        hide_index=True, width="stretch",
        column_config={
            "provider": st.column_config.TextColumn("Provider"),
            "model": st.column_config.TextColumn("Model"),
            "reason": st.column_config.TextColumn("Why no cost"),
            "answered_as": st.column_config.TextColumn(
                "Answered as", help="The models that answered, as the responses name them"),
            "requests": st.column_config.NumberColumn("Requests", format="localized"),
            "first_seen": st.column_config.DatetimeColumn(f"First seen ({f.tz})",
                                                          format=TS_FORMAT),
            "last_seen": st.column_config.DatetimeColumn(f"Last seen ({f.tz})",
                                                         format=TS_FORMAT)})
    widgets.downloads(unpriced, "unpriced_models", key="dl_unpriced", windowed=False)
    suggested = pricing.alias_suggestions(unpriced, pricing.overrides_path())
    if suggested:
        replaced = pricing.models_line_to_replace(pricing.overrides_path())
        where = (f"in place of the line `{replaced}` of" if replaced
                 else "added at the end of")
        st.caption("If these deployments or aliases are billed per token as the model that "
                   f"answered for them, these lines, {where} `{prices_file}`, price "
                   f"them so (then run `{reprice}`):")
        st.code(suggested, language="yaml")

orphans = engine.lake.orphans(older_than_s=300)
if orphans:
    # Which of them a commit replaced, and when: those are kept an hour on purpose (a reader of
    # the version before may still read them, README), not leftovers.
    replaced_at = compact.removed_at(engine.commits())  # (epoch s, as the collector reads it)
    kept_s = compact.GC_AGE_S
    groups: dict[str, list] = {"kept": [], "due": [], "stray": []}
    for path in orphans:
        when = replaced_at.get(path.relative_to(engine.lake.root).as_posix())
        groups["stray" if when is None else
               "kept" if now.timestamp() - when <= kept_s else "due"].append(path)
    with st.expander(f"{len(orphans)} file(s) in the store are in no batch's current files: "
                     "readers ignore them"):
        hour = formatting.duration(timedelta(seconds=kept_s))
        said = {
            "kept": f"Replaced by compaction, `reprice` or `remove` less than {hour} ago: kept "
                    f"for {hour} for readers that started before, then deleted by the next "
                    f"ingest that stores rows or by `python -m lib compact{store_opt}`.",
            "due": f"Replaced by compaction, `reprice` or `remove` over {hour} ago: the next "
                   f"ingest that stores rows, or `python -m lib compact{store_opt}`, deletes "
                   "them.",
            "stray": "Listed by no batch: leftovers of interrupted writes, or files put there "
                     f"by something else. `python -m lib compact{store_opt}` deletes those over "
                     f"{hour} old.",
        }
        for group, paths in groups.items():
            if paths:
                st.caption(f"{len(paths):,} file(s). {said[group]}")
                st.text(widgets.shown_str("\n".join(str(p) for p in paths[:200])))

st.subheader("Batches")
ALL_KINDS = "All kinds"
pick_kind, pick_source = st.columns(2)
kind = pick_kind.selectbox("Kind", [ALL_KINDS, *inventory.BATCH_KINDS], key="batches_kind")
source_part = pick_source.text_input("Source contains", key="batches_source",
                                     placeholder="part of a file name, path or URI")
picked_batches = {"kind": None if kind == ALL_KINDS else kind,
                  "source_contains": source_part.strip() or None}
BATCHES_SHOWN = 500  # a cron job a minute commits half a million batches a year
b = inventory.batches(engine, limit=BATCHES_SHOWN + 1, **picked_batches)
if b.is_empty():
    st.caption("No batches match." if any(picked_batches.values()) else "No batches yet.")
else:
    if b.height > BATCHES_SHOWN:
        st.caption(f"The newest {BATCHES_SHOWN:,} batches are listed; the downloads hold all "
                   "that match.")
        b = b.head(BATCHES_SHOWN)
    # Blank, not "None", where a batch has no format (demo, compact) or no note.
    # (the commit's id second: what `python -m lib remove` takes, off screen when last)
    widgets.dataframe(b.with_columns(pl.col("committed_at").dt.convert_time_zone(f.tz),
                                pl.col("format", "note").fill_null(""))
                 .select("committed_at", "commit_id", pl.exclude("committed_at", "commit_id")),
                 hide_index=True, width="stretch",
                 column_config={
                     "committed_at": st.column_config.DatetimeColumn(f"Committed ({f.tz})",
                                                                     format=TS_FORMAT),
                     "kind": st.column_config.TextColumn(
                         "Kind", help="ingest, demo, compact, reprice, remove (a batch "
                                      "taken out), seen: a source read that gave no rows "
                                      "(see Note), or failed: a run's sources that could not "
                                      "be read at all, read again by the next run"),
                     "source": st.column_config.TextColumn("Source"),
                     "format": st.column_config.TextColumn("Format"),
                     "rows": st.column_config.NumberColumn(
                         "Rows stored", format="localized",
                         # (a missing number reads "None" in Streamlit's tables: said as shown)
                         help="None for compact, reprice and remove: they rewrite rows already "
                              "stored (the note says how many)"),
                     "quarantined": st.column_config.NumberColumn(
                         "Quarantined", format="localized",
                         help="None for compact, reprice and remove, which read no input"),
                     "files": st.column_config.NumberColumn("Files added"),
                     "removed": st.column_config.NumberColumn("Files removed"),
                     "note": st.column_config.TextColumn("Note", width="large"),
                     # its 64 characters pushed the other columns off screen: cut to the
                     # column's width, whole in the cell's tooltip, copy and the download
                     "commit_id": st.column_config.TextColumn("Commit", width="small",
                                                              help="The id `python -m lib "
                                                                   "remove` takes")})
    noted = b.filter(pl.col("note").is_not_null())
    if noted.height:
        # The notes are sentences (what a format did not read, fields that look misnamed): whole
        # here, as plain text (they quote names from the files).
        with st.expander(f"Notes on {noted.height:,} batch(es)"):
            st.text(widgets.shown_str("\n\n".join(
                f"{r['source']} ({r['commit_id'][:12]}): {r['note']}"
                for r in noted.head(200).iter_rows(named=True))))
    widgets.downloads(lambda: inventory.batches(engine, **picked_batches), "batches",
                      key="dl_batches", windowed=False)
    st.caption("A batch that went in wrong (misnamed fields, a wrong mapping) is taken out, "
               f"quarantine included, with `python -m lib remove COMMIT --reason TEXT{store_opt}`: "
               "one "
               "commit, recorded here; its file can then be ingested again.")
