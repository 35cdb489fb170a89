"""What the dashboard's live feed says about a message: who sent it, to whom, what kind, and a
preview of its text. The feed rides the hub's event stream beside the trace stages; the full
message stays in the recipient's inbox and its trace in the ledger.
"""

from __future__ import annotations

from schemas.dashboard import MessagePreview
from schemas.frames import Delivery

PREVIEW_CHARS = 2000   # longer texts are cut in the feed (the delivery itself is whole)


def message_preview(delivery: Delivery, *, to: str) -> MessagePreview:
    """The feed entry of a delivery (notify, ask, or the ack/reply/answer an asker gets)."""
    text = delivery.text
    return MessagePreview(kind=delivery.kind, message_id=delivery.message_id, from_=delivery.from_, to=to,
                          at=delivery.sent_at, text=text[:PREVIEW_CHARS] if text is not None else None,
                          truncated=text is not None and len(text) > PREVIEW_CHARS,
                          correlation_id=delivery.correlation_id, deadline=delivery.deadline,
                          option_id=delivery.option_id, outcome=delivery.outcome, schedule_id=delivery.schedule_id,
                          question=delivery.question,
                          attachments=[a.filename for a in delivery.attachments] if delivery.attachments else None)
