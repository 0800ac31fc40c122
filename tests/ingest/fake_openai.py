"""A small OpenAI-compatible HTTP server on 127.0.0.1, for driving the real ``openai`` client.

Each chat request says what should happen in its last user message, as JSON, so a test controls
the exact usage the "provider" reports and therefore knows the true totals:

    {"prompt_tokens": 120, "cached_tokens": 64, "completion_tokens": 30,
     "reasoning_tokens": 10, "status": 200, "finish_reason": "stop"}

``status`` 429 or 500 answers with an OpenAI-style error body. ``stream: true`` requests are
answered as server-sent events, with a final usage chunk when ``stream_options.include_usage``.
A message that is not JSON gets small default usage; ``/embeddings`` counts one token per word.
A chat answer's ``service_tier`` is the one the request asked for ("default" for "auto" or none).
Every answered call is appended to ``server.ledger`` (what was returned), so a test can
cross-check its own expectations.

The response model is the requested one with a dated suffix, as real providers answer with a
snapshot name (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``).
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SNAPSHOT_SUFFIX = "-2024-07-18"
DEFAULT_DIRECTIVE = {"prompt_tokens": 10, "completion_tokens": 5}


def _directive(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            try:
                parsed = json.loads(content)
            except ValueError:
                break
            if isinstance(parsed, dict):
                return parsed
            break
    return dict(DEFAULT_DIRECTIVE)


def _usage(d: dict[str, Any]) -> dict[str, Any]:
    prompt = int(d.get("prompt_tokens", 0))
    completion = int(d.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(d.get("cached_tokens", 0)),
                                  "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": int(d.get("reasoning_tokens", 0)),
                                      "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output quiet

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{self.server.next_id()}")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/embeddings"):
            self._embeddings(body)
            return
        if not self.path.endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}",
                                            "type": "invalid_request_error"}})
            return
        d = _directive(body)
        status = int(d.get("status", 200))
        model = body.get("model", "gpt-4o-mini")
        if d.get("delay_s"):
            time.sleep(float(d["delay_s"]))
        if status != 200:
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            self.server.record({"model": model, "status": status})
            self._send_json(status, {"error": {"message": f"fake {status}", "type": kind,
                                               "param": None, "code": kind}})
            return
        response_model = model + SNAPSHOT_SUFFIX
        usage = _usage(d)
        finish = d.get("finish_reason", "stop")
        text = d.get("text", "Hello from the fake server.")
        completion_id = f"chatcmpl-{self.server.next_id()}"
        self.server.record({"model": model, "status": 200, "stream": bool(body.get("stream")),
                            "usage": usage})
        if body.get("stream"):
            self._stream(body, completion_id, response_model, text, finish, usage, d)
            return
        self._send_json(200, {
            "id": completion_id, "object": "chat.completion", "created": int(time.time()),
            "model": response_model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            # The tier asked for serves the call; "auto" (or none) is served by "default".
            "usage": usage, "service_tier": body.get("service_tier", "auto").replace(
                "auto", "default"),
        })

    def _embeddings(self, body: dict[str, Any]) -> None:
        """Embeddings: the usage is one token per whitespace-separated word of the input."""
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        tokens = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self.server.record({"model": body.get("model"), "status": 200, "embeddings": True,
                            "usage": usage})
        self._send_json(200, {
            "object": "list", "model": body.get("model"), "usage": usage,
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(len(texts))],
        })

    def _stream(self, body: dict[str, Any], completion_id: str, response_model: str, text: str,
                finish: str, usage: dict[str, Any], d: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": completion_id, "object": "chat.completion.chunk",
                "created": int(time.time()), "model": response_model,
                "system_fingerprint": "fp_fake"}

        def emit(choices: list[dict[str, Any]], chunk_usage: Any = None) -> None:
            chunk = dict(base, choices=choices)
            if (body.get("stream_options") or {}).get("include_usage"):
                chunk["usage"] = chunk_usage
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        if d.get("first_chunk_delay_s"):
            time.sleep(float(d["first_chunk_delay_s"]))
        emit([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for word in text.split(" "):
            emit([{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}])
        emit([{"index": 0, "delta": {}, "finish_reason": finish}])
        if (body.get("stream_options") or {}).get("include_usage"):
            emit([], usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class FakeOpenAIServer(ThreadingHTTPServer):
    """The server; ``base_url`` is what ``openai.OpenAI(base_url=...)`` takes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ledger: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.ledger.append(entry)

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Recording real instrumentation spans against this server

RECORDER = Path(__file__).parent / "fixtures" / "record_spans.py"
REPO_ROOT = Path(__file__).resolve().parents[2]

