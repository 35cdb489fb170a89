"""What the dashboard's live feed says about a message: who sent it, to whom, what kind, and a
preview of its text. The feed rides the hub's event stream beside the trace stages; the full
message stays in the recipient's inbox and its trace in the ledger.
"""

from __future__ import annotations

from typing import Any

PREVIEW_CHARS = 2000   # longer texts are cut in the feed (the delivery itself is whole)


def message_preview(body: dict[str, Any], *, to: str) -> dict[str, Any]:
    """The feed entry of a delivery body (notify, ask, or the ack/reply/answer an asker gets)."""
    text = body.get("text")
    preview = {"kind": body["kind"], "message_id": body["message_id"], "from": body["from"], "to": to,
               "at": body["sent_at"]}
    if text is not None:
        preview["text"] = text[:PREVIEW_CHARS]
        if len(text) > PREVIEW_CHARS:
            preview["truncated"] = True
    for name in ("correlation_id", "deadline", "option_id", "outcome", "schedule_id"):
        if body.get(name) is not None:
            preview[name] = body[name]
    if body.get("question"):
        preview["question"] = body["question"]
    if body.get("attachments"):
        preview["attachments"] = [a["filename"] for a in body["attachments"]]
    return preview
