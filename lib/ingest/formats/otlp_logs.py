"""OTLP JSON logs carrying GenAI evaluation events (format ``otlp-logs-json``).

Reads what the Collector's file exporter writes for logs: one ``ExportLogsServiceRequest`` per
line, ``resourceLogs`` -> ``scopeLogs`` -> ``logRecords``, in either JSON encoding (the spec's: hex
ids, int64 as decimal text; protobuf's printer: base64 ids, maybe snake_case keys such as
``resource_logs`` and ``log_records``). Lines, long lines, a pretty-printed single document,
attribute values and ids are read by the same code as OTLP traces (``otlp_common``).

The OpenTelemetry GenAI semantic conventions define ``gen_ai.evaluation.result`` as an event,
that is a log record: emitters such as splunk-otel-util-genai's EvaluationEventsEmitter write
one per evaluation result, carrying the trace and span ids of the GenAI span they judged. Each
such record becomes one ``evals`` row with the conventions of evaluation span events
(``otlp_common._add_evaluations``):

| column      | from                                                                        |
|-------------|-----------------------------------------------------------------------------|
| source      | "online"                                                                    |
| run_id      | "online:" + the resource's service.name ("online:unknown" without one)      |
| request_id  | the record's spanId (hex; an all-zero or absent id: null)                   |
| case_id     | the spanId, else the attribute gen_ai.response.id                           |
| epoch       | null: a repeat is told apart by its time, which is part of the eval_id      |
| ts          | timeUnixNano, else (absent or 0) observedTimeUnixNano                       |
| version     | the resource's service.version                                              |
| model       | gen_ai.response.model, else gen_ai.request.model                            |
| metric      | gen_ai.evaluation.name ("evaluation" without one)                           |
| score       | gen_ai.evaluation.score.value                                               |
| label       | gen_ai.evaluation.score.label                                               |
| passed      | gen_ai.evaluation.passed when a boolean, else from the label (pass, fail,  |
|             | relevant, ...; "unknown": null), as for span events                         |
| explanation | gen_ai.evaluation.explanation                                               |
| judge       | gen_ai.evaluation.judge, else gen_ai.evaluator.name                         |
| attributes  | every other attribute of the record as JSON (gen_ai.response.id,            |
|             | gen_ai.provider.name, gen_ai.operation.name, error.type, ...), and trace_id:|
|             | the record's traceId (hex)                                                  |
| eval_id     | stable hash of (run_id, spanId or gen_ai.response.id, metric, time in ns),  |
|             | as for span events (otlp_common.evaluation_id): the same evaluation read    |
|             | again, from any file or encoding, as a log record or as a span event, has   |
|             | the same id; two of one metric on one span at different times are two rows, |
|             | and so are two at the same instant within one line (numbered as a span's   |
|             | events are); the same one in another line or file is a re-export: one row   |

One difference with span events remains: a span event's row takes the model of the request it
judges (the response model, e.g. a dated snapshot), a log record's the model its attributes name
(emitters give the requested one).

A record is an evaluation event when its ``eventName`` is ``gen_ai.evaluation.result`` or, when
it has no ``eventName`` (older Events-API emitters), its attribute ``event.name`` is. Every other
record (application logs share the Collector's logs file; also splunk's duplicate legacy
``gen_ai.evaluation`` event) is not read: it is counted, and the file's report says how many
("1,204 log record(s) that are not gen_ai.evaluation.result events: not read"). The record's
body and severity are not read: emitters put a copy of the attributes in the body.

Bad values: an evaluation record holding a value its row cannot hold is quarantined alone with
its line and a reason naming the field and the value ("gen_ai.evaluation.result log record not
usable: gen_ai.evaluation.score.value is not a finite number: abc"): a score that is no finite
number (text, true, 1e400), a time that is no integer in 0 .. 2^64-1, a spanId that is not text,
text that is not valid UTF-8. The other records go on. A line that is not JSON or not an
``ExportLogsServiceRequest`` is one reject.

One parser reads both signals (otlp_common.parse_otlp, with worker processes for large files):
a Collector file exporter shared by the traces and logs pipelines writes both kinds of line into
one file, so a logs file's trace lines give their requests and spans as in an ``otlp-json``
file, and a trace file's logs lines their evaluations; lines of metrics are counted in the
report. This format only names the files that start with logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from lib.ingest.base import BadValue, Chunk, Format
from lib.ingest.formats import otlp_common as oc
from lib.ingest.formats.json_values import is_text
from lib.ingest.nesting import move_evals_to_counted_calls
from lib.ingest.values import number, shown

EVALUATION_EVENT = oc.EVALUATION_EVENT  # "gen_ai.evaluation.result"
SCORE = "gen_ai.evaluation.score.value"
LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"
METRIC = "gen_ai.evaluation.name"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MODEL = "gen_ai.request.model"
JUDGE_KEYS = ("gen_ai.evaluation.judge", "gen_ai.evaluator.name")

_ERRORS = (AttributeError, TypeError, KeyError, ValueError, OverflowError)

# The envelope's first key: both JSON encodings write it first (the message has no other field)
_ENVELOPE = re.compile(rb'^\[?\s*\{\s*"(resourceLogs|resource_logs|resourceMetrics|'
                       rb'resource_metrics)"\s*:')


def detect(head: bytes, filename: str) -> bool:
    """True when the file starts with an ``ExportLogsServiceRequest``: its first key is
    ``resourceLogs`` (or ``resource_logs``), or it starts with a metrics line and has logs but no
    trace lines in ``head``. Trace files start with ``resourceSpans`` (and whichever of the two
    formats names a mixed file, one parser reads it)."""
    found = _ENVELOPE.match(head.lstrip().removeprefix(oc.UTF8_BOM).lstrip())
    if found is None:
        return False
    if found.group(1) in (b"resourceLogs", b"resource_logs"):
        return True
    # a metrics line first (a file exporter shared with the metrics pipeline): logs after it
    return (b'"resourceLogs"' in head or b'"resource_logs"' in head) and not (
        b'"resourceSpans"' in head or b'"resource_spans"' in head)


def parse(stream: BinaryIO, filename: str, chunk_rows: int = oc.CHUNK_ROWS) -> Iterator[Chunk]:
    """Yield Chunks of ``evals`` (with ``_line``) plus rejects; ``Chunk.not_read`` counts the
    log records that are not evaluation events. Trace lines in the same file (a file exporter
    shared by the traces and logs pipelines) are read as the ``otlp-json`` format reads them:
    it is one parser for both signals (otlp_common.parse_otlp)."""
    from lib.ingest.formats import otlp  # (otlp's mappers import the formats that import this)

    return oc.parse_otlp(stream, filename, otlp.mappers(), otlp.choose_mapper, chunk_rows)


NOT_EVALUATION = f"log record(s) that are not {EVALUATION_EVENT} events"


def add_resource_logs(batch: oc.Batch, entry: Any, line_no: int,
                      seen: dict | None = None) -> None:
    """Rows and rejects of one ``resourceLogs`` entry into ``batch``, its records that are not
    evaluation events counted in ``batch.not_read``. A malformed scope is one reject; the
    entry's other scopes go on. ``seen`` numbers the evaluations of one line (see
    :func:`evaluation_row`); give the same dict for every entry of the line."""
    seen = {} if seen is None else seen
    try:
        resource = oc.Resource(oc.decode_attributes((entry.get("resource") or {})
                                                    .get("attributes")))
        scopes = (entry.get("scopeLogs") or entry.get("scope_logs")
                  or entry.get("instrumentationLibraryLogs") or ())
        if scopes.__class__ is not list:
            raise BadValue(f"scopeLogs is not a list: {shown(scopes)}")
    except _ERRORS as exc:
        batch.reject(line_no, oc.json_text(entry), f"malformed resourceLogs entry: {exc}")
        return
    for scope in scopes:
        try:
            # ("logs": the layout of instrumentationLibraryLogs, before OTLP 0.15)
            records = (scope.get("logRecords") or scope.get("log_records") or scope.get("logs")
                       or ())
            if records.__class__ is not list:
                raise BadValue(f"logRecords is not a list: {shown(records)}")
        except _ERRORS as exc:
            batch.reject(line_no, oc.json_text(scope), f"malformed scopeLogs entry: {exc}")
            continue
        for record in records:
            if record.__class__ is not dict:
                batch.reject(line_no, oc.json_text(record),
                             f"not a log record object: {shown(record)}")
            elif is_evaluation(record):
                add_evaluation(batch, record, resource, line_no, seen)
            else:
                batch.not_read[NOT_EVALUATION] += 1


def is_evaluation(record: dict) -> bool:
    """Whether a log record is a ``gen_ai.evaluation.result`` event: by its ``eventName``, or,
    when it has none (the older Events API), by its ``event.name`` attribute."""
    name = record.get("eventName") or record.get("event_name")
    if name:
        return name == EVALUATION_EVENT
    attributes = record.get("attributes")
    if attributes.__class__ is not list:
        return False
    for item in attributes:
        if item.__class__ is dict and item.get("key") == "event.name":
            try:
                return oc.decode_attributes([item]).get("event.name") == EVALUATION_EVENT
            except BadValue:
                return False
    return False


def add_evaluation(batch: oc.Batch, record: dict, resource: oc.Resource, line_no: int,
                   seen: dict) -> None:
    """One evaluation log record -> one eval row in ``batch``, or one reject naming the field
    and the value that cannot be stored."""
    try:
        row = evaluation_row(record, resource, seen)
    except _ERRORS as exc:
        batch.reject(line_no, oc.json_text(record),
                     f"{EVALUATION_EVENT} log record not usable: {exc}")
        return
    batch.evals.append(row)
    batch.eval_lines.append(line_no)


def evaluation_row(record: dict, resource: oc.Resource, seen: dict | None = None) -> tuple:
    """The eval row (``otlp_common.EVAL_COLUMNS`` order, ts in microseconds) of one evaluation
    log record; :class:`BadValue` (or another ValueError) for a value it cannot hold.

    ``seen`` counts the accepted evaluations of the line by (run, subject, metric, time): two of
    one metric on one span at the same instant in one line are two rows (numbered as a span's
    events are, so the same pair sent as span events has the same ids); the same evaluation in
    another line or file is the same row, exported again."""
    if not is_text(record):  # read by the lenient re-read: text that is not UTF-8
        raise BadValue("not valid UTF-8 text")
    attributes = record.get("attributes")
    if attributes and attributes.__class__ is not list:
        raise BadValue(f"attributes is not a list: {shown(attributes)}")
    a = oc.decode_attributes(attributes)
    a.pop("event.name", None)  # what made it an evaluation record: no information left
    span_id = oc.norm_id(record.get("spanId") or record.get("span_id"), "spanId")
    # the judged span's trace: Quality's filters find an evaluation of a step that is no model
    # call (an agent's invoke_agent span) through it (lib.metrics.quality._judges)
    try:  # (an id that cannot be read costs the evaluation nothing but this)
        trace_id = oc.norm_id(record.get("traceId") or record.get("trace_id"), "traceId")
    except BadValue:
        trace_id = None
    if trace_id:
        a["trace_id"] = trace_id
    time_ns = record_time(record)
    metric = oc.as_text(a.pop(METRIC, None)) or "evaluation"
    score = number(a.pop(SCORE, None), SCORE, signed=True)
    label = oc.as_text(a.pop(LABEL, None))
    passed = oc.evaluation_passed(a, label)
    explanation = oc.as_text(a.pop(EXPLANATION, None))
    judge = oc.as_text(a.pop(JUDGE_KEYS[0], None) or a.pop(JUDGE_KEYS[1], None))
    # the model that answered, else the one requested; the other one stays in attributes
    model_key = RESPONSE_MODEL if a.get(RESPONSE_MODEL) not in (None, "") else REQUEST_MODEL
    model = oc.as_text(a.pop(model_key, None)) or None
    # without a span id the response id names what was judged (it stays in attributes)
    response_id = oc.as_text(a.get(RESPONSE_ID)) or None
    subject = span_id or response_id
    run_id = "online:" + (resource.service or "unknown")
    key = (run_id, subject, metric, time_ns)
    repeat = 0 if seen is None else seen.get(key, 0)
    if seen is not None:  # the record is accepted: count it
        seen[key] = repeat + 1
    return (
        oc.evaluation_id(run_id, subject, metric, time_ns, repeat), run_id, time_ns // 1000,
        "online",
        None, subject, None, span_id, resource.app_version, model, metric, score, passed, judge,
        label, explanation, oc.json_text(a) if a else None,
    )


def record_time(record: dict) -> int:
    """A log record's time in nanoseconds: ``timeUnixNano``, else (absent or 0, as the SDK
    writes when the emitter gave no time) ``observedTimeUnixNano``; :class:`BadValue` naming
    the field when one is no time, or when neither is set."""
    for key, snake in (("timeUnixNano", "time_unix_nano"),
                       ("observedTimeUnixNano", "observed_time_unix_nano")):
        value = record.get(key) or record.get(snake)
        if value:
            ns = oc.unix_nano(value, key)
            if ns:
                return ns
    raise BadValue("neither timeUnixNano nor observedTimeUnixNano is set")


FORMAT = Format(
    name="otlp-logs-json",
    detect=detect,
    parse=parse,
    # first: its detector only claims files whose first key is resourceLogs, which no other
    # format reads, while a trace detector would claim a logs file quoting "resourceSpans"
    priority=15,
    doc="OTLP JSON logs (Collector file exporter): gen_ai.evaluation.result events as evals",
    finish=move_evals_to_counted_calls,
    appendable=oc.lines_not_document,
)
