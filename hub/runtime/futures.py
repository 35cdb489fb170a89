"""One small pattern the runtime uses on its hot paths: continue a store write in a callback.

Work that must happen in submission order is submitted synchronously; what follows the write
(deliver, answer the sender) runs as a done-callback into a derived future, with no task per
message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def then(written: asyncio.Future[list], finish: Callable[[list], T]) -> asyncio.Future[T]:
    """A future for `finish(replies)`, run as soon as `written` resolves; an exception from the
    write or from `finish` becomes the future's exception."""
    result: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def done(write: asyncio.Future) -> None:
        if result.cancelled():
            return
        try:
            result.set_result(finish(write.result()))
        except BaseException as exc:
            result.set_exception(exc)

    written.add_done_callback(done)
    return result
