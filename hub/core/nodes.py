"""Who a hub node is, among the nodes sharing one store: the value of its lease.

A node's name is held by one process at a time; the lease (see hub.store.bus) says which, as
"<host> <pid> <instance>". The instance is random per process, so a node started again is a
new life of the same name, and what the old life claimed can be told apart from the new one's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    host: str
    pid: int
    instance: str

    def encode(self) -> str:
        return f"{self.host} {self.pid} {self.instance}"

    @classmethod
    def decode(cls, raw: bytes | str | None) -> LeaseHolder | None:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        parts = text.split(" ")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])
