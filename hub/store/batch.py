"""One pipeline's commands, and where each reply will be.

A caller that needs some of a batch's replies keeps the `Slot` that `Batch.add` handed back
for those commands and reads its reply with `Batch.reply`, never by counting positions: a
command added before it (a grant, an idempotency record) cannot shift what it reads."""

from __future__ import annotations

from typing import Any, NewType

from hub.store.writer import Command

Slot = NewType("Slot", int)   # the position of the first command `add` was given


class Batch:
    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def add(self, *commands: Command) -> Slot:
        """Append commands; the slot reads the first one's reply."""
        slot = Slot(len(self.commands))
        self.commands += commands
        return slot

    def extend(self, commands: list[Command]) -> None:
        """Append commands whose replies nobody reads."""
        self.commands += commands

    @staticmethod
    def reply(replies: list[Any], slot: Slot) -> Any:
        """The reply (or the exception the store answered) of the command at `slot`."""
        return replies[slot]
