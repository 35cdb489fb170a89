"""Find the hub and the hub token, the same way for every client (CLI, SDK, hooks)."""

from __future__ import annotations

import os

from schemas.local import DEFAULT_HOST, DEFAULT_PORT, HUB_FILE, TOKEN_ENV, TOKEN_FILE, URL_ENV, home_folder
from transports import lean_json


class HubAddress:
    """Where the hub is: its base URL (e.g. http://127.0.0.1:8377, also the Host for the socket)
    and its Unix socket, preferred when it exists. A plain class, not a dataclass: the hooks
    import this on every run, and `dataclasses` costs more to import than the rest of them."""
    __slots__ = ("http_url", "uds")

    def __init__(self, http_url: str, uds: str | None = None):
        self.http_url = http_url
        self.uds = uds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HubAddress) and (self.http_url, self.uds) == (other.http_url, other.uds)

    def __hash__(self) -> int:
        return hash((self.http_url, self.uds))

    def __repr__(self) -> str:
        return f"HubAddress({self.http_url!r}, uds={self.uds!r})"

    @property
    def ws_url(self) -> str:
        return self.http_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/") + "/ws"


def find_hub(home: str | os.PathLike | None = None) -> HubAddress:
    explicit = os.environ.get(URL_ENV)
    if explicit:
        return HubAddress(explicit.rstrip("/"))
    try:
        with open(os.path.join(home_folder(home), HUB_FILE), "rb") as file:
            info = lean_json.loads(file.read())
        if not isinstance(info, dict):
            raise ValueError("hub.json does not hold an object")
        uds = info.get("uds")
        return HubAddress(info["url"], uds if uds and os.path.exists(uds) else None)
    except (OSError, ValueError, KeyError, TypeError):
        return HubAddress(f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")


def find_token(home: str | os.PathLike | None = None) -> str | None:
    """`REPOWIRE_TOKEN` (a peer token or the hub token), else the hub token file."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token.strip()
    try:
        with open(os.path.join(home_folder(home), TOKEN_FILE), encoding="utf-8") as file:
            return file.read().strip() or None
    except OSError:
        return None