# The calls the span tests make. Usage numbers follow OpenAI's convention: prompt_tokens includes
# cached_tokens and completion_tokens includes reasoning_tokens.
SCENARIO: list[dict[str, Any]] = [
    {"model": "gpt-4o-mini", "directive": {"prompt_tokens": 1200, "cached_tokens": 1024,
                                           "completion_tokens": 300, "text": "Cached answer."},
     "context": {"session_id": "sess-a", "user_id": "user-1",
                 "metadata": {"feature": "faq", "team": "support"}}},
    {"model": "o3-mini", "directive": {"prompt_tokens": 500, "completion_tokens": 800,
                                       "reasoning_tokens": 640, "finish_reason": "length"}},
    {"model": "gpt-4o-mini", "stream": True, "agent": True,
     "directive": {"prompt_tokens": 90, "completion_tokens": 12, "first_chunk_delay_s": 0.03,
                   "text": "Streaming hello there"}},
    {"model": "gpt-4o", "directive": {"status": 429}},
    {"model": "gpt-4o", "directive": {"status": 500}},
    {"model": "gpt-4o", "agent": True,
     "directive": {"prompt_tokens": 2048, "cached_tokens": 1536, "completion_tokens": 64,
                   "finish_reason": "tool_calls"}},
    {"embeddings": True, "model": "text-embedding-3-small",
     "input": "one two three four five six seven eight"},
]


def scenario_calls(scenario: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls of a scenario, one item each, in the order they are made: a call made while a
    stream is read (``while_reading``) after that stream, streams opened at once
    (``open_streams``) in their order."""
    calls: list[dict[str, Any]] = []
    for item in scenario:
        if item.get("open_streams"):
            calls += scenario_calls(item["open_streams"])
            continue
        calls.append(item)
        if item.get("while_reading"):
            calls += scenario_calls([item["while_reading"]])
    return calls


def scenario_truth(scenario: list[dict[str, Any]] = SCENARIO) -> dict[str, int]:
    """The true totals of a scenario, from what the fake server is told to answer."""
    scenario = scenario_calls(scenario)
    truth = {"requests": len(scenario), "errors": 0, "input_tokens": 0, "cached_input_tokens": 0,
             "output_tokens": 0, "reasoning_tokens": 0, "agents": 0, "streams": 0}
    for item in scenario:
        truth["agents"] += bool(item.get("agent"))
        truth["streams"] += bool(item.get("stream"))
        if item.get("embeddings"):
            truth["input_tokens"] += len(item["input"].split())
            continue
        d = item["directive"]
        if d.get("status", 200) != 200:
            truth["errors"] += 1
            continue
        truth["input_tokens"] += d.get("prompt_tokens", 0)
        truth["cached_input_tokens"] += d.get("cached_tokens", 0)
        truth["output_tokens"] += d.get("completion_tokens", 0)
        truth["reasoning_tokens"] += d.get("reasoning_tokens", 0)
    return truth


def proto_path(collector_file: Path) -> Path:
    """Where :func:`record_spans` writes its requests as length-prefixed protobuf (the
    Collector's file exporter with ``format: proto``), beside ``collector_file``."""
    return collector_file.with_name(collector_file.name.replace(".collector.jsonl", ".pb"))


# (instrumentation, scenario, environment) -> (the files and ledger of its first recording)
_RECORDED: dict[tuple[str, str, str], tuple[tuple[Path, ...], list[dict]]] = {}


def record_spans(instrumentation: str, out_dir: Path,
                 scenario: list[dict[str, Any]] = SCENARIO) -> tuple[Path, Path, list[dict]]:
    """Run the real instrumentation in a fresh process against a fresh fake server.

    Returns (protobuf-JSON file, Collector-JSON file, the server's ledger); the same requests in
    the file exporter's binary layout are at :func:`proto_path`. A subprocess keeps the
    instrumentation's global patches of ``openai`` out of the test process.

    A recording is made once per test process for the same instrumentation, scenario and
    environment; asked again, its files are copied into ``out_dir`` (a recording takes ~2.5 s,
    and the default scenario alone was recorded about 20 times in a run of the suite).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario_file = out_dir / "scenario.json"
    scenario_file.write_text(json.dumps(scenario))
    protobuf_out = out_dir / f"{instrumentation}.protobuf.jsonl"
    collector_out = out_dir / f"{instrumentation}.collector.jsonl"
    outputs = (protobuf_out, collector_out, proto_path(collector_out))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    key = (instrumentation, json.dumps(scenario, sort_keys=True),
           json.dumps({k: v for k, v in env.items() if not k.startswith("PYTEST_")},
                      sort_keys=True))
    if key in _RECORDED:
        files, ledger = _RECORDED[key]
        for source, target in zip(files, outputs):
            shutil.copyfile(source, target)
        return protobuf_out, collector_out, copy.deepcopy(ledger)
    with FakeOpenAIServer() as server:
        result = subprocess.run(
            [sys.executable, str(RECORDER), "--instrumentation", instrumentation,
             "--base-url", server.base_url, "--scenario", str(scenario_file),
             "--out", str(protobuf_out), "--collector-out", str(collector_out),
             "--proto-out", str(proto_path(collector_out)), "--spans-per-line", "3"],
            capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
        ledger = list(server.ledger)
    if result.returncode != 0:
        raise RuntimeError(f"recording {instrumentation} spans failed:\n{result.stderr}")
    # kept apart from out_dir, which its test may change
    keep = Path(tempfile.mkdtemp(prefix="recorded-spans-"))
    atexit.register(shutil.rmtree, keep, True)
    _RECORDED[key] = (tuple(shutil.copy(path, keep / path.name) for path in outputs),
                      copy.deepcopy(ledger))
    return protobuf_out, collector_out, ledger
