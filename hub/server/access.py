"""Who may call each route: one table, enforced here for the routes only a person may use,
written into the OpenAPI document (`x-access`) and the manual's route table, and walked by a
test with an agent's token (promise 9: an agent is itself and nothing more).

- `public`: no token (the page, its sign-in, health).
- `any token`: every caller gets the same answer (the peer directory, who am I).
- `own`: an agent acts on and reads only its own things (its messages, asks, questions, inbox,
  schedules, jobs, attachments, traces it is part of, its own pane); a person sees everyone's. The
  service behind the route checks ownership.
- `person`: the operator (hub token, Unix socket, signed-in dashboard) or a peer with the person
  role; an agent's token is `403 forbidden` before anything is read or written.
- `hub token`: the hub token itself (making dashboard sign-in links).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.runtime.panes import require_person
from hub.server.rest import caller


class Access(StrEnum):
    PUBLIC = "public"
    ANY = "any token"
    OWN = "own"
    PERSON = "person"
    HUB_TOKEN = "hub token"


P, A, OWN, H = Access.PERSON, Access.ANY, Access.OWN, Access.HUB_TOKEN
ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/health"): Access.PUBLIC, ("GET", "/metrics"): P, ("GET", "/nodes"): P,
    ("GET", "/peers"): A, ("POST", "/peers"): P, ("GET", "/whoami"): A,
    ("GET", "/peers/{ref}"): A, ("DELETE", "/peers/{ref}"): OWN,
    ("GET", "/peers/{ref}/output"): OWN, ("POST", "/peers/{ref}/keys"): P, ("GET", "/peers/{ref}/doctor"): OWN,
    ("POST", "/peers/{ref}/rehook"): P, ("POST", "/peers/{ref}/unlink"): P,
    ("POST", "/peers/{ref}/presence"): OWN, ("POST", "/peers/{ref}/inbox/take"): OWN,
    ("POST", "/peers/{ref}/inbox/wait"): OWN,
    ("POST", "/sessions"): P, ("GET", "/panes/orphans"): P, ("POST", "/panes/{pane_id}/link"): P,
    ("POST", "/messages"): OWN, ("POST", "/ask"): OWN, ("POST", "/ack"): OWN, ("POST", "/answer"): OWN,
    ("GET", "/asks/pending"): OWN, ("GET", "/asks/{correlation_id}"): OWN, ("POST", "/asks/{correlation_id}/wait"): OWN,
    ("POST", "/questions/ask-blocking"): OWN, ("GET", "/questions"): OWN, ("GET", "/questions/{question_id}"): OWN,
    ("POST", "/questions/{question_id}/answer"): P, ("GET", "/decisions"): P,
    ("GET", "/policies"): P, ("POST", "/policies"): P, ("PUT", "/policies/{policy_id}"): P,
    ("DELETE", "/policies/{policy_id}"): P, ("POST", "/policies/evaluate"): P,
    ("PUT", "/policies/preset"): P,
    ("POST", "/schedules"): OWN, ("GET", "/schedules"): OWN, ("GET", "/schedules/{schedule_id}"): OWN,
    ("DELETE", "/schedules/{schedule_id}"): OWN, ("POST", "/schedules/{schedule_id}/pause"): OWN,
    ("POST", "/schedules/{schedule_id}/resume"): OWN,
    ("POST", "/jobs"): OWN, ("GET", "/jobs"): OWN, ("GET", "/jobs/{job_id}/status"): OWN,
    ("POST", "/jobs/{job_id}/cancel"): OWN,
    ("POST", "/attachments"): OWN, ("GET", "/attachments/{attachment_id}"): OWN,
    ("GET", "/traces/{trace_id}"): OWN,
    ("GET", "/dashboard"): Access.PUBLIC, ("GET", "/dashboard/{name}"): Access.PUBLIC,
    ("GET", "/dashboard/login"): Access.PUBLIC, ("POST", "/dashboard/links"): H,
    ("GET", "/dashboard/session"): Access.PUBLIC, ("POST", "/dashboard/logout"): Access.PUBLIC,
    ("GET", "/internal/attachments/{attachment_id}"): Access.PUBLIC,   # the mesh key is checked inside
}

Handler = Callable[[Request], Awaitable[Response]]


def person_only(handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        require_person(caller(request), f"call {request.method} {request.url.path}")
        return await handler(request)
    checked.__name__ = handler.__name__
    checked.__doc__ = handler.__doc__
    return checked


def with_access(routes: list[Route]) -> list[Route]:
    """The routes, each checked as the table says; a route missing from the table is an error
    at start-up, so none can be added without saying who may call it."""
    checked = []
    for route in routes:
        methods = sorted((route.methods or set()) - {"HEAD"})
        levels = {ROUTE_ACCESS[(method, route.path)] for method in methods}
        if len(levels) != 1:
            raise ValueError(f"one access level per route object, not {levels} for {route.path}")
        endpoint = person_only(route.endpoint) if levels == {Access.PERSON} else route.endpoint
        checked.append(Route(route.path, endpoint, methods=methods, name=route.name))
    return checked
