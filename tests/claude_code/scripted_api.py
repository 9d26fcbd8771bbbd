"""A scripted stand-in for the Anthropic Messages API, for running the real Claude Code CLI.

It listens on 127.0.0.1 only, answers `POST /v1/messages` as the real API does (server-sent
events when the request asks to stream, one JSON message otherwise) and records every request,
so a test reads exactly what the model would have seen.

Requests that carry tools are the agent loop (the main conversation or a subagent): each takes
the next turn of the scenario, in arrival order. A compaction request (it carries the tools too)
gets the scenario's `summary`; anything else (titles, quota probes) a short text.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = list[dict[str, Any]]  # content blocks: {"type": "text", "text": ...} or {"type": "tool_use", ...}


def text(s: str) -> dict[str, Any]:
    return {"type": "text", "text": s}


_ids = itertools.count(1)


def usage(input_tokens: int) -> dict[str, Any]:
    """Not a content block: makes the turn report this many input tokens (a full context
    window makes the CLI compact before its next request)."""
    return {"type": "usage", "input_tokens": input_tokens}


def tool(name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}


class ScriptedAPI:
    """The server and its scenario; use as a context manager (always stopped)."""

    def __init__(self, turns: list[Turn], summary: str = "Summary: the scripted session so far.") -> None:
        self.turns = list(turns)
        self.summary = summary
        self.requests: list[dict[str, Any]] = []  # every request body, in arrival order
        self.agent_requests: list[dict[str, Any]] = []  # those that took a scenario turn
        self.compactions = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def answer(self, body: dict[str, Any]) -> tuple[Turn, str, int]:
        """The content blocks, stop reason and reported input tokens for one request."""
        with self.lock:
            self.requests.append(body)
            if _is_compaction(body):
                self.compactions += 1
                return [text(f"<analysis>scripted</analysis>\n<summary>{self.summary}</summary>")], "end_turn", 10
            if not body.get("tools"):
                return [text("Scripted session")], "end_turn", 10
            self.agent_requests.append(body)
            turn = self.turns.pop(0) if self.turns else [text("Done.")]
        tokens = next((b["input_tokens"] for b in turn if b["type"] == "usage"), 10)
        turn = [b for b in turn if b["type"] != "usage"]
        stop = "tool_use" if any(b["type"] == "tool_use" for b in turn) else "end_turn"
        return turn, stop, tokens

    def tool_results(self) -> dict[str, dict[str, Any]]:
        """Every tool_result the model was sent, by tool_use_id (the latest wins)."""
        out: dict[str, dict[str, Any]] = {}
        for body in self.requests:
            for msg in body.get("messages", []):
                content = msg.get("content")
                if msg.get("role") != "user" or not isinstance(content, list):
                    continue
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        out[block["tool_use_id"]] = block
        return out

    def result_text(self, tool_use_id: str) -> str:
        block = self.tool_results().get(tool_use_id)
        if block is None:
            return ""
        content = block.get("content")
        if isinstance(content, list):
            return "".join(c.get("text", "") for c in content if isinstance(c, dict))
        return str(content or "")

    def seen_text(self) -> str:
        """Everything the agent loop was sent, as one string (system prompt and messages)."""
        return json.dumps(self.agent_requests, ensure_ascii=False)


COMPACT_ASK = "create a detailed summary of the conversation so far"  # the CLI's compaction prompt


def _is_compaction(body: dict[str, Any]) -> bool:
    """The CLI's forked summariser: it sends the tools too, but asks for a summary in a user turn."""
    return any(
        msg.get("role") == "user" and COMPACT_ASK in json.dumps(msg.get("content"), ensure_ascii=False)
        for msg in body.get("messages", [])[-3:]
    )


def _sse(turn: Turn, stop: str, model: str, tokens: int) -> bytes:
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{next(_ids):06d}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": tokens, "output_tokens": 1},
                },
            },
        )
    ]
    for i, block in enumerate(turn):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            ("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}),
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": i}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _message(turn: Turn, stop: str, model: str, tokens: int) -> bytes:
    return json.dumps(
        {
            "id": f"msg_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": turn,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": tokens, "output_tokens": 5},
        }
    ).encode()


def _handler(api: ScriptedAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet: the test reads api.requests
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            path = self.path.split("?")[0]
            if not path.endswith("/v1/messages"):
                self._send(200, "application/json", b"{}")  # count_tokens and the like
                return
            body = json.loads(raw or b"{}")
            turn, stop, tokens = api.answer(body)
            model = str(body.get("model") or "claude-scripted")
            if body.get("stream"):
                self._send(200, "text/event-stream", _sse(turn, stop, model, tokens))
            else:
                self._send(200, "application/json", _message(turn, stop, model, tokens))

        def do_GET(self) -> None:  # noqa: N802
            self._send(200, "application/json", b"{}")

        def _send(self, code: int, ctype: str, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(payload)))
            self.send_header("request-id", f"req_{next(_ids):06d}")
            self.end_headers()
            self.wfile.write(payload)

    return Handler
