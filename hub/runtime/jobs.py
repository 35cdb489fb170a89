"""Jobs at run time: making, reading and cancelling jobs, and each node's timer that starts
them, runs them and keeps them honest across crashes.

**Starting once.** Each node runs one timer over the store's due index. A queued work item is
started by the one script that moves it from `queued` to `running` on its hash (naming this
node, this process and the attempt), so one node runs it, once. A recurring job's occurrence
is fired by one script that moves the template on and makes the fire's work item, queued, in
the same slot; the work item then starts like any other. A node starts executor processes up
to its limit; more work waits queued, for this node or another.

**Running.** A peer job is an ask from the job's owner to the peer, waiting for it if it is
offline; the ask's reply is the result. A path job runs its backend's command in an executor
(hub.runtime.executors), once per fire or kept for the job's runs (`session`).

**Crashes.** A node renews a lease on its runs in the store's running index every third of
`lease_s`. A run whose lease ran out, or that an earlier life of this node left behind, is
`lost` (its executor, if it outlived the hub, is ended by its process group) and never run
again silently; a peer job's ask lives in the store, so another process adopts it and goes on
waiting for the reply instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import orjson

from hub.core.asks import deadline_ms
from hub.core.backends import BACKENDS, StreamReader, executor_env, trimmed
from hub.core.errors import HubError
from hub.core.jobs import (
    RECURRING_PREFIX,
    Continuity,
    JobPolicy,
    JobSpec,
    JobState,
    RecurringState,
    Scope,
    is_recurring_id,
    spec_of,
    view,
    work_id_of_fire,
)
from hub.core.peers import PeerRecord, parse_address
from hub.core.schedules import first_fire, iso, next_fire
from hub.runtime.asks import AskService
from hub.runtime.credentials import OPERATOR_ID, Sender
from hub.runtime.executors import Executor, RunOutcome, kill_group_if_same
from hub.runtime.hub import Hub
from hub.runtime.periodic import stop_if_cancelled
from hub.store import replies
from hub.store.jobs import JobStore, StoredJob
from hub.store.link import Listener
from hub.store.state import StoreState
from hub.store.writer import Command
from schemas.codec import encode
from schemas.dashboard import JobChanged
from schemas.errors import ErrorCode
from schemas.rest import JobList, JobRequest, JobView

log = logging.getLogger(__name__)

IDLE_WAKE_S = 10.0    # the timer looks at the store at least this often, woken or not
RETRY_S = 1.0         # after a store failure
DUE_BATCH = 100
RECOVER_BATCH = 1_000
SWEEP_BATCH = 500     # jobs past their retention deleted per lease round
LIST_MAX = 10_000
ASK_WAIT_S = 30.0     # one wait for a peer job's reply (asks.wait is bounded too)
ASK_POLL_S = 1.0      # a reply to an ask open on another node is looked for this often
PROGRESS_FLUSH_S = 0.1   # progress entries are written together, at most this often
STOP_TASKS_S = 5.0    # on shutdown, how long the timer and the lease loop may take to stop
STOP_GRACE_S = 1.0    # on shutdown, beyond the kill grace, for runs to record that they were stopped


@dataclass(slots=True)
class Run:
    """A run this process has in hand: its attempt, its task, and its executor once started."""
    job_id: str
    attempt: int
    uses_process: bool
    session_key: str | None
    task: asyncio.Task | None = None
    executor: Executor | None = None
    ending: tuple[JobState, str] | None = None   # asked to end before the executor was there
    progress: list[dict] = field(default_factory=list)   # not written yet
    flush_due: bool = False


def _sender_of(hub: Hub, owner_id: str) -> Sender:
    if owner_id == OPERATOR_ID:
        return Sender(None)
    peer = hub.peers.get(owner_id)
    if peer is None:
        raise HubError(ErrorCode.PEER_NOT_FOUND, "the peer that made this job was deleted", {"peer_id": owner_id})
    return Sender(peer)


def _ask_outcome(state: str, result: dict | None) -> RunOutcome:
    """A peer job's ask, closed: what the job came to."""
    result = result or {}
    text = result.get("text") or result.get("option_id") or result.get("outcome") or ""
    if state in ("acked", "replied", "answered"):
        return RunOutcome(JobState.SUCCEEDED, "", trimmed(str(text), 4_000), None, None, 0, None)
    if state == "expired":
        return RunOutcome(JobState.TIMED_OUT, "expired", "", None, "the peer did not reply in time", 0, None)
    reason = str(result.get("reason") or state)
    return RunOutcome(JobState.FAILED, reason, "", None, trimmed(str(result.get("message") or reason), 500), 0, None)


