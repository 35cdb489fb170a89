"""What the dashboard's live feed says about a message: who sent it, to whom, what kind, and a
preview of its text. The feed rides the hub's event stream beside the trace stages; the full
message stays in the recipient's inbox and its trace in the ledger.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.frames import Delivery

PREVIEW_CHARS = 2000   # longer texts are cut in the feed (the delivery itself is whole)


def message_preview(delivery: Delivery, *, to: str) -> dict[str, Any]:
    """The feed entry of a delivery (notify, ask, or the ack/reply/answer an asker gets)."""
    preview: dict[str, Any] = {"kind": delivery.kind, "message_id": delivery.message_id,
                               "from": msgspec.structs.asdict(delivery.from_), "to": to, "at": delivery.sent_at}
    text = delivery.text
    if text is not None:
        preview["text"] = text[:PREVIEW_CHARS]
        if len(text) > PREVIEW_CHARS:
            preview["truncated"] = True
    for name in ("correlation_id", "deadline", "option_id", "outcome", "schedule_id"):
        value = getattr(delivery, name)
        if value is not None:
            preview[name] = value
    if delivery.question is not None:
        preview["question"] = msgspec.to_builtins(delivery.question)
    if delivery.attachments:
        preview["attachments"] = [a.filename for a in delivery.attachments]
    return preview
