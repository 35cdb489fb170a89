"""The repowire hub: core rules, storage, runtime, HTTP/WebSocket edge and CLI."""

__version__ = "0.1.0"
