"""Attachments' rules: limits, how a client's file name and type are cleaned, what a download
is served as, and when a file may be removed.

Pure: the runtime passes sizes, totals and times in. A client's file name is metadata only: the
bytes are stored under an id the hub mints, so nothing a client sends becomes part of a path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from hub.core.errors import HubError
from schemas.errors import ErrorCode
from schemas.frames import AttachmentRef

MiB = 1024 * 1024
MAX_FILENAME_CHARS = 255
FALLBACK_NAME = "attachment"


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    max_file_bytes: int = 25 * MiB        # one upload
    max_peer_bytes: int = 250 * MiB       # everything one peer has stored
    max_hub_bytes: int = 2048 * MiB       # everything stored on the hub (all nodes of a mesh)
    ttl_s: int = 24 * 3600                # an attachment no pending message references is removed after this
    sweep_interval_s: float = 60.0        # how often a node looks for expired attachments and stray files


# ---- names and types -----------------------------------------------------------------------

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def attachment_refs(briefs: list[dict[str, Any]] | None) -> list[AttachmentRef] | None:
    """The attachments a message carries, as its delivery names them (None when it carries none)."""
    return msgspec.convert(briefs, list[AttachmentRef]) if briefs else None


def clean_filename(raw: str) -> str:
    """The last path segment of what the client sent, without controls or bidi overrides,
    at most 255 characters (the extension is kept); `attachment` when nothing is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("", name).strip().strip(".")
    if not name:
        return FALLBACK_NAME
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[:MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
OCTET_STREAM = "application/octet-stream"
# Types a browser shows without running anything; everything else is served as bytes.
_INERT_TYPES = frozenset({
    "text/plain", "text/csv", "text/markdown", "text/x-diff", "text/x-patch", "text/x-log",
    "application/json", "application/pdf", "application/zip", "application/gzip", "application/x-tar",
    "application/x-gzip", "application/octet-stream",
    "image/png", "image/jpeg", "image/gif", "image/webp",
})


def clean_content_type(raw: str | None) -> str:
    """The client's media type without parameters, or `application/octet-stream`."""
    media = (raw or "").split(";", 1)[0].strip().lower()
    return media if _MEDIA_TYPE.match(media) else OCTET_STREAM


def served_content_type(stored: str) -> str:
    """What a download is labelled: the stored type when it is inert (text, images but SVG,
    PDF, archives), else bytes. HTML, SVG, XML and scripts are never labelled as themselves."""
    if stored not in _INERT_TYPES:
        return OCTET_STREAM
    return f"{stored}; charset=utf-8" if stored.startswith("text/") else stored


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 5987 `filename*`."""
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%;' else "_"
                         for c in unicodedata.normalize("NFKD", filename)
                         if not unicodedata.combining(c)) or FALLBACK_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_headers(filename: str, size: int, sha256: str, stored_type: str) -> dict[str, str]:
    """Headers of every download: a file to save, never a page to render."""
    return {"content-type": served_content_type(stored_type),
            "content-length": str(size),
            "content-disposition": content_disposition(filename),
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox",
            "cross-origin-resource-policy": "same-origin",
            "cache-control": "private, no-store",
            "etag": f'"{sha256}"',
            "x-repowire-sha256": sha256}


# ---- limits --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Room:
    """How many bytes an upload may still take, and which limit says so."""
    limit: int
    code: ErrorCode
    scope: str


def upload_room(policy: AttachmentPolicy, peer_used: int, hub_used: int) -> Room:
    """The tightest of the per-file limit, the peer's remaining total and the hub's remaining
    total, as known when an upload starts (the commit checks the totals again, atomically)."""
    rooms = [Room(policy.max_file_bytes, ErrorCode.ATTACHMENT_TOO_LARGE, "file"),
             Room(max(0, policy.max_peer_bytes - peer_used), ErrorCode.ATTACHMENT_QUOTA_EXCEEDED, "peer"),
             Room(max(0, policy.max_hub_bytes - hub_used), ErrorCode.ATTACHMENT_QUOTA_EXCEEDED, "hub")]
    return min(rooms, key=lambda r: r.limit)


class BytesInFlight:
    """Bytes of the uploads in progress on one node, per uploader and in all. Parallel uploads
    share one quota: each byte is taken from the room left when the upload began, less what the
    uploader's (and everyone's) other uploads in progress hold, so N parallel uploads cannot put
    N quotas on disk. The commit checks the stored totals again, atomically."""

    def __init__(self) -> None:
        self.by_owner: dict[str, int] = {}
        self.total = 0

    def take(self, owner: str, size: int, peer_room: int, hub_room: int) -> str | None:
        """Take `size` bytes for `owner`; None, or the total ('peer' / 'hub') they would pass."""
        mine = self.by_owner.get(owner, 0) + size
        if mine > peer_room:
            return "peer"
        if self.total + size > hub_room:
            return "hub"
        self.by_owner[owner] = mine
        self.total += size
        return None

    def give_back(self, owner: str, size: int) -> None:
        left = self.by_owner.get(owner, 0) - size
        if left > 0:
            self.by_owner[owner] = left
        else:
            self.by_owner.pop(owner, None)
        self.total -= size


def over_limit(room: Room, policy: AttachmentPolicy, size: int) -> HubError:
    """The error for an upload that passed `room`."""
    if room.scope == "file":
        return HubError(ErrorCode.ATTACHMENT_TOO_LARGE,
                        f"the file is over the limit of {policy.max_file_bytes} bytes per attachment",
                        {"limit": policy.max_file_bytes, "received": size})
    return quota_error(room.scope, policy)


def quota_error(scope: str, policy: AttachmentPolicy) -> HubError:
    limit = policy.max_peer_bytes if scope == "peer" else policy.max_hub_bytes
    whose = "your attachments" if scope == "peer" else "the hub's attachments"
    return HubError(ErrorCode.ATTACHMENT_QUOTA_EXCEEDED,
                    f"this upload would take {whose} over their total of {limit} bytes; wait for old ones to "
                    "expire", {"scope": scope, "limit": limit})


# ---- references and retention --------------------------------------------------------------

def inbox_ref(peer_id: str, message_id: str) -> str:
    """A delivery waiting in a peer's inbox that carries the attachment."""
    return f"inbox|{peer_id}|{message_id}"


def ask_ref(asker_id: str, correlation_id: str) -> str:
    """An open ask that carries the attachment."""
    return f"ask|{asker_id}|{correlation_id}"


def parse_ref(ref: str) -> tuple[str, str, str] | None:
    kind, _, rest = ref.partition("|")
    owner, _, item = rest.partition("|")
    return (kind, owner, item) if kind in ("inbox", "ask") and owner and item else None


def fingerprint_part(attachments: list[dict[str, Any]] | None) -> list[list[str]]:
    """What an idempotency fingerprint adds for the attachments a message carries: nothing
    without any, so that keys used before attachments existed keep matching."""
    return [[a["id"] for a in attachments]] if attachments else []


def not_found(attachment_id: str) -> HubError:
    return HubError(ErrorCode.ATTACHMENT_NOT_FOUND,
                    f"no attachment {attachment_id} that you may use: it is unknown, expired, or another "
                    "peer's (you may send only attachments you uploaded)", {"id": attachment_id})
