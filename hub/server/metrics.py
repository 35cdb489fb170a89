"""`GET /metrics`: the hub's metrics in Prometheus's text format (hub.runtime.metrics), for a
person's token (a scraper is configured with the hub token as its bearer token)."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from hub.core.peers import STATUSES
from hub.runtime.metrics import CONTENT_TYPE, Snapshot
from hub.server.services import Services, services


async def metrics_page(request: Request) -> Response:
    running = services(request)

    async def snapshot() -> Snapshot:
        return await _snapshot(running)
    return Response(await running.hub.metrics.page(snapshot), media_type=CONTENT_TYPE)


async def _snapshot(running: Services) -> Snapshot:
    hub = running.hub
    peers = list(hub.peers.values())
    by_status: dict[str, int] = {status: 0 for status in STATUSES}
    by_status.update(Counter(p.status for p in peers))
    lengths = await hub.store.inbox_lengths(p.peer_id for p in peers) if peers else {}
    return Snapshot(peer_connections=len(hub.connections), dashboards=len(running.dashboard_feed.subscribers),
                    peers_by_status=by_status, inbox_messages=sum(lengths.values()),
                    inbox_deepest=max(lengths.values(), default=0), open_questions=len(running.questions.opened),
                    running_jobs=len(running.jobs.runs))
