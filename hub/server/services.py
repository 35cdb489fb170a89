"""The hub's services as the routes reach them: one typed record, made by the app's lifespan
once everything has started, and kept in the app's state (`services(request).hub`, …)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.requests import HTTPConnection

from hub.runtime.asks import AskService
from hub.runtime.attachments import AttachmentService
from hub.runtime.dashboard import DashboardAccess, DashboardFeed
from hub.runtime.hub import Hub
from hub.runtime.jobs import JobService
from hub.runtime.panes import PaneService
from hub.runtime.policies import PolicyService
from hub.runtime.questions import QuestionService
from hub.runtime.schedules import ScheduleService
from hub.runtime.sessions import SessionService


@dataclass(frozen=True, slots=True)
class Services:
    hub: Hub
    asks: AskService
    questions: QuestionService
    policies: PolicyService
    panes: PaneService
    sessions: SessionService
    schedules: ScheduleService
    jobs: JobService
    attachments: AttachmentService
    dashboard_access: DashboardAccess
    dashboard_feed: DashboardFeed
    http: httpx.AsyncClient   # to other nodes of a mesh, and to alert channels


def services(connection: HTTPConnection) -> Services:
    """The services of the app serving this request or socket."""
    found = connection.app.state.services
    assert isinstance(found, Services), "the hub's lifespan has not started"
    return found
