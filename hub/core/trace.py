"""Delivery-trace stages and what each one means.

A message's trace is an ordered list of stages. For a notify:
accepted -> routed -> queued? -> sent -> received | injected | failed(reason) | expired.
A broadcast has one `accepted` and then stages per recipient (each carries `peer_id`).
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    ACCEPTED = "accepted"
    ROUTED = "routed"
    QUEUED = "queued"
    SENT = "sent"
    RECEIVED = "received"
    INJECTED = "injected"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL_STAGES = frozenset({Stage.RECEIVED, Stage.INJECTED, Stage.FAILED, Stage.EXPIRED})


class Reason(StrEnum):
    """Reason codes carried by `failed`, `expired` and some `queued` stages."""
    RECIPIENT_OFFLINE = "recipient_offline"
    QUEUE_TTL = "queue_ttl"
    RESUMED = "resumed"              # the peer's resume cursor said it already had the message
    REDELIVERY = "redelivery"        # sent again after a reconnect
    PEER_DELETED = "peer_deleted"
    RECIPIENT_FAILED = "recipient_failed"
    SLOW_CONSUMER = "slow_consumer"


def stage_entry(stage: Stage, at_ms: int, node: str, **extra: str | int | None) -> dict:
    entry: dict = {"stage": stage.value, "at": at_ms, "node": node}
    entry.update({k: v for k, v in extra.items() if v is not None and v != ""})
    return entry
