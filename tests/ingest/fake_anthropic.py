"""A tiny Anthropic Messages API server on 127.0.0.1 (an ephemeral port), for driving the real
``anthropic`` client: ``anthropic.Anthropic(base_url=server.base_url, api_key="test")``.

Each request says what should happen in its last user message, as JSON, so a test knows the
exact usage the "provider" reports:

    {"input_tokens": 1000, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 200,
     "output_tokens": 120, "thinking_tokens": 40, "stop_reason": "end_turn", "status": 200}

The usage is Anthropic's: ``input_tokens`` EXCLUDES the cache reads and writes, which are
reported beside it; ``output_tokens`` includes the thinking tokens. ``status`` 429, 500 or 529
answers with an Anthropic error body (``rate_limit_error``, ``api_error``,
``overloaded_error``). A message that is not JSON gets small default usage. The model answering
is the one requested, as the API does. Every answered call is appended to ``server.ledger``.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.ingest.fake_openai import FakeOpenAIServer

ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


def _directive(body: dict[str, Any]) -> dict[str, Any]:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):  # content blocks: the text of the last one
            content = next((b.get("text") for b in reversed(content)
                            if isinstance(b, dict) and b.get("type") == "text"), None)
        try:
            parsed = json.loads(content) if isinstance(content, str) else None
        except ValueError:
            parsed = None
        return parsed if isinstance(parsed, dict) else {"input_tokens": 10, "output_tokens": 5}
    return {"input_tokens": 10, "output_tokens": 5}


class _Handler(BaseHTTPRequestHandler):
    server: FakeAnthropicServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_{self.server.next_id():024d}")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/v1/messages"):
            self._send_json(404, {"type": "error", "error": {
                "type": "not_found_error", "message": f"no route {self.path}"}})
            return
        d = _directive(body)
        model = body.get("model", "claude-sonnet-4-20250514")
        status = int(d.get("status", 200))
        if status != 200:
            self.server.record({"model": model, "status": status})
            self._send_json(status, {"type": "error", "error": {
                "type": ERROR_TYPES.get(status, "api_error"), "message": f"fake {status}"}})
            return
        usage: dict[str, Any] = {
            "input_tokens": int(d.get("input_tokens", 0)),
            "cache_creation_input_tokens": int(d.get("cache_creation_input_tokens", 0)),
            "cache_read_input_tokens": int(d.get("cache_read_input_tokens", 0)),
            "cache_creation": {"ephemeral_5m_input_tokens":
                               int(d.get("cache_creation_input_tokens", 0)),
                               "ephemeral_1h_input_tokens": 0},
            "output_tokens": int(d.get("output_tokens", 0)),
            "service_tier": "standard",
        }
        content: list[dict[str, Any]] = []
        if d.get("thinking_tokens"):
            usage["output_tokens_details"] = {"thinking_tokens": int(d["thinking_tokens"])}
            content.append({"type": "thinking", "thinking": "Let me think.",
                            "signature": "sig"})
        content.append({"type": "text", "text": d.get("text", "Hello from the fake server.")})
        message = {"id": f"msg_fake{self.server.next_id():020d}", "type": "message",
                   "role": "assistant", "model": model, "content": content,
                   "stop_reason": d.get("stop_reason", "end_turn"), "stop_sequence": None,
                   "usage": usage}
        self.server.record({"model": model, "status": 200, "usage": usage})
        self._send_json(200, message)


class FakeAnthropicServer(FakeOpenAIServer):
    """The server (FakeOpenAIServer's, ledger and ids included, with this handler);
    ``base_url`` is what ``anthropic.Anthropic(base_url=...)`` takes."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _Handler

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
