"""How local clients find the hub: the contract between `repowire serve` and every client.

Order: `REPOWIRE_URL` if set; else the address the running hub wrote to `$REPOWIRE_HOME/hub.json`
(its Unix socket first when it has one); else `http://127.0.0.1:8377`. The hub token lives in
`$REPOWIRE_HOME/hub.token`, mode 0600, in a 0700 folder.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "REPOWIRE_HOME"
URL_ENV = "REPOWIRE_URL"
TOKEN_ENV = "REPOWIRE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8377
HUB_FILE = "hub.json"
TOKEN_FILE = "hub.token"
ACT_AS_HEADER = "X-Repowire-Peer"   # with the hub token: act as this peer (name, name@circle or id)


def home_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(HOME_ENV) or Path.home() / ".repowire").expanduser()
