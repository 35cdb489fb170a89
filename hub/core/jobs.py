"""Jobs as pure rules: what a job is, how a request becomes one (defaults and refusals), its
states, and how a stored job reads in the full and the summary view.

A job is durable tracked work. A *work item* runs once: for a peer (an ask; the reply is the
result) or in a folder with a backend (an executor process). A *recurring* job (`cal-…`) is a
template on a cron expression; each fire makes a work item of its own, `<tag>.<due ms>`. Times
are UTC milliseconds here; views show them as ISO 8601.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import msgspec

from hub.core.backends import BACKENDS, Backend, trimmed
from hub.core.errors import HubError
from hub.core.schedules import ScheduleSpec, check_timing, iso, parse_at, parse_cron, to_iso, zone
from schemas.errors import ErrorCode
from schemas.rest import (
    JobDelivery,
    JobProgress,
    JobRequest,
    JobResult,
    JobRunner,
    JobStage,
    JobTarget,
    JobView,
    PeerBrief,
)

RECURRING_PREFIX = "cal-"
SUMMARY_TEXT_MAX = 200    # characters of a result summary in the summary view


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"


class RecurringState(StrEnum):
    ACTIVE = "active"
    DONE = "done"            # its cron expression has no further date
    CANCELLED = "cancelled"


FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST})


class Scope(StrEnum):
    PER_FIRE = "per_fire"
    SESSION = "session"


class Continuity(StrEnum):
    FRESH = "fresh"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class JobPolicy:
    max_per_peer: int = 50              # jobs one peer may have queued, running or recurring at once
    max_running_per_node: int = 4       # executor processes one hub node keeps at once; more jobs wait queued
    max_output_bytes: int = 1_000_000   # what one run may print (stdout and stderr); more ends it, failed
    default_timeout_s: float = 1800.0   # a run without timeout_s ends timed_out after this
    max_timeout_s: float = 86_400.0
    lease_s: float = 30.0               # a node renews its runs' lease; a run whose lease ran out is lost
    progress_kept: int = 50             # progress entries kept per work item, the newest
    kill_grace_s: float = 3.0           # SIGTERM, then SIGKILL after this, to the executor's process group
    env_names: tuple[str, ...] = ()     # more variables of the hub's environment that executors get
    retention_s: float = 7 * 86_400.0   # a job that is over is deleted this long after


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What was asked for; never changes. `peer` is a peer id, resolved when the job was made."""
    prompt: str
    peer: str | None = None
    path: str | None = None
    backend: str | None = None
    command: tuple[str, ...] | None = None
    process_scope: str | None = None
    continuity: str | None = None
    at: int | None = None
    cron: str | None = None
    timezone: str = "UTC"
    timeout_s: float | None = None

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    @property
    def for_peer(self) -> bool:
        return self.peer is not None

    @property
    def timing(self) -> ScheduleSpec:
        """When it runs, as the schedules' rules read it (cron, time zone, clock changes)."""
        return ScheduleSpec(kind="notify", to="", text="", timezone=self.timezone, at=self.at, cron=self.cron)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["command"] = list(self.command) if self.command is not None else None
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> JobSpec:
        command = data.get("command")
        return JobSpec(prompt=data["prompt"], peer=data.get("peer"), path=data.get("path"),
                       backend=data.get("backend"), command=tuple(command) if command is not None else None,
                       process_scope=data.get("process_scope"), continuity=data.get("continuity"), at=data.get("at"),
                       cron=data.get("cron"), timezone=data.get("timezone") or "UTC", timeout_s=data.get("timeout_s"))


def _invalid(message: str, **detail: Any) -> HubError:
    return HubError(ErrorCode.INVALID_REQUEST, message, detail or None)


def backend_of(name: str | None) -> Backend:
    backend = BACKENDS.get(name or "")
    if backend is None:
        raise _invalid(f"unknown backend {str(name)[:40]!r}; the backends are {', '.join(sorted(BACKENDS))}",
                       backend=str(name)[:40], backends=sorted(BACKENDS))
    return backend


def spec_of(request: JobRequest, *, peer_id: str | None, is_person: bool, policy: JobPolicy) -> JobSpec:
    """The job a request asks for, with the execution policy's defaults filled in; refuses what
    cannot run (nothing is stored then). `peer_id` is the resolved `peer`, if any."""
    if request.peer is not None and (request.path is not None or request.backend is not None):
        raise _invalid("give either `peer` (work for a peer, as an ask) or `path` and `backend` (an executor "
                       "process in a folder), not both", fields=["peer", "path", "backend"])
    if request.at is not None and request.cron is not None:
        check_timing(request.at, request.cron)
    tz = zone(request.timezone)
    if request.cron is not None:
        parse_cron(request.cron)
    at = parse_at(request.at, tz) if request.at is not None else None
    timeout_s = request.timeout_s
    if timeout_s is not None and timeout_s > policy.max_timeout_s:
        raise _invalid(f"timeout_s is at most {policy.max_timeout_s:g} seconds", timeout_s=timeout_s,
                       limit=policy.max_timeout_s)
    if request.peer is not None:
        if request.process_scope is not None or request.continuity is not None or request.command is not None:
            raise _invalid("process_scope, continuity and command are for path jobs; a peer job is an ask to "
                           "that peer", fields=["process_scope", "continuity", "command"])
        return JobSpec(prompt=request.prompt, peer=peer_id, at=at, cron=request.cron, timezone=request.timezone,
                       timeout_s=timeout_s)
    if request.path is None or request.backend is None:
        raise _invalid("a job needs a target: `peer`, or `path` and `backend`", fields=["peer", "path", "backend"])
    backend = backend_of(request.backend)
    path = _checked_path(request.path)
    if backend.program is None and not request.command:
        raise _invalid(f"the {backend.name} backend runs the job's `command` (an argument list)", field="command")
    if backend.program is not None and request.command is not None:
        raise _invalid(f"`command` is for the command backend; {backend.name} runs its own", field="command")
    if backend.person_only and not is_person:
        raise HubError(ErrorCode.FORBIDDEN, f"only a person may make {backend.name} jobs (they run the command "
                       "they name)", {"backend": backend.name})
    scope = Scope(request.process_scope or Scope.PER_FIRE)
    continuity = Continuity(request.continuity or (Continuity.RESUME if request.cron else Continuity.FRESH))
    if scope is Scope.SESSION and backend.session_args is None:
        raise _invalid(f"the {backend.name} backend has no session mode; use process_scope per_fire (with "
                       "continuity resume to carry the conversation on)", backend=backend.name)
    if scope is Scope.SESSION and request.cron is not None and continuity is Continuity.FRESH:
        raise _invalid("a session executor keeps its conversation between fires; for fresh runs use "
                       "process_scope per_fire", fields=["process_scope", "continuity"])
    return JobSpec(prompt=request.prompt, path=path, backend=backend.name,
                   command=tuple(request.command) if request.command else None, process_scope=scope.value,
                   continuity=continuity.value, at=at, cron=request.cron, timezone=request.timezone,
                   timeout_s=timeout_s)


