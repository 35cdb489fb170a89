"""Housekeeping that runs every so often (inbox expiry, attachment retention): one loop that
keeps going whatever a round raises, saying so in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hub.core.errors import HubError

log = logging.getLogger(__name__)


async def every(interval_s: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `work` every `interval_s` seconds until cancelled; a store that does not answer skips
    a round (warning), anything else is logged with its traceback and the next round runs."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except HubError as exc:
            log.warning("%s skipped: %s", what, exc.message)
        except Exception:
            log.exception("%s failed", what)