class JobService:
    def __init__(self, hub: Hub, state: StoreState, asks: AskService, store: JobStore, policy: JobPolicy,
                 subscriber: Listener | None = None, env: dict[str, str] | None = None):
        self.hub = hub
        self.state = state
        self.asks = asks
        self.store = store
        self.policy = policy
        self._subscriber = subscriber
        self._env = dict(os.environ if env is None else env)
        self.runs: dict[str, Run] = {}
        self.sessions: dict[str, Executor] = {}   # session executors, by recurring job id (or work id)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._side_tasks: set[asyncio.Task] = set()
        self._first_recovery = True
        self._stopping = False

    # ---- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._timer(), name="job-timer"))
        self._tasks.append(asyncio.create_task(self._leases(), name="job-leases"))
        if self._subscriber is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="job-notices"))

    async def stop(self) -> None:
        """Stop starting work; end this node's executors (their runs are recorded lost) and
        leave its peer jobs' asks to whoever starts next."""
        self._stopping = True
        self._wake.set()   # the timer also stops by itself: a cancel that a store client swallowed still ends it
        for task in self._tasks:
            task.cancel()
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TASKS_S)
        for task in stuck:
            log.warning("jobs: %s did not stop within %g s", task.get_name(), STOP_TASKS_S)
        self._tasks.clear()
        waiting = []
        for run in list(self.runs.values()):
            if run.task is None:
                continue
            if run.uses_process:
                self._end(run, JobState.LOST, "hub_stopped")
                waiting.append(run.task)
            else:
                run.task.cancel()
        idle = [self.sessions.pop(key) for key in list(self.sessions)]
        for executor in idle:
            executor.end(JobState.LOST, "hub_stopped")
        if waiting:
            await asyncio.wait(waiting, timeout=self.policy.kill_grace_s + STOP_GRACE_S)
        for run in list(self.runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in self.runs.values() if r.task is not None), *self._side_tasks,
                             *(e.closed() for e in idle), return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    # ---- requests ------------------------------------------------------------------------------

    async def create(self, sender: Sender, request: JobRequest) -> JobView:
        hub = self.hub
        target = None
        if request.peer is not None:
            if parse_address(request.peer).broadcast:
                raise HubError(ErrorCode.INVALID_REQUEST, "a job goes to one peer, not a circle",
                               {"peer": request.peer})
            peer_ref = request.peer

            async def resolve() -> PeerRecord:
                return hub.resolve_recipients(sender, peer_ref)[0]
            target = await hub.learning(sender, peer_ref, resolve)
        spec = spec_of(request, peer_id=target.peer_id if target else None, is_person=sender.is_person,
                       policy=self.policy)
        hub.check_text(spec.prompt)
        if spec.for_peer:
            ask_max = self.asks.policy.max_timeout_s
            if spec.timeout_s is not None and spec.timeout_s > ask_max:
                raise HubError(ErrorCode.INVALID_REQUEST, f"a peer job is an ask: its timeout_s is at most the hub's "
                               f"ask limit, {ask_max:g} s (--ask-timeout-max)", {"timeout_s": spec.timeout_s,
                                                                                 "limit": ask_max})
            deadline_ms(0, spec.timeout_s, self.asks.policy)
        elif not await anyio.to_thread.run_sync(os.path.isdir, spec.path or ""):
            raise HubError(ErrorCode.INVALID_REQUEST, f"no folder {spec.path!r} on this hub's machine",
                           {"path": spec.path})
        now = hub.now_ms()
        due = None
        if spec.recurring or spec.at is not None:
            due = first_fire(spec.timing, now)
        owner = sender.key_owner
        limit = self.policy.max_per_peer
        if await self.store.open_count(owner) >= limit:
            raise HubError(ErrorCode.TOO_MANY_JOBS, f"{sender.ref['name']} has {limit} jobs queued, running or "
                           "recurring, the most one peer may; wait for some to end or cancel them", {"limit": limit})
        job_id = (RECURRING_PREFIX if spec.recurring else "") + hub.ids.next(now)
        body = {"spec": spec.as_dict(), "owner": sender.ref, "created_at": now,
                "request": msgspec.to_builtins(request),
                "provenance": {"created_by": sender.ref, "node": hub.node, "via": "rest"}}
        if target is not None:
            body["peer"] = {"peer_id": target.peer_id, "name": target.name, "circle": target.circle}
        stage = {"stage": "queued", "at": now, "node": hub.node,
                 "detail": f"due {iso(due)}" if due is not None else None}
        await self.state.writer.write(*self.store.create_cmds(job_id, owner, body, now, due_at=due, stage=stage),
                                      self.store.changed_cmd(job_id),
                                      self._event_cmd(job_id, RecurringState.ACTIVE if spec.recurring
                                                      else JobState.QUEUED, None))
        self.wake()
        return await self.get(sender, job_id)

    async def _owned(self, actor: Sender, job_id: str) -> StoredJob:
        return self._check_owner(actor, job_id, await self.store.read(job_id))

    @staticmethod
    def _check_owner(actor: Sender, job_id: str, stored: StoredJob | None) -> StoredJob:
        if stored is None:
            raise HubError(ErrorCode.JOB_NOT_FOUND, f"no job {job_id[:80]}", {"id": job_id[:80]})
        if not actor.is_person and stored.body["owner"]["peer_id"] != actor.key_owner:
            raise HubError(ErrorCode.FORBIDDEN, "a job belongs to the peer that made it (and to people)",
                           {"id": job_id})
        return stored

    async def get(self, reader: Sender, job_id: str) -> JobView:
        stored, trace, progress = await self.store.detail(job_id)
        stored = self._check_owner(reader, job_id, stored)
        return view(job_id, stored.body, stored.fields, summary=False, trace=trace, progress=progress)

    async def listing(self, reader: Sender, *, summary: bool, peer_ref: str | None, limit: int) -> JobList:
        """A peer sees its own jobs; a person sees all, or those `peer_ref` made. Newest first."""
        owner: str | None = None
        if peer_ref:
            owner = OPERATOR_ID if peer_ref == "operator" else self.hub.find_peer(peer_ref, reader).peer_id
        if not reader.is_person:
            if owner not in (None, reader.key_owner):
                raise HubError(ErrorCode.FORBIDDEN, "a peer lists its own jobs; people see everyone's",
                               {"peer": peer_ref})
            owner = reader.key_owner
        work_ids, recurring_ids = await self.store.ids(owner, limit)
        if summary:
            stored = await self.store.read_many(work_ids + recurring_ids)
            views = [view(s.job_id, s.body, s.fields, summary=True) for s in stored]
        else:
            detailed = await self.store.read_many_detailed(work_ids + recurring_ids)
            views = [view(s.job_id, s.body, s.fields, summary=False, trace=t, progress=p) for s, t, p in detailed]
        return JobList(work=[v for v in views if v.kind == "work"],
                       recurring=[v for v in views if v.kind == "recurring"])

    async def cancel(self, actor: Sender, job_id: str) -> JobView:
        stored = await self._owned(actor, job_id)
        await self._cancel(stored, f"by {actor.ref['name']}", refuse_over=True)
        if stored.recurring:
            last = stored.get("last_work")
            current = await self.store.read(last) if last else None
            if current is not None and current.state in (JobState.QUEUED, JobState.RUNNING):
                await self._cancel(current, f"its recurring job {job_id} was cancelled", refuse_over=False)
        return await self.get(actor, job_id)

    async def _cancel(self, stored: StoredJob, detail: str, *, refuse_over: bool) -> None:
        job_id, now = stored.job_id, self.hub.now_ms()
        stage = {"stage": "cancelled", "at": now, "node": self.hub.node, "detail": detail}
        (reply,) = await self.state.writer.write(self.store.cancel_cmd(job_id, now, stage))
        answer = replies.texts(reply)
        if answer[0] == "missing":
            raise HubError(ErrorCode.JOB_NOT_FOUND, f"no job {job_id}", {"id": job_id})
        if answer[0] == "over":
            if refuse_over:
                raise HubError(ErrorCode.JOB_FINISHED, f"job {job_id} is {answer[1]}; there is nothing to cancel",
                               {"id": job_id, "state": answer[1]})
            return
        cmds: list[Command] = [self.store.not_due_cmd(job_id), self.store.changed_cmd(job_id),
                               self._event_cmd(job_id, JobState.CANCELLED, "cancelled")]
        cmds += self.store.over_cmds(job_id, stored.body["owner"]["peer_id"], now)
        await self.state.writer.write(*cmds)
        if stored.recurring:
            self._release_session(job_id)
        elif job_id in self.runs:
            self._end(self.runs[job_id], JobState.CANCELLED, "cancelled")

    def _event_cmd(self, job_id: str, state: str, reason: str | None) -> Command:
        event = JobChanged(job_id=job_id, kind="recurring" if is_recurring_id(job_id) else "work", state=state,
                           reason=reason or None, node=self.hub.node, at=self.hub.now_ms())
        return self.state.event_cmd("job", encode(event))

    # ---- the timer -----------------------------------------------------------------------------

    async def _timer(self) -> None:
        while not self._stopping:
            delay = IDLE_WAKE_S
            try:
                if self._first_recovery:
                    await self._recover(first=True)
                    self._first_recovery = False
                delay = await self._start_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store may be away; the timer goes on when it is back
                stop_if_cancelled()
                log.warning("jobs: timer round failed (%s)", exc)
                delay = RETRY_S
            stop_if_cancelled()   # a cancel a store call swallowed (see ScheduleService._run)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def _start_due(self) -> float:
        """Fire and start what is due; returns how long the timer may sleep."""
        now = self.hub.now_ms()
        blocked = False
        due_now = await self.store.due(now, DUE_BATCH)
        found = {s.job_id: s for s in await self.store.read_many([job_id for job_id, _ in due_now])}
        for job_id, due in due_now:
            if self._stopping:
                return IDLE_WAKE_S
            if is_recurring_id(job_id):
                await self._fire(found.get(job_id), job_id, due, now)
            elif not await self._start(found.get(job_id), job_id):
                blocked = True
        earliest = await self.store.earliest_due()
        if earliest is None or (blocked and earliest <= self.hub.now_ms()):
            return IDLE_WAKE_S   # a run that ends (here or on another node) wakes the timer
        return min(IDLE_WAKE_S, max(0.0, (earliest - self.hub.now_ms()) / 1000))

    def _processes(self) -> int:
        """Executor processes this node keeps: running path jobs and idle session executors."""
        in_use = {r.session_key for r in self.runs.values() if r.uses_process}
        idle = sum(1 for key, e in self.sessions.items() if e.alive and key not in in_use)
        return sum(1 for r in self.runs.values() if r.uses_process) + idle

    async def _start(self, stored: StoredJob | None, job_id: str) -> bool:
        """Start a queued work item here (as read a moment ago: the claim checks it is still
        queued); False when this node has no room for its executor."""
        if stored is None or stored.state != JobState.QUEUED:
            await self.state.writer.write(self.store.not_due_cmd(job_id))
            return True
        spec = JobSpec.from_dict(stored.body["spec"])
        session_key = None
        if not spec.for_peer:
            session_key = stored.body.get("template_id") or job_id
            idle_session = session_key in self.sessions and self.sessions[session_key].alive
            if not idle_session and self._processes() >= self.policy.max_running_per_node:
                return False
        now = self.hub.now_ms()
        stage = {"stage": "started", "at": now, "node": self.hub.node}
        attempt, *_ = await self.state.writer.write(
            self.store.claim_cmd(job_id, self.hub.node, self.hub.instance, now, stage),
            self.store.running_cmd(now + self._lease_ms(), [job_id]), self.store.not_due_cmd(job_id),
            self.store.changed_cmd(job_id))
        if not attempt:
            return True   # another node started it, or it was cancelled
        self.state.writer.submit([self._event_cmd(job_id, JobState.RUNNING, None)], wait=False)
        run = Run(job_id, int(attempt), uses_process=not spec.for_peer, session_key=session_key)
        self._launch(run, stored, spec)
        return True

    def _launch(self, run: Run, stored: StoredJob, spec: JobSpec) -> None:
        self.runs[run.job_id] = run
        run.task = asyncio.create_task(self._run(run, stored, spec), name=f"job-{run.job_id}")

    async def _fire(self, stored: StoredJob | None, template_id: str, due: int, now: int) -> None:
        """Make the work item of a recurring job's occurrence (as read a moment ago: the fire
        script checks it is still due), once across nodes."""
        if stored is None or stored.state != RecurringState.ACTIVE:
            await self.state.writer.write(self.store.not_due_cmd(template_id))
            return
        if stored.number("next_fire_at") != due:
            return
        spec = JobSpec.from_dict(stored.body["spec"])
        # Occurrences that fell due while no hub ran are one fire, now; the rhythm goes on from now.
        next_due = next_fire(spec.timing, max(due, now))
        work_id = work_id_of_fire(template_id, due)
        owner = stored.body["owner"]["peer_id"]
        body = {"spec": {**stored.body["spec"], "cron": None, "at": None}, "owner": stored.body["owner"],
                "created_at": now, "template_id": template_id,
                "provenance": {"created_by": stored.body["owner"], "node": self.hub.node, "via": "recurring",
                               "template_id": template_id, "due_at": iso(due)}}
        if "peer" in stored.body:
            body["peer"] = stored.body["peer"]
        entry = {"stage": "fire", "at": now, "node": self.hub.node, "work_id": work_id, "detail": f"due {iso(due)}"}
        stage = {"stage": "queued", "at": now, "node": self.hub.node, "detail": f"fire of {template_id}, due {iso(due)}"}
        before, fire, after = self.store.fire_cmds(template_id, owner, due, next_due, work_id, body, now, entry, stage)
        written = await self.state.writer.write(*before, fire, *after, self.store.changed_cmd(work_id))
        (answer,) = replies.texts(written[len(before)][:1])
        if answer == "ok":
            done = [] if next_due is not None else self.store.over_cmds(template_id, owner, now)
            await self.state.writer.write(self._event_cmd(work_id, JobState.QUEUED, None), *done)
        elif answer in ("inactive", "missing"):
            await self.state.writer.write(*self.store.unfired_cmds(work_id, owner), self.store.not_due_cmd(template_id))

    # ---- a run ---------------------------------------------------------------------------------

    def _lease_ms(self) -> int:
        return int(self.policy.lease_s * 1000)

    def _end(self, run: Run, state: JobState, reason: str) -> None:
        if run.ending is None:
            run.ending = (state, reason)
        if run.executor is not None:
            run.executor.end(state, reason)
        elif not run.uses_process and run.task is not None:
            run.task.cancel()

    async def _run(self, run: Run, stored: StoredJob, spec: JobSpec) -> None:
        try:
            try:
                if spec.for_peer:
                    outcome = await self._run_ask(run, stored, spec)
                else:
                    outcome = await self._run_executor(run, stored, spec)
            except asyncio.CancelledError:
                if run.ending is None:
                    raise   # the hub is stopping: a peer job's ask goes on, to be adopted
                state, reason = run.ending
                outcome = RunOutcome(state, reason, "", None, None, 0, None)
            except HubError as exc:
                if exc.code is ErrorCode.STORE_UNAVAILABLE:
                    raise
                outcome = RunOutcome(JobState.FAILED, exc.code.value, "", None, trimmed(exc.message, 500), 0, None)
            await self._finish(run, stored, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            stop_if_cancelled()
            log.exception("jobs: run of %s failed", run.job_id)
        finally:
            self.runs.pop(run.job_id, None)
            self.wake()

    async def _finish(self, run: Run, stored: StoredJob, outcome: RunOutcome) -> None:
        job_id, now = run.job_id, self.hub.now_ms()
        result: dict[str, Any] = {"summary": outcome.summary}
        if outcome.exit_code is not None:
            result["exit_code"] = outcome.exit_code
        if outcome.error:
            result["error"] = outcome.error
        if run.uses_process:
            result["output_bytes"] = outcome.output_bytes
        fields: dict = {"result": orjson.dumps(result)}
        if outcome.session_id:
            fields["session_id"] = outcome.session_id
        stage = {"stage": outcome.state.value, "at": now, "node": self.hub.node, "detail": outcome.reason or None}
        cmds: list[Command] = [
            self.store.finish_cmd(job_id, self.hub.node, self.hub.instance, run.attempt, outcome.state.value,
                                  outcome.reason, now, stage, fields),
            self.store.not_running_cmd(job_id), self.store.changed_cmd(job_id)]
        template_id = stored.body.get("template_id")
        cmds += self.store.over_cmds(job_id, stored.body["owner"]["peer_id"], now)
        if template_id is not None and outcome.session_id:
            cmds.append(self.store.set_cmd(template_id, session_id=outcome.session_id))
        if run.progress:
            cmds += self.store.progress_cmds(job_id, run.progress, self.policy.progress_kept)
            run.progress = []
        finished, *_ = await self.state.writer.write(*cmds)
        if finished == 1:   # else it was cancelled meanwhile, and the cancel told the dashboards
            self.state.writer.submit([self._event_cmd(job_id, outcome.state, outcome.reason)], wait=False)

    def _on_progress(self, run: Run, entries: list[str]) -> None:
        """Progress is written at most every PROGRESS_FLUSH_S, and only what the store keeps."""
        now = self.hub.now_ms()
        run.progress = [*run.progress, *({"at": now, "text": text} for text in entries)][-self.policy.progress_kept:]
        if not run.flush_due:
            run.flush_due = True
            asyncio.get_running_loop().call_later(PROGRESS_FLUSH_S, self._flush_progress, run)

    def _flush_progress(self, run: Run) -> None:
        run.flush_due = False
        if run.progress and run.job_id in self.runs:
            self.state.writer.submit(self.store.progress_cmds(run.job_id, run.progress, self.policy.progress_kept),
                                     wait=False)
            run.progress = []

    async def _run_executor(self, run: Run, stored: StoredJob, spec: JobSpec) -> RunOutcome:
        backend = BACKENDS[spec.backend or ""]
        template_id = stored.body.get("template_id")
        resume = None
        if spec.continuity == Continuity.RESUME and template_id:
            template = await self.store.read(template_id)
            resume = (template.get("session_id") if template is not None else "") or None
        session_mode = spec.process_scope == Scope.SESSION
        key = run.session_key or run.job_id
        executor = self.sessions.get(key) if session_mode else None
        started: list[Command] = []   # the stage of a new executor (a kept one is in an earlier fire's trace)
        if executor is None or not executor.alive:
            executor = Executor(backend.argv(spec.command, resume, session_mode=session_mode), spec.path or "/",
                                executor_env(self._env, backend, self.policy.env_names, run.job_id, resume),
                                StreamReader(backend.stream), output_cap=self.policy.max_output_bytes,
                                kill_grace_s=self.policy.kill_grace_s, on_progress=lambda entries: None,
                                session_mode=session_mode)
            why = await executor.start()
            if why is not None:
                return RunOutcome(JobState.FAILED, "not_started", "", None, why, 0, None)
            if session_mode:
                self.sessions[key] = executor
            detail = f"pid {executor.pid}" + (f", resuming {resume}" if resume else "")
            started = self.store.stage_cmds(run.job_id, {"stage": "executor", "at": self.hub.now_ms(),
                                                         "node": self.hub.node, "detail": detail})
        # the pid is written before the prompt is given: a hub that dies from here on finds it
        await self.state.writer.write(self.store.set_cmd(run.job_id, pid=executor.pid or 0,
                                                         proc_start=executor.start_time), *started)
        executor.on_progress = lambda entries: self._on_progress(run, entries)
        run.executor = executor
        if run.ending is not None:
            executor.end(*run.ending)
        outcome = await executor.run(spec.prompt, spec.timeout_s or self.policy.default_timeout_s)
        keep = session_mode and executor.alive and template_id is not None and outcome.state is JobState.SUCCEEDED
        if keep and template_id is not None:   # a recurring job with no further fire (done) lets it go
            template = await self.store.read(template_id)
            keep = template is not None and template.state == RecurringState.ACTIVE
        if not keep:
            if self.sessions.get(key) is executor:
                del self.sessions[key]
            await executor.closed()
        return outcome

    def _release_session(self, key: str) -> None:
        executor = self.sessions.pop(key, None)
        if executor is not None:
            executor.end(JobState.CANCELLED, "cancelled")
            task = asyncio.ensure_future(executor.closed())
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _run_ask(self, run: Run, stored: StoredJob, spec: JobSpec) -> RunOutcome:
        sender = _sender_of(self.hub, stored.body["owner"]["peer_id"])
        cid = stored.get("correlation_id")
        if not cid:
            accepted = await self.asks.ask(sender, spec.peer or "", spec.prompt, timeout_s=spec.timeout_s,
                                           queue_if_offline=True)
            cid = accepted.correlation_id
            stage = {"stage": "asked", "at": self.hub.now_ms(), "node": self.hub.node,
                     "detail": f"ask {cid}, {accepted.state}"}
            await self.state.writer.write(self.store.set_cmd(run.job_id, correlation_id=cid, ask_state=accepted.state),
                                          *self.store.stage_cmds(run.job_id, stage))
        while True:
            started = time.monotonic()
            got = await self.asks.wait(sender, cid, ASK_WAIT_S)
            if got.state != "pending":
                break
            if time.monotonic() - started < ASK_POLL_S:
                await asyncio.sleep(ASK_POLL_S)   # open on another node: look again in a moment
        await self.state.writer.write(self.store.set_cmd(run.job_id, ask_state=got.state))
        return _ask_outcome(got.state, got.result)

    # ---- leases and crashes ----------------------------------------------------------------------

    async def _leases(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.policy.lease_s / 3)
            try:
                if self.runs:
                    await self.state.writer.write(
                        self.store.running_cmd(self.hub.now_ms() + self._lease_ms(), list(self.runs)))
                await self._recover(first=False)
                await self._sweep_finished()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stop_if_cancelled()
                log.warning("jobs: lease round failed (%s)", exc)

    async def _recover(self, *, first: bool) -> None:
        """Runs nobody renews: those an earlier life of this node left (at start), and those
        whose lease ran out. A peer job's ask is adopted; any other run is lost."""
        now = self.hub.now_ms()
        for job_id, _lease in await self.store.running("+inf" if first else now, RECOVER_BATCH):
            if job_id in self.runs:
                continue
            stored = await self.store.read(job_id)
            if stored is None or stored.state != JobState.RUNNING:
                await self.state.writer.write(self.store.not_running_cmd(job_id))
                continue
            node, instance, attempt = stored.get("node"), stored.get("instance"), stored.number("attempt") or 0
            mine = node == self.hub.node and instance == self.hub.instance
            if _lease > now and (mine or node != self.hub.node):
                continue   # its lease holds (at start, every run is looked at)
            spec = JobSpec.from_dict(stored.body["spec"])
            if spec.for_peer and stored.get("correlation_id"):
                await self._adopt(stored, spec, node, instance, attempt)
                continue
            earlier_life = node == self.hub.node and not mine
            reason = "hub_restarted" if earlier_life else "run_interrupted" if mine else "node_gone"
            stage = {"stage": "lost", "at": now, "node": self.hub.node,
                     "detail": "the hub that ran it stopped; its executor was not recovered" if earlier_life
                     else f"{node}/{instance[:8]} stopped renewing its run"}
            cmds: list[Command] = [self.store.lose_cmd(job_id, node, instance, attempt, now, stage, reason),
                                   self.store.not_running_cmd(job_id), self.store.changed_cmd(job_id),
                                   self._event_cmd(job_id, JobState.LOST, reason)]
            cmds += self.store.over_cmds(job_id, stored.body["owner"]["peer_id"], now)
            await self.state.writer.write(*cmds)
            pid = stored.number("pid")
            if earlier_life and pid and await anyio.to_thread.run_sync(kill_group_if_same, pid,
                                                                         stored.get("proc_start")):
                log.info("jobs: ended executor %s that job %s's earlier hub left running", pid, job_id)

    async def _sweep_finished(self) -> None:
        """Delete jobs that have been over for longer than the retention (a batch per round)."""
        until = self.hub.now_ms() - int(self.policy.retention_s * 1000)
        job_ids = await self.store.finished_before(until, SWEEP_BATCH)
        if not job_ids:
            return
        found = {s.job_id: s for s in await self.store.read_many(job_ids)}
        cmds: list[Command] = []
        for job_id in job_ids:
            stored = found.get(job_id)
            if stored is None:
                cmds.append(self.store.forget_cmd(job_id))
            elif stored.state not in (JobState.QUEUED, JobState.RUNNING, RecurringState.ACTIVE):
                cmds += self.store.delete_cmds(job_id, stored.body["owner"]["peer_id"])
        if cmds:
            await self.state.writer.write(*cmds)

    async def _adopt(self, stored: StoredJob, spec: JobSpec, node: str, instance: str, attempt: int) -> None:
        now = self.hub.now_ms()
        stage = {"stage": "adopted", "at": now, "node": self.hub.node,
                 "detail": f"from {node}/{instance[:8]}; still waiting for the reply"}
        adopted, *_ = await self.state.writer.write(
            self.store.adopt_cmd(stored.job_id, node, instance, attempt, self.hub.node, self.hub.instance, now, stage),
            self.store.running_cmd(now + self._lease_ms(), [stored.job_id]))
        if adopted == 1:
            self._launch(Run(stored.job_id, attempt, uses_process=False, session_key=None), stored, spec)

    # ---- notices from other nodes ----------------------------------------------------------------

    async def _listen(self) -> None:
        subscriber = self._subscriber
        assert subscriber is not None, "started only with a subscriber connection"
        while True:
            try:
                await self.store.follow_changes(subscriber, self._changed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost notice only delays work until the timer's next look
                stop_if_cancelled()
                log.debug("jobs: change notices interrupted (%s)", exc)
                await asyncio.sleep(RETRY_S)

    def _changed(self, job_id: str) -> None:
        self.wake()
        if job_id in self.runs or job_id in self.sessions:
            task = asyncio.create_task(self._check_cancelled(job_id))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _check_cancelled(self, job_id: str) -> None:
        """A cancel made on another node ends the run (or the session) here."""
        stored = await self.store.read(job_id)
        if stored is None or stored.state not in (JobState.CANCELLED, RecurringState.CANCELLED):
            return
        if job_id in self.runs:
            self._end(self.runs[job_id], JobState.CANCELLED, "cancelled")
        if job_id in self.sessions:
            self._release_session(job_id)
