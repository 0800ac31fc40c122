"""tests/ingest/fake_openai.py's server plus the Responses API (``POST /v1/responses``), for
driving the real ``openai`` client's ``client.responses.create``. A separate file so the shared
fake is left as it is; everything else (chat completions, embeddings, errors) is its handler's.

The request's ``input`` (text) is a JSON directive, as for chat:

    {"input_tokens": 1000, "cached_tokens": 800, "output_tokens": 50, "reasoning_tokens": 20,
     "status": "completed" | "incomplete" | "failed", "reason": "max_output_tokens",
     "code": "server_error", "http_status": 429, "tool_call": true}

``input_tokens`` INCLUDES ``cached_tokens`` and ``output_tokens`` includes
``reasoning_tokens``, as OpenAI reports them. ``http_status`` other than 200 answers with an
OpenAI-style error body.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.ingest.fake_openai import SNAPSHOT_SUFFIX, FakeOpenAIServer, _Handler


def _directive(body: dict[str, Any]) -> dict[str, Any]:
    text = body.get("input")
    if isinstance(text, list):  # a list of input messages: the last one's text
        text = next((m.get("content") for m in reversed(text) if isinstance(m, dict)), None)
    try:
        parsed = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        parsed = {}
    return parsed if isinstance(parsed, dict) else {}


class _ResponsesHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if not self.path.endswith("/responses"):
            super().do_POST()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        d = _directive(body)
        model = body.get("model", "gpt-4o-mini")
        http_status = int(d.get("http_status", 200))
        if http_status != 200:
            self.server.record({"model": model, "status": http_status, "api": "responses"})
            self._send_json(http_status, {"error": {"message": f"fake {http_status}",
                                                    "type": "server_error", "param": None,
                                                    "code": "server_error"}})
            return
        status = d.get("status", "completed")
        n = self.server.next_id()
        created = int(time.time())
        usage = {
            "input_tokens": int(d.get("input_tokens", 10)),
            "input_tokens_details": {"cached_tokens": int(d.get("cached_tokens", 0)),
                                     "cache_write_tokens": 0},
            "output_tokens": int(d.get("output_tokens", 5)),
            "output_tokens_details": {"reasoning_tokens": int(d.get("reasoning_tokens", 0))},
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        output: list[dict[str, Any]] = []
        if d.get("reasoning_tokens"):
            output.append({"id": f"rs_{n}", "type": "reasoning", "summary": []})
        if d.get("tool_call"):
            output.append({"id": f"fc_{n}", "type": "function_call", "call_id": f"call_{n}",
                           "name": "lookup", "arguments": "{}", "status": "completed"})
        else:
            output.append({"id": f"msg_{n}", "type": "message", "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "annotations": [],
                                        "text": d.get("text", "Hello from the fake server.")}]})
        failed = status == "failed"
        response = {
            "id": f"resp_{n}", "object": "response", "created_at": created,
            "completed_at": None if failed else created, "status": status,
            "model": model + SNAPSHOT_SUFFIX, "output": [] if failed else output,
            "error": {"code": d.get("code", "server_error"), "message": "fake failure"}
            if failed else None,
            "incomplete_details": {"reason": d.get("reason", "max_output_tokens")}
            if status == "incomplete" else None,
            "instructions": None, "metadata": body.get("metadata") or {},
            "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto",
            "tools": [], "top_p": 1.0, "service_tier": "default",
            "usage": None if failed else usage,
        }
        self.server.record({"model": model, "status": 200, "api": "responses",
                            "usage": response["usage"]})
        self._send_json(200, response)


class FakeOpenAIResponsesServer(FakeOpenAIServer):
    """FakeOpenAIServer whose handler also answers ``/responses``."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _ResponsesHandler