def _checked_path(path: str) -> str:
    if not os.path.isabs(path) or "\x00" in path:
        raise _invalid("`path` is an absolute folder path", path=path[:200])
    return os.path.normpath(path)


def is_recurring_id(job_id: str) -> bool:
    return job_id.startswith(RECURRING_PREFIX)


def work_id_of_fire(template_id: str, due: int) -> str:
    """The work item a recurring job's fire makes: one id per occurrence, in the template's slot."""
    return f"{template_id.removeprefix(RECURRING_PREFIX)}.{due}"


# ---- views ----------------------------------------------------------------------------------------


def _ms(fields: dict[str, str], name: str) -> str | None:
    raw = fields.get(name, "")
    return iso(int(raw)) if raw else None


def _stage(entry: dict[str, Any]) -> JobStage:
    return JobStage(stage=entry["stage"], at=iso(int(entry["at"])), node=entry.get("node"), detail=entry.get("detail"),
                    work_id=entry.get("work_id"), fire=entry.get("fire"))


def _brief(ref: dict[str, str]) -> PeerBrief:
    return PeerBrief(peer_id=ref["peer_id"], name=ref["name"], circle=ref["circle"])


def _number(fields: dict[str, str], name: str) -> int | None:
    raw = fields.get(name)
    return int(raw) if raw else None


def view(job_id: str, body: dict[str, Any], fields: dict[str, str], *, summary: bool,
         trace: list[dict[str, Any]] | None = None, progress: list[dict[str, Any]] | None = None) -> JobView:
    """A stored job (its body and hash fields) as REST shows it (built field by field: a list of
    10,000 is read often, and the store's own data needs no validation)."""
    spec = JobSpec.from_dict(body["spec"])
    recurring = is_recurring_id(job_id)
    if spec.peer is not None:
        target = JobTarget(peer=_brief(body["peer"]))
    else:
        target = JobTarget(path=spec.path, backend=spec.backend,
                           command=list(spec.command) if spec.command is not None and not summary else None)
    result = None
    if fields.get("result"):
        stored = msgspec.json.decode(fields["result"])
        text = stored.get("summary", "")
        result = JobResult(summary=trimmed(text, SUMMARY_TEXT_MAX) if summary else text,
                           exit_code=stored.get("exit_code"), error=stored.get("error"),
                           output_bytes=None if summary else stored.get("output_bytes"))
    delivery = None
    if fields.get("correlation_id"):
        delivery = JobDelivery(correlation_id=fields["correlation_id"], trace_id=fields["correlation_id"],
                               state=fields.get("ask_state") or "pending")
    runner = None
    if not summary and fields.get("attempt", "0") != "0" and fields.get("node"):
        runner = JobRunner(node=fields["node"], attempt=int(fields["attempt"]), pid=_number(fields, "pid"),
                           executor="ask" if spec.peer is not None else spec.process_scope)  # type: ignore[arg-type]
    return JobView(
        id=job_id, kind="recurring" if recurring else "work", state=fields.get("state", ""),
        reason=fields.get("reason") or None, owner=_brief(body["owner"]), target=target,
        process_scope=spec.process_scope, continuity=spec.continuity,  # type: ignore[arg-type]
        timeout_s=spec.timeout_s, created_at=iso(int(body["created_at"])), updated_at=_ms(fields, "updated_at"),
        due_at=None if recurring else _ms(fields, "due_at"),
        started_at=None if recurring else _ms(fields, "started_at"), finished_at=_ms(fields, "finished_at"),
        at=to_iso(spec.at), cron=spec.cron, timezone=spec.timezone if spec.recurring else None,
        next_fire_at=_ms(fields, "next_fire_at") if recurring else None,
        fires=int(fields.get("fires") or 0) if recurring else None,
        last_work_id=fields.get("last_work") or None, template_id=body.get("template_id"),
        fire=_number(fields, "fire"), node=fields.get("node") or None,
        runtime_session_id=fields.get("session_id") or None, result=result, delivery=delivery,
        prompt=None if summary else spec.prompt, request=None if summary else body.get("request"),
        provenance=None if summary else body.get("provenance"), runner=runner,
        progress=None if summary or progress is None else [JobProgress(at=iso(int(p["at"])), text=p["text"])
                                                           for p in progress],
        trace=None if summary or trace is None else [_stage(s) for s in trace])
