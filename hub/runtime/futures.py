"""One small pattern the runtime uses on its hot paths: continue a store write in a callback.

Work that must happen in submission order is submitted synchronously; what follows the write
(deliver, answer the sender) runs as a done-callback into a derived future, with no task per
message. The callback is one slotted object rather than a closure: a closure over a handful of
variables is a cell each, and every one is an object the cycle collector has to visit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Continue(Generic[T]):
    __slots__ = ("args", "finish", "result")

    def __init__(self, result: asyncio.Future[T], finish: Callable[..., T], args: tuple[Any, ...]):
        self.result = result
        self.finish = finish
        self.args = args

    def __call__(self, write: asyncio.Future[list[Any]]) -> None:
        if self.result.cancelled():
            return
        try:
            self.result.set_result(self.finish(*self.args, write.result()))
        except BaseException as exc:
            self.result.set_exception(exc)


def then(written: asyncio.Future[list[Any]], finish: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """A future for `finish(*args, replies)`, run as soon as `written` resolves; an exception
    from the write or from `finish` becomes the future's exception."""
    result: asyncio.Future[T] = written.get_loop().create_future()
    written.add_done_callback(_Continue(result, finish, args))
    return result
