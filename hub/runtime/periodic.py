"""Housekeeping that runs every so often (inbox expiry, attachment retention): one loop that
keeps going whatever a round raises, saying so in the log, and stops when it is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hub.core.errors import HubError

log = logging.getLogger(__name__)


def stop_if_cancelled() -> None:
    """For a loop that outlives whatever one round raises: stop all the same once its task was
    cancelled. A library may turn the cancel into an error of its own (redis-py does, when a
    read is cut short); caught as a failed round, the cancel would be spent and the loop would
    run on, and whoever waits for it to stop would wait for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def every(interval_s: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `work` every `interval_s` seconds until cancelled; a store that does not answer skips
    a round (warning), anything else is logged with its traceback and the next round runs."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except HubError as exc:
            stop_if_cancelled()
            log.warning("%s skipped: %s", what, exc.message)
        except Exception:
            stop_if_cancelled()
            log.exception("%s failed", what)
