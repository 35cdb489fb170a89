"""`repowire jobs [add|show|cancel]`: durable tracked work over the hub's REST routes, as
whoever the token names (the hub token: the operator)."""

from __future__ import annotations

import os
import time

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED
from hub.cli.schedule_commands import when

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "lost")
WAIT_POLL_S = 0.5
WAIT_MARGIN_S = 30.0   # --wait gives up this long after the job's own timeout would have ended it


def _target(job: dict) -> str:
    target = job["target"]
    if target.get("peer"):
        return f"peer {target['peer']['name']}@{target['peer']['circle']}"
    return f"{target.get('backend')} in {target.get('path')}"


def _when(job: dict) -> str:
    if job["kind"] == "recurring":
        return f"cron '{job.get('cron')}' {job.get('timezone')}, next {job.get('next_fire_at') or '-'}"
    return job.get("finished_at") or job.get("started_at") or job.get("due_at") or job["created_at"]


def listing(args) -> int:
    params = {"view": "summary" if args.summary else "full"}
    if args.owner:
        params["peer"] = args.owner
    body = call("GET", "/jobs", home=args.home, params=params)
    rows = [f"{'ID':<46} {'STATE':<10} {'TARGET':<40} WHEN"]
    for job in body["recurring"] + body["work"]:
        state = job["state"] + (f" ({job['reason']})" if job.get("reason") and job["state"] != "cancelled" else "")
        rows.append(f"{job['id']:<46} {state:<10} {_target(job)[:40]:<40} {_when(job)}")
    empty = not body["work"] and not body["recurring"]
    emit(body, args.json, "no jobs" if empty else "\n".join(rows))
    return EXIT_OK


def add(args) -> int:
    body: dict = {"prompt": args.prompt, "timezone": args.timezone}
    for name, value in (("peer", args.peer), ("path", args.path), ("backend", args.backend),
                        ("process_scope", args.scope), ("continuity", args.continuity), ("cron", args.cron),
                        ("timeout_s", args.timeout)):
        if value is not None:
            body[name] = value
    if args.at is not None:
        body["at"] = when(args.at)
    if args.argv:
        body["command"] = args.argv
    if body.get("path"):
        body["path"] = os.path.abspath(os.path.expanduser(body["path"]))   # the hub takes absolute folders
    job = call("POST", "/jobs", home=args.home, json=body)
    if args.wait and job["kind"] == "work":
        job = _wait(job, args.home)
        emit(job, args.json, _shown(job))
        return EXIT_OK if job["state"] == "succeeded" else EXIT_REFUSED
    emit(job, args.json, f"{job['kind']} job {job['id']}  {job['state']}\nfollow it: repowire jobs show {job['id']}")
    return EXIT_OK


def _wait(job: dict, home: str | None) -> dict:
    deadline = time.monotonic() + (job.get("timeout_s") or 1800.0) + WAIT_MARGIN_S
    while job["state"] not in FINAL and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        job = call("GET", f"/jobs/{job['id']}/status", home=home)
    return job


def _shown(job: dict) -> str:
    lines = [f"{job['kind']} job {job['id']}: {job['state']}" + (f" ({job['reason']})" if job.get("reason") else ""),
             f"  {_target(job)}, made by {job['owner']['name']} at {job['created_at']}"]
    if job["kind"] == "recurring":
        lines.append(f"  {_when(job)}; fired {job.get('fires', 0)} times, last {job.get('last_work_id') or '-'}")
    if job.get("runtime_session_id"):
        lines.append(f"  session {job['runtime_session_id']}")
    result = job.get("result")
    if result:
        lines.append("  result: " + (result.get("summary") or "(nothing)").replace("\n", "\n          "))
        if result.get("error"):
            lines.append(f"  error: {result['error']}")
    for entry in job.get("progress") or []:
        lines.append(f"  · {entry['at']}  {entry['text']}")
    for stage in job.get("trace") or []:
        extra = " ".join(str(stage[k]) for k in ("work_id", "detail") if stage.get(k))
        lines.append(f"  {stage['at']}  {stage['stage']:<10} {stage.get('node') or ''}  {extra}".rstrip())
    return "\n".join(lines)


def show(args) -> int:
    job = call("GET", f"/jobs/{args.id}/status", home=args.home)
    emit(job, args.json, _shown(job))
    return EXIT_OK


def cancel(args) -> int:
    job = call("POST", f"/jobs/{args.id}/cancel", home=args.home)
    emit(job, args.json, f"cancelled {job['id']}")
    return EXIT_OK
