"""A run's sources that could not be read at all, recorded for the Data page.

A source whose content cannot be read (empty, corrupt, not a known format) is remembered as
"seen" (lib/ingest/memo.py) and listed with why. One that could not be reached (the S3 endpoint
went away, a permission was denied, a listing failed) is not remembered, so the next run reads
it again; but then nothing in the store said the run had failed, and an operator learnt of it
only from cron's mail (found in review). Such a run now commits a record of kind
:data:`FAILED`, adding no file, with the first reasons: the Data page lists it among the
batches and warns of a recent one. It names no source key, so no later run skips anything for
it.
"""

from __future__ import annotations

import logging

from lib.ingest.pipeline import IngestReport
from lib.store.lake import Lake

log = logging.getLogger(__name__)

FAILED = "failed"  # the commit kind
MAX_REASONS = 5  # kept in the record: the CLI's report has them all


def unreached(report: IngestReport) -> list:
    """The report's files that failed without being read (not remembered as "seen"); an empty
    path given is a mistake of the command line, said there, not a run that failed."""
    return [f for f in report.files if f.error and not f.unreadable and f.source.strip()]


def record_failed_run(lake: Lake, report: IngestReport, sources: list[str]) -> None:
    """Commit a :data:`FAILED` record of ``report``'s unreached sources, when it has any (the
    run's ``sources`` as given name it); nothing in a dry run. Best effort: a store that cannot
    take it (read-only) already made the run fail loudly."""
    failed = unreached(report)
    if not failed or lake.dry_run:
        return
    info = {FAILED: len(failed),
            "errors": [f"{f.source}: {f.error}" for f in failed[:MAX_REASONS]]}
    try:
        with lake.begin(" ".join(s for s in sources if s.strip()), kind=FAILED,
                        info=info) as batch:
            batch.commit()
    except Exception as exc:  # (the run's own report has said it all)
        log.warning("could not record the failed run: %s", exc)
