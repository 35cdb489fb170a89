"""A local stand-in for the model API, so the real Claude Code and Codex CLIs run here (the model
services cannot be reached): the one stand-in the suite allows.

It speaks the Anthropic Messages API as Claude Code uses it (`POST /v1/messages`) and the
OpenAI Responses API as Codex uses it (`POST /v1/responses`), both streamed as server-sent
events, and answers each turn of the agent loop from a script: a list of `Turn`s,
each a text and/or tool calls (or a function that makes one from what the agent has shown
the model so far), taken in order by the requests that carry tools (the agent's own
loop). Requests without tools (titles, summaries) get a short text. Every request body is kept,
so a test asserts what the model was shown: a `tool_result`, the hook's context, the tools list.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import orjson


@dataclass
class ToolCall:
    name: str
    input: dict


@dataclass
class Turn:
    """One answer of the model: some text, then tool calls (stop_reason tool_use) or none (end_turn)."""
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)


Step = Turn | Callable[["ModelStandIn"], Turn]   # a turn, or one made when the model is asked (it sees what was shown)


def say(text: str) -> Turn:
    return Turn(text=text)


def run(name: str, **tool_input) -> Turn:
    return Turn(calls=[ToolCall(name, tool_input)])


def bash(command: str) -> Turn:
    return run("Bash", command=command, description="run a command")


class ModelStandIn:
    """Serves on 127.0.0.1, an ephemeral port, in a thread; `with` starts and stops it."""

    def __init__(self, script: list[Step] | None = None, *, fallback: str = "Done."):
        self.script = list(script or [])
        self.fallback = fallback
        self.requests: list[dict] = []     # every /v1/messages body, in order
        self.agent_requests: list[dict] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-standin", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, *turns: Step) -> None:
        with self._lock:
            self.script.extend(turns)

    # ---- what the model was shown ----------------------------------------------------------------

    def tool_results(self) -> list[str]:
        """The text of every tool_result the agent sent back, in order (each once)."""
        seen: dict[str, str] = {}
        for body in self.agent_requests:
            for message in body.get("messages", []):
                content = message.get("content")
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        seen.setdefault(block.get("tool_use_id", ""), _text_of(block.get("content")))
            for item in body.get("input", []) if isinstance(body.get("input"), list) else []:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    seen.setdefault(item.get("call_id", ""), _text_of(item.get("output")))
        return list(seen.values())

    def shown_text(self) -> str:
        """Everything the agent loop was shown (system, messages), as one text."""
        with self._lock:
            bodies = list(self.agent_requests)
        return "\n".join("\n".join(_text_of(b.get(k)) for k in ("system", "messages", "instructions", "input"))
                         for b in bodies)

    def tool_names(self) -> set[str]:
        with self._lock:
            return {t.get("name", "") for b in self.agent_requests for t in b.get("tools", [])}

    # ---- serving ---------------------------------------------------------------------------------

    def _next(self, body: dict) -> Turn:
        with self._lock:
            self.requests.append(body)
            if not body.get("tools"):
                return Turn(text="Repowire test")
            self.agent_requests.append(body)
            step = self.script.pop(0) if self.script else Turn(text=self.fallback)
        return step(self) if callable(step) else step

    def _events(self, turn: Turn) -> list[tuple[str, dict]]:
        message_id = f"msg_{next(self._ids)}"
        events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": "claude-standin", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})]
        index = 0
        if turn.text or not turn.calls:
            events += [("content_block_start", {"type": "content_block_start", "index": index,
                                                "content_block": {"type": "text", "text": ""}}),
                       ("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "text_delta", "text": turn.text or self.fallback}}),
                       ("content_block_stop", {"type": "content_block_stop", "index": index})]
            index += 1
        for call in turn.calls:
            events += [("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                           "type": "tool_use", "id": f"toolu_{message_id}_{index}", "name": call.name, "input": {}}}),
                       ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                           "type": "input_json_delta", "partial_json": orjson.dumps(call.input).decode()}}),
                       ("content_block_stop", {"type": "content_block_stop", "index": index})]
            index += 1
        stop = "tool_use" if turn.calls else "end_turn"
        events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": 5}}),
                   ("message_stop", {"type": "message_stop"})]
        return events

    def _response_events(self, turn: Turn) -> list[tuple[str, dict]]:
        """The same turn as the Responses API streams it (Codex)."""
        response_id = f"resp_{next(self._ids)}"
        items: list[dict] = []
        if turn.text or not turn.calls:
            items.append({"type": "message", "role": "assistant", "id": f"msg_{next(self._ids)}",
                          "content": [{"type": "output_text", "text": turn.text or self.fallback, "annotations": []}]})
        for call in turn.calls:
            items.append({"type": "function_call", "id": f"fc_{next(self._ids)}", "call_id": f"call_{next(self._ids)}",
                          "name": call.name, "arguments": orjson.dumps(call.input).decode()})
        events: list[tuple[str, dict]] = [("response.created", {"type": "response.created", "response": {
            "id": response_id, "object": "response", "status": "in_progress", "output": []}})]
        for index, item in enumerate(items):
            events += [("response.output_item.added", {"type": "response.output_item.added", "output_index": index,
                                                       "item": item}),
                       ("response.output_item.done", {"type": "response.output_item.done", "output_index": index,
                                                      "item": item})]
        events.append(("response.completed", {"type": "response.completed", "response": {
            "id": response_id, "object": "response", "status": "completed", "output": items,
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}}))
        return events

    def _message(self, turn: Turn) -> dict:
        content: list[dict] = [{"type": "text", "text": turn.text or self.fallback}] if turn.text or not turn.calls else []
        content += [{"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": c.name, "input": c.input}
                    for c in turn.calls]
        return {"id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant", "model": "claude-standin",
                "content": content, "stop_reason": "tool_use" if turn.calls else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, b'{"data": [], "models": []}')

            def do_HEAD(self) -> None:
                self._send(200, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = {}
                if "count_tokens" in self.path:
                    self._send(200, b'{"input_tokens": 10}')
                    return
                if not self.path.startswith(("/v1/messages", "/v1/responses")):
                    self._send(200, b"{}")
                    return
                turn = standin._next(body)
                if self.path.startswith("/v1/responses"):
                    events = standin._response_events(turn)
                elif not body.get("stream"):
                    self._send(200, orjson.dumps(standin._message(turn)))
                    return
                else:
                    events = standin._events(turn)
                stream = b"".join(f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"
                                  for name, data in events)
                self._send(200, stream, "text/event-stream")

        return Handler


def _text_of(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(_text_of(v) for k, v in value.items() if k in ("text", "content", "input", "output"))
    return ""
