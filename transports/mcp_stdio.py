"""The Model Context Protocol over stdio, as much of it as a server of tools needs: JSON-RPC 2.0
messages, one per line, on stdin and stdout (the MCP stdio transport).

It answers `initialize`, `ping`, `tools/list` and `tools/call`, takes the client's
notifications (`notifications/initialized`, `notifications/cancelled`) and refuses any other
method with JSON-RPC's "method not found". A tool call runs in a worker thread, so a long
wait (a bounded long-poll on the hub) never holds up the next request; answers are written
whole, one line each, under a lock.

Our own, not the MCP SDK: an agent starts this server for every session (and `claude -p`
waits for it), and the SDK takes most of a second to import, ten times the budget. The
official SDK's client drives it in the tests (tests/test_mcp.py), and so does the real Claude
Code CLI (tests/test_claude_code.py).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from transports import lean_json

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")   # newest first
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
MAX_WORKERS = 8


class ToolFailed(Exception):
    """A tool's own failure: the agent sees the sentence as the tool's error result."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    input_schema: dict
    run: Callable[[dict], dict]   # arguments -> a JSON object (raises ToolFailed)

    def listing(self) -> dict:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}


class StdioServer:
    def __init__(self, name: str, version: str, instructions: str, tools: list[Tool],
                 stdin: BinaryIO | None = None, stdout: BinaryIO | None = None):
        self.info = {"name": name, "version": version}
        self.instructions = instructions
        self.tools = {tool.name: tool for tool in tools}
        self.stdin = stdin or sys.stdin.buffer
        self.stdout = stdout or sys.stdout.buffer
        self._write_lock = threading.Lock()

    def serve(self) -> None:
        """Until stdin closes."""
        with ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="mcp-tool") as workers:
            for line in self.stdin:
                if line.strip():
                    self._handle(line, workers)

    def _handle(self, line: bytes, workers: ThreadPoolExecutor) -> None:
        try:
            message = lean_json.loads(line)
        except lean_json.JSONDecodeError:
            self._send({"jsonrpc": "2.0", "id": None, "error": {"code": PARSE_ERROR, "message": "not JSON"}})
            return
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            if isinstance(message, dict) and "id" in message and ("result" in message or "error" in message):
                return   # an answer to a request of ours: we send none
            self._send({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": "not a request"}})
            return
        method, params = message["method"], message.get("params") or {}
        if "id" not in message:
            return   # a notification (initialized, cancelled, ...): nothing to answer
        request_id = message["id"]
        if method == "tools/call":
            workers.submit(self._call_tool, request_id, params)
            return
        if method == "initialize":
            asked = params.get("protocolVersion") if isinstance(params, dict) else None
            version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
            self._result(request_id, {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                                      "serverInfo": self.info, "instructions": self.instructions})
        elif method == "ping":
            self._result(request_id, {})
        elif method == "tools/list":
            self._result(request_id, {"tools": [tool.listing() for tool in self.tools.values()]})
        else:
            self._error(request_id, METHOD_NOT_FOUND, f"this server does not offer {method!r}")

    def _call_tool(self, request_id: Any, params: dict) -> None:
        tool = self.tools.get(params.get("name", "")) if isinstance(params, dict) else None
        arguments = params.get("arguments") or {} if isinstance(params, dict) else {}
        if tool is None:
            self._error(request_id, INVALID_PARAMS, f"no tool {params.get('name')!r}")
            return
        try:
            if not isinstance(arguments, dict):
                raise ToolFailed("the arguments are not an object")
            output = tool.run(arguments)
            self._result(request_id, {"content": [{"type": "text", "text": lean_json.dumps(output).decode()}],
                                      "isError": False})
        except ToolFailed as exc:
            self._result(request_id, {"content": [{"type": "text", "text": str(exc)}], "isError": True})
        except Exception as exc:   # a tool must answer, whatever happened
            self._result(request_id, {"content": [{"type": "text", "text": f"the tool failed: {exc!r}"[:500]}],
                                      "isError": True})

    def _result(self, request_id: Any, result: dict) -> None:
        self._send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _error(self, request_id: Any, code: int, message: str) -> None:
        self._send({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def _send(self, message: dict) -> None:
        data = lean_json.dumps(message) + b"\n"
        with self._write_lock:
            self.stdout.write(data)
            self.stdout.flush()
