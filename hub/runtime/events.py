"""The hub's event stream (the dashboard's feed): what happened to peers, questions and jobs, appended
to the store in order and bounded in length."""

from __future__ import annotations

from hub.store.state import StoreState
from schemas.codec import encode
from schemas.dashboard import EventData, JobChanged, PeerGone, PresenceChanged, QuestionSettled, QuestionShown

EVENT_KINDS: dict[type, str] = {PresenceChanged: "presence", PeerGone: "peer_deleted", QuestionShown: "question",
                                QuestionSettled: "question_decided", JobChanged: "job"}


class EventLog:
    def __init__(self, store: StoreState):
        self._store = store

    def record(self, data: EventData) -> None:
        """Append one event; nobody waits on the write."""
        self._store.writer.submit([self._store.event_cmd(EVENT_KINDS[type(data)], encode(data))], wait=False)
