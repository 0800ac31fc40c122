"""OTLP JSON parsing speed: Sightline's GenAI span parser against a plain ``json.loads`` pass.

    python -m bench.otlp_bench [SPANS]

Generates a Collector-style OTLP JSON file (hex ids, integer enums, int64 as strings, 50 spans per
ExportTraceServiceRequest line) shaped like opentelemetry-instrumentation-openai-v2's spans: per
trace an ``invoke_agent`` span, three ``chat`` calls and an ``execute_tool`` span. Then times,
best of 3: a plain ``json.loads`` of every line (the floor any Python parser pays), the same with
orjson, ``lib.ingest.formats.otlp`` parsing to Arrow tables (requests + spans, ``_line``) as the
ingest pipeline calls it (blocks of lines parsed by one worker process per core), and the same
parse in one process (``workers=1``). CPU seconds include the worker processes'.
Goal: >= 100k spans/s. Writes the "OTLP parsing" section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import OUT, machine, write_section

DEFAULT_SPANS = 200_000
SPANS_PER_LINE = 50
MODELS = [("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("gpt-4o", "gpt-4o-2024-08-06"),
          ("o3-mini", "o3-mini-2025-01-31")]


def _s(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict:
    return {"key": key, "value": {"intValue": str(value)}}


def _span(rng: random.Random, trace_id: str, span_id: str, parent: str, name: str, start: int,
          duration_ns: int, attributes: list[dict], error: bool = False) -> dict:
    return {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name,
            "kind": 3, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration_ns),
            "attributes": attributes, "flags": 256,
            "status": {"code": 2, "message": "Error code: 429"} if error else {}}


def _trace(rng: random.Random, start: int) -> list[dict]:
    trace_id = f"{rng.getrandbits(128):032x}"
    agent_id = f"{rng.getrandbits(64):016x}"
    spans = [_span(rng, trace_id, agent_id, "", "invoke_agent support", start, 4_000_000_000,
                   [_s("gen_ai.operation.name", "invoke_agent"),
                    _s("gen_ai.agent.name", "support")])]
    for k in range(3):
        model, snapshot = MODELS[rng.randrange(3)]
        prompt = rng.randrange(50, 5000)
        error = rng.random() < 0.02
        attributes = [_s("gen_ai.operation.name", "chat"), _s("gen_ai.request.model", model),
                      _s("gen_ai.provider.name", "openai"), _s("server.address", "api.openai.com"),
                      {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
                      _i("gen_ai.request.max_tokens", 1024)]
        if error:
            attributes.append(_s("error.type", "<class 'openai.RateLimitError'>"))
        else:
            attributes += [
                {"key": "gen_ai.response.finish_reasons",
                 "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
                _s("gen_ai.response.model", snapshot),
                _s("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(64):x}"),
                _i("gen_ai.usage.input_tokens", prompt),
                _i("gen_ai.usage.output_tokens", rng.randrange(1, 800)),
                _s("openai.response.service_tier", "default"),
                _s("openai.response.system_fingerprint", "fp_44709d6fcb")]
        spans.append(_span(rng, trace_id, f"{rng.getrandbits(64):016x}", agent_id,
                           f"chat {model}", start + k * 1_000_000_000,
                           rng.randrange(200, 3000) * 1_000_000, attributes, error))
    spans.append(_span(rng, trace_id, f"{rng.getrandbits(64):016x}", agent_id,
                       "execute_tool search", start + 3_500_000_000, 300_000_000,
                       [_s("gen_ai.operation.name", "execute_tool"),
                        _s("gen_ai.tool.name", "search")]))
    return spans


def generate(path, spans: int, seed: int = 0) -> tuple[int, int]:
    """Write ``spans`` spans (rounded up to whole traces); returns (spans, model calls)."""
    rng = random.Random(seed)
    resource = {"attributes": [_s("service.name", "support-bot"), _s("service.version", "1.4.2"),
                               _s("deployment.environment.name", "prod"),
                               _s("telemetry.sdk.language", "python")]}
    scope = {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.4b0"}
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 10**9
    written = calls = 0
    pending: list[dict] = []
    with open(path, "w") as out:
        while written < spans:
            trace = _trace(rng, start + written * 1_000_000_000)
            pending += trace
            written += len(trace)
            calls += 3
            while len(pending) >= SPANS_PER_LINE or (written >= spans and pending):
                line, pending = pending[:SPANS_PER_LINE], pending[SPANS_PER_LINE:]
                out.write(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
                    {"scope": scope, "spans": line}]}]}, separators=(",", ":")) + "\n")
    return written, calls


def protobuf_twin(path: Path) -> Path:
    """The same requests as the Collector's file exporter writes them with ``format: proto``
    (each serialized request after its length, a big-endian uint32), beside ``path``."""
    import base64

    import orjson
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    def b64(hex_id: str) -> str:  # json_format reads bytes as base64
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    out = path.with_suffix(".pb")
    with open(path, "rb") as src, open(out, "wb") as dst:
        for line in src:
            doc = orjson.loads(line)
            for rs in doc["resourceSpans"]:
                for scope in rs["scopeSpans"]:
                    for span in scope["spans"]:
                        for key in ("traceId", "spanId", "parentSpanId"):
                            span[key] = b64(span[key])
            data = json_format.ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()
            dst.write(len(data).to_bytes(4, "big") + data)
    return out


def _workers_cpu() -> float:
    """CPU seconds used so far by the OTLP parse workers (Linux /proc; 0 elsewhere)."""
    from lib.ingest.formats import otlp_common as oc

    total = 0
    for proc in oc._POOL.procs if oc._POOL is not None else ():
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


def _best_of(fn, repeat: int = 3) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process and the parse workers) of ``repeat``
    runs.

    CPU time is shown too because the wall time of a shared 2-core machine is noisy.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0, w0 = time.perf_counter(), time.process_time(), _workers_cpu()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0 + max(_workers_cpu() - w0, 0.0))
    return min(walls), min(cpus)


def main(argv: list[str] | None = None) -> None:
    import argparse

    import orjson

    from lib.ingest.formats import otlp
    from lib.ingest.formats import otlp_common as oc

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spans", nargs="?", type=int, default=DEFAULT_SPANS,
                    help=f"spans in the generated file (default {DEFAULT_SPANS:,})")
    n = ap.parse_args(sys.argv[1:] if argv is None else argv).spans
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"otlp-genai-{n}.jsonl"
    spans, calls = generate(path, n)
    size_mb = path.stat().st_size / 1e6
    print(f"{path}: {spans:,} spans ({calls:,} model calls), {size_mb:.0f} MB")

    def plain_json() -> None:
        with open(path, "rb") as f:
            for line in f:
                json.loads(line)

    def plain_orjson() -> None:
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)

    parsed = []

    def sightline(workers: int | None = None):
        def run() -> None:
            rows = {"requests": 0, "spans": 0}
            with open(path, "rb") as f:
                chunks = otlp.parse(f, path.name) if workers is None else \
                    oc.parse_otlp(f, path.name, otlp.mappers(), otlp.choose_mapper,
                                  workers=workers)
                for chunk in chunks:
                    for name in rows:
                        if name in chunk.tables:
                            rows[name] += chunk.tables[name].num_rows
            parsed.append(rows)
        return run

    proto_path = protobuf_twin(path)
    proto_mb = proto_path.stat().st_size / 1e6

    def plain_protobuf() -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        with open(proto_path, "rb") as f:
            while size := f.read(4):
                ExportTraceServiceRequest.FromString(f.read(int.from_bytes(size, "big")))

    def sightline_proto() -> None:
        from lib.ingest.formats import otlp_proto

        rows = {"requests": 0, "spans": 0}
        with open(proto_path, "rb") as f:
            for chunk in otlp_proto.parse(f, proto_path.name):
                for name in rows:
                    if name in chunk.tables:
                        rows[name] += chunk.tables[name].num_rows
        parsed.append(rows)

    workers = oc.default_workers()
    results = [("plain `json.loads` per line", _best_of(plain_json)),
               ("plain `orjson.loads` per line", _best_of(plain_orjson)),
               (f"Sightline `otlp-json` parse -> Arrow tables ({workers} worker processes)"
                if workers > 1 else "Sightline `otlp-json` parse -> Arrow tables",
                _best_of(sightline())),
               ("Sightline `otlp-json` parse -> Arrow tables, one process",
                _best_of(sightline(1)))]
    proto_results = [
        ("plain protobuf `ExportTraceServiceRequest.FromString` per request",
         _best_of(plain_protobuf)),
        (f"Sightline `otlp-proto` parse -> Arrow tables ({workers} worker processes)"
         if workers > 1 else "Sightline `otlp-proto` parse -> Arrow tables",
         _best_of(sightline_proto))]
    assert all(p == {"requests": calls, "spans": spans} for p in parsed), parsed
    parsed.clear()
    baseline = results[0][1][0]
    print(f"{'pass':<72} {'wall s':>7} {'cpu s':>7} {'spans/s':>10} {'MB/s':>7} "
          f"{'vs json.loads':>14}")
    for label, (wall, cpu) in results:
        print(f"{label:<72} {wall:7.2f} {cpu:7.2f} {spans / wall:10,.0f} {size_mb / wall:7.0f} "
              f"{wall / baseline:13.2f}x")

    assert all(p == {"requests": calls, "spans": spans} for p in parsed), parsed
    proto_baseline = proto_results[0][1][0]
    for label, (wall, cpu) in proto_results:
        print(f"{label:<72} {wall:7.2f} {cpu:7.2f} {spans / wall:10,.0f} "
              f"{proto_mb / wall:7.0f} {wall / proto_baseline:13.2f}x (vs FromString)")
    rows = "\n".join(f"| {label} | {wall:.2f} | {cpu:.2f} | {spans / wall:,.0f} | "
                     f"{size_mb / wall:.0f} | {wall / baseline:.2f} |"
                     for label, (wall, cpu) in results)
    proto_rows = "\n".join(f"| {label} | {wall:.2f} | {cpu:.2f} | {spans / wall:,.0f} | "
                           f"{proto_mb / wall:.0f} | {wall / proto_baseline:.2f} |"
                           for label, (wall, cpu) in proto_results)
    ours = spans / results[2][1][0]
    one = spans / results[3][1][0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    per_span = results[3][1][1] / spans * 1e6
    orjson_per_span = results[1][1][1] / spans * 1e6
    verdict = (f"Goal {'met' if ours >= 100_000 else 'not met'}: {ours / 1000:.0f}k spans/s "
               f"({workers} worker processes; {one / 1000:.0f}k spans/s in one process). "
               f"The machine is shared: its 1-minute load average was {load:.1f} at the end of "
               "the run, so wall times vary from run to run; CPU seconds (the worker processes' "
               "included) are the steadier figure.")
    write_section("OTLP parsing", f"""Command: `python -m bench.otlp_bench` · machine: {machine()} \
