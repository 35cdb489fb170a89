"""A delivery's life, as pure rules: the state an accepted message reports, from its recipients'.

A message is `delivered` when a live connection took it for at least one recipient, `queued`
when it waits in at least one inbox and no connection took it yet, and `failed` when it
reached no inbox (every recipient's inbox was full).
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.frames import DeliveryState, RecipientState


def overall_state(recipients: Iterable[RecipientState]) -> DeliveryState:
    states = {r.state for r in recipients}
    if "delivered" in states:
        return "delivered"
    if "queued" in states:
        return "queued"
    return "failed"
