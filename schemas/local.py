"""How local clients find the hub: the contract between `repowire serve` and every client.

Order: `REPOWIRE_URL` if set; else the address the running hub wrote to `$REPOWIRE_HOME/hub.json`
(its Unix socket first when it has one); else `http://127.0.0.1:8377`. The hub token lives in
`$REPOWIRE_HOME/hub.token`, mode 0600, in a 0700 folder.
"""

from __future__ import annotations

import os

HOME_ENV = "REPOWIRE_HOME"
URL_ENV = "REPOWIRE_URL"
TOKEN_ENV = "REPOWIRE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8377
HUB_FILE = "hub.json"
TOKEN_FILE = "hub.token"
ALERT_SECRET_FILE = "alert-secret"   # signs webhook alerts (0600; or $REPOWIRE_ALERT_SECRET)
ALERT_SECRET_ENV = "REPOWIRE_ALERT_SECRET"
NTFY_TOKEN_ENV = "REPOWIRE_NTFY_TOKEN"
PRESET_FILE = "approvals-preset"     # a preset `hooks install` chose while no hub ran; the next hub applies it
ACT_AS_HEADER = "X-Repowire-Peer"   # with the hub token: act as this peer (name, name@circle or id)


def home_folder(explicit: str | os.PathLike[str] | None = None) -> str:
    """`explicit`, else `$REPOWIRE_HOME`, else `~/.repowire`, as a path string (os.path, not
    pathlib: the agent hooks read it on every run, and pathlib costs them more to import)."""
    chosen = explicit or os.environ.get(HOME_ENV) or os.path.join("~", ".repowire")
    return os.path.expanduser(os.fspath(chosen))