· {datetime.now(UTC):%Y-%m-%d}

A Collector-style OTLP JSON file of {spans:,} GenAI spans ({calls:,} model calls, {size_mb:.0f} MB,
{SPANS_PER_LINE} spans per line, shaped like opentelemetry-instrumentation-openai-v2's spans),
parsed to canonical Arrow tables (requests + spans) by `lib/ingest/formats/otlp.py`, against a
plain JSON pass over the same lines; best of 3. Goal: ≥ 100k spans/s.

| pass | wall s | CPU s | spans/s (wall) | MB/s | time vs `json.loads` |
|---|---|---|---|---|---|
{rows}

{verdict}

How: a file larger than one block (4 MiB of whole lines) is cut into blocks that worker
processes (`python -c` children fed over their stdin, one per core up to 4, kept for the next
file; `SIGHTLINE_PARSE_WORKERS=1` turns them off) parse to Arrow tables; the ingesting process
puts the results back in file order and merges them into chunks of ~50k rows, so rows, `_line`
numbers and rejects are exactly those of the one-process parse (tests/ingest/test_otlp_fastpath.py
compares both, and the implementation before this change, on a file of varied spans; a worker that
dies only costs its blocks being parsed in-process). One process spends {per_span:.1f} µs of CPU
per span: orjson {orjson_per_span:.1f} µs (the row above), Arrow conversion ~1.3 µs (measured on
4 MiB blocks), the rest attribute decoding, ids, convention mapping and row building in Python,
with the cyclic GC paused while parsing (it cost ~30%). Small files (under one block) and
pretty-printed single documents are parsed in-process, as before; the first large file of a
process also pays ~0.2 s to start the workers (hidden here by the best of 3).

The same requests written as the file exporter writes them with `format: proto` ({proto_mb:.0f} MB,
each request after its length), parsed by `lib/ingest/formats/otlp_proto.py` (the same mapping,
fed by a direct walk of the protobuf messages, in blocks of ~4 MiB by the same workers), against
a plain protobuf decode of every request (upb decodes without making a Python object of any
field, so this floor is far lower than JSON's: what costs is reading the fields out, 1.5-2 µs an
attribute through the Python API, then the same mapping and Arrow conversion as JSON):

| pass | wall s | CPU s | spans/s (wall) | MB/s | time vs `FromString` |
|---|---|---|---|---|---|
{proto_rows}
""")


if __name__ == "__main__":
    main()
