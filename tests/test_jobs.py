"""Jobs end to end with the `command` backend: real hub processes, the real store, real executor
processes (Python scripts written by each test), SIGKILL of a hub mid-run, and two hub nodes
on one store. Claude Code and Codex as the backend are in tests/test_jobs_agents.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import orjson
import psutil
import pytest

from tests.support import eventually, fire_now, process_gone, repowire, wait_until

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "lost")
SUMMARY_KEYS_LEFT_OUT = {"prompt", "request", "provenance", "runner", "progress", "trace"}


def script(folder: Path, name: str, body: str) -> list[str]:
    """A Python script the command backend runs: its argument list."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def add_job(hub, body: dict, token: str = "hub", status: int = 201) -> dict:
    response = hub.post("/jobs", body, token=token)
    assert response.status_code == status, response.text
    return response.json()


def status_of(hub, job_id: str, token: str = "hub") -> dict:
    response = hub.get(f"/jobs/{job_id}/status", token=token)
    assert response.status_code == 200, response.text
    return response.json()


async def settled(hub, job_id: str, timeout: float = 20, states: tuple[str, ...] = FINAL) -> dict:
    def check():
        job = status_of(hub, job_id)
        return job if job["state"] in states else None
    return await eventually(lambda: asyncio.to_thread(check), timeout, f"job {job_id} in {states}")


def stages(job: dict) -> list[str]:
    return [s["stage"] for s in job["trace"]]


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


# ---- one run ---------------------------------------------------------------------------------

async def test_a_command_job_runs_once_in_its_folder_and_keeps_result_progress_and_trace(hub, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    argv = script(tmp_path, "echo", """
        import os, sys
        prompt = sys.stdin.read()
        print("working on", prompt)
        print("in", os.getcwd(), "as job", os.environ["REPOWIRE_JOB_ID"])
        print("token" if any(k.startswith("REPOWIRE_TOKEN") for k in os.environ) else "no token")
        print("done")
        """)
    created = add_job(hub, {"prompt": "tidy the README", "path": str(work), "backend": "command", "command": argv})
    assert created["state"] in ("queued", "running") and created["kind"] == "work"
    job = await settled(hub, created["id"])
    assert job["state"] == "succeeded" and "reason" not in job
    lines = ["working on tidy the README", f"in {work} as job {created['id']}", "no token", "done"]
    assert job["result"] == {"summary": "\n".join(lines), "exit_code": 0,
                             "output_bytes": len("\n".join(lines)) + 1}
    assert [p["text"] for p in job["progress"]] == lines
    assert stages(job) == ["queued", "started", "executor", "succeeded"]
    assert job["runner"]["node"] == "node-1" and job["runner"]["attempt"] == 1
    assert process_gone(job["runner"]["pid"])
    assert job["target"] == {"path": str(work), "backend": "command", "command": argv}
    assert (job["process_scope"], job["continuity"]) == ("per_fire", "fresh")
    assert job["owner"]["name"] == "operator" and job["prompt"] == "tidy the README"
    assert job["provenance"]["via"] == "rest" and job["request"]["command"] == argv

    listed = hub.get("/jobs").json()
    assert listed["recurring"] == [] and [j["id"] for j in listed["work"]] == [created["id"]]
    assert listed["work"][0] == job
    summary = hub.get("/jobs?view=summary").json()
    row = summary["work"][0]
    assert SUMMARY_KEYS_LEFT_OUT.isdisjoint(row) and row["target"] == {"path": str(work), "backend": "command"}
    assert row["result"] == {"summary": "\n".join(lines), "exit_code": 0}
    assert {k: v for k, v in job.items() if k not in SUMMARY_KEYS_LEFT_OUT and k != "target" and k != "result"} == \
        {k: v for k, v in row.items() if k not in ("target", "result")}


async def test_a_failing_command_is_failed_with_its_exit_code_and_its_error_output(hub, tmp_path):
    argv = script(tmp_path, "fail", """
        import sys
        print("half way")
        print("cannot open config.toml", file=sys.stderr)
        sys.exit(3)
        """)
    job = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                           "command": argv})["id"])
    assert (job["state"], job["reason"]) == ("failed", "exit_code")
    assert job["result"]["exit_code"] == 3 and job["result"]["summary"] == "half way"
    assert job["result"]["error"] == "cannot open config.toml"
    assert stages(job)[-1] == "failed" and job["trace"][-1]["detail"] == "exit_code"


async def test_a_program_that_does_not_exist_fails_as_not_started(hub, tmp_path):
    job = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                           "command": [str(tmp_path / "no-such-program")]})["id"])
    assert (job["state"], job["reason"]) == ("failed", "not_started")
    assert "No such file" in job["result"]["error"]


async def test_a_run_past_its_timeout_is_timed_out_and_its_whole_process_group_ends(hub, tmp_path, gate):
    pids = tmp_path / "pids"
    argv = script(tmp_path, "slow", f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {gate.waits!r}])
        open({str(pids)!r}, "w").write(f"{{child.pid}}")
        print("started", flush=True)
        {gate.waits}
        """)
    job = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                           "command": argv, "timeout_s": 1.5})["id"])
    assert (job["state"], job["reason"]) == ("timed_out", "timeout")
    assert job["result"]["summary"] == "started"
    assert process_gone(job["runner"]["pid"]) and process_gone(int(pids.read_text()))


async def test_an_executor_that_ignores_sigterm_is_killed_after_the_grace(hub, tmp_path, gate):
    argv = script(tmp_path, "stubborn", f"""
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("you cannot stop me", flush=True)
        {gate.waits}
        """)
    started = time.monotonic()
    job = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                           "command": argv, "timeout_s": 1})["id"])
    assert (job["state"], job["reason"]) == ("timed_out", "timeout")
    assert process_gone(job["runner"]["pid"])
    assert time.monotonic() - started >= 1 + 3 - 0.5   # the timeout, then the kill grace (3 s) before SIGKILL


@pytest.fixture
def capped_hub(start_hub):
    return start_hub("--job-output-max", "1000")


@pytest.mark.parametrize(("printed", "state"), [(1000, "succeeded"), (1001, "failed")])
async def test_output_at_the_cap_succeeds_and_one_byte_more_ends_the_run(capped_hub, tmp_path, printed, state):
    argv = script(tmp_path, "flood", f"""
        import sys
        sys.stdout.write("x" * {printed - 1} + "\\n")
        """)
    job = await settled(capped_hub, add_job(capped_hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                                         "command": argv})["id"])
    assert job["state"] == state
    if state == "failed":
        assert job["reason"] == "output_limit"
    else:
        assert job["result"]["output_bytes"] == 1000


async def test_a_flood_of_output_is_cut_at_the_cap_and_progress_keeps_the_newest(capped_hub, tmp_path):
    argv = script(tmp_path, "flood", """
        import sys, time
        for i in range(10**7):
            print(f"line {i}", flush=True)
        """)
    job = await settled(capped_hub, add_job(capped_hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                                         "command": argv})["id"])
    assert (job["state"], job["reason"]) == ("failed", "output_limit")
    assert process_gone(job["runner"]["pid"])
    # The first 1000 bytes are read, whatever the pipe's chunks: "line 0" to "line 122" (997
    # bytes); the "lin" the cap cut is not. Progress keeps the newest 50.
    assert [entry["text"] for entry in job["progress"]] == [f"line {i}" for i in range(73, 123)]


# ---- cancel ----------------------------------------------------------------------------------

async def test_cancel_ends_a_running_job_and_its_process_group_and_a_second_cancel_is_refused(hub, tmp_path,
                                                                                              gate):
    ready = tmp_path / "ready"
    argv = script(tmp_path, "wait", f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {gate.waits!r}])
        open({str(ready)!r}, "w").write(str(child.pid))
        {gate.waits}
        """)
    job_id = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv})["id"]
    await eventually(lambda: ready.exists() and ready.read_text(), 15, "the executor to start")
    cancelled = hub.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    job = await settled(hub, job_id)
    assert (job["state"], job["reason"]) == ("cancelled", "cancelled")
    assert stages(job)[:3] == ["queued", "started", "executor"] and "cancelled" in stages(job)
    await eventually(lambda: process_gone(job["runner"]["pid"]) and process_gone(int(ready.read_text())), 10,
                     "the executor's process group to end")
    refused(hub.post(f"/jobs/{job_id}/cancel"), 409, "job_finished")
    refused(hub.post("/jobs/0123/cancel"), 404, "job_not_found")
    refused(hub.get("/jobs/0123/status"), 404, "job_not_found")


async def test_a_queued_job_cancelled_before_its_time_never_runs(hub, tmp_path):
    marker = tmp_path / "ran"
    argv = script(tmp_path, "mark", f"open({str(marker)!r}, 'w').write('ran')\n")
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    job_id = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv,
                           "at": later})["id"]
    assert status_of(hub, job_id)["due_at"] == later.replace("Z", ".000Z")
    assert hub.post(f"/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    control = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                               "command": script(tmp_path, "ok", "print('ok')\n"),
                                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime(time.time() + 3))})["id"], 15)
    assert control["state"] == "succeeded" and not marker.exists()   # the later one ran; the cancelled did not


# ---- limits ----------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [2])
async def test_jobs_per_peer_at_the_limit_and_one_more(start_hub, tmp_path, limit):
    hub = start_hub("--max-jobs", str(limit))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with hub.client("alice") as alice, hub.client("bob"):
        body = {"prompt": "later", "peer": "bob", "at": later}
        ids = [add_job(hub, body, token=alice.token)["id"] for _ in range(limit)]
        error = refused(hub.post("/jobs", body, token=alice.token), 507, "too_many_jobs")
        assert error["details"] == {"limit": limit}
        assert len(hub.get("/jobs", token=alice.token).json()["work"]) == limit   # nothing was stored
        add_job(hub, body)   # the operator's count is its own
        hub.post(f"/jobs/{ids[0]}/cancel", token=alice.token)
        add_job(hub, body, token=alice.token)


async def test_executors_per_node_at_the_limit_and_one_more_waits_queued(start_hub, tmp_path, gate):
    hub = start_hub("--max-executors", "2")
    argv = script(tmp_path, "gated", f"""
        {gate.waits}
        print("through")
        """)
    ids = [add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv})["id"]
           for _ in range(3)]

    def states():
        return sorted(status_of(hub, i)["state"] for i in ids)
    await eventually(lambda: asyncio.to_thread(lambda: states() == ["queued", "running", "running"]), 15,
                     "two running, one queued")
    gate.open()
    for job_id in ids:
        assert (await settled(hub, job_id))["state"] == "succeeded"


# ---- bad input -------------------------------------------------------------------------------

async def test_bad_job_requests_are_refused_with_a_code_and_store_nothing(hub, tmp_path):
    async with hub.client("bot") as bot, hub.client("bob"):
        cases = [
            ({}, 422, "invalid_request"),
            ({"prompt": ""}, 422, "invalid_request"),
            ({"prompt": "x"}, 422, "invalid_request"),
            ({"prompt": "x", "peer": "bob", "path": str(tmp_path), "backend": "claude"}, 422, "invalid_request"),
            ({"prompt": "x", "peer": "nobody"}, 404, "peer_not_found"),
            ({"prompt": "x", "peer": "*@default"}, 422, "invalid_request"),
            ({"prompt": "x", "peer": "bob", "process_scope": "session"}, 422, "invalid_request"),
            ({"prompt": "x", "peer": "bob", "timeout_s": 3601}, 422, "invalid_request"),   # the ask limit
            ({"prompt": "x", "path": str(tmp_path), "backend": "gpt"}, 422, "invalid_request"),
            ({"prompt": "x", "path": "relative/dir", "backend": "claude"}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path / "missing"), "backend": "claude"}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "command"}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "command": ["ls"]}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "codex", "process_scope": "session"}, 422,
             "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "process_scope": "session",
              "continuity": "fresh", "cron": "0 9 * * *"}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "cron": "61 * * * *"}, 422, "invalid_cron"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "cron": "0 9 * * *", "at": "2030-01-01T00:00Z"},
             422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "at": "2020-01-01T00:00:00Z"}, 422,
             "schedule_in_past"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "timezone": "Mars/Base"}, 422,
             "invalid_timezone"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "timeout_s": 0}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "claude", "timeout_s": 86_401}, 422, "invalid_request"),
            ({"prompt": "x", "path": str(tmp_path), "backend": "command", "command": ["ls"]}, 403, "forbidden"),
        ]
        for body, status, code in cases:
            refused(hub.post("/jobs", body, token=bot.token), status, code)
        assert hub.get("/jobs").json() == {"work": [], "recurring": []}
        refused(hub.get("/jobs?view=everything"), 422, "invalid_request")
        refused(hub.get("/jobs?limit=0"), 422, "invalid_request")
        refused(hub.get("/jobs?limit=10001"), 422, "invalid_request")
        assert hub.get("/jobs?limit=10000").status_code == 200
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        at_limits = add_job(hub, {"prompt": "x", "peer": "bob", "timeout_s": 3600, "at": later}, token=bot.token)
        assert at_limits["timeout_s"] == 3600   # the ask limit itself is accepted
        assert add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "claude", "timeout_s": 86_400,
                             "at": later}, token=bot.token)["timeout_s"] == 86_400


async def test_a_peer_sees_and_cancels_only_its_own_jobs(hub, tmp_path):
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with hub.client("alice") as alice, hub.client("eve") as eve, hub.client("bob"):
        job_id = add_job(hub, {"prompt": "later", "peer": "bob", "at": later}, token=alice.token)["id"]
        assert hub.get("/jobs", token=eve.token).json() == {"work": [], "recurring": []}
        refused(hub.get(f"/jobs/{job_id}/status", token=eve.token), 403, "forbidden")
        refused(hub.post(f"/jobs/{job_id}/cancel", token=eve.token), 403, "forbidden")
        refused(hub.get("/jobs?peer=alice", token=eve.token), 403, "forbidden")
        assert [j["id"] for j in hub.get("/jobs?peer=alice").json()["work"]] == [job_id]   # a person sees all
        assert status_of(hub, job_id, token=alice.token)["state"] == "queued"


# ---- peer jobs -------------------------------------------------------------------------------

async def test_a_peer_job_is_an_ask_and_its_reply_is_the_result_even_for_an_offline_peer(hub):
    async with hub.client("alice") as alice:
        async with hub.client("bob"):
            pass   # bob exists, and is offline now
        job_id = add_job(hub, {"prompt": "review PR 42", "peer": "bob", "timeout_s": 60}, token=alice.token)["id"]
        job = await settled(hub, job_id, states=("running",))
        cid = job["delivery"]["correlation_id"]
        assert job["delivery"] == {"correlation_id": cid, "trace_id": cid, "state": "queued"}
        assert job["target"]["peer"]["name"] == "bob" and "process_scope" not in job and "continuity" not in job
        async with hub.client("bob") as bob:
            ask = await bob.receive(10)
            assert (ask["kind"], ask["text"], ask["correlation_id"]) == ("ask", "review PR 42", cid)
            assert ask["from"]["name"] == "alice"
            await bob.ack(cid, "LGTM, one nit in utils.py")
            job = await settled(hub, job_id)
    assert job["state"] == "succeeded" and job["result"] == {"summary": "LGTM, one nit in utils.py"}
    assert job["delivery"]["state"] == "replied"
    assert stages(job) == ["queued", "started", "asked", "succeeded"]
    assert hub.get(f"/traces/{cid}").status_code == 200


async def test_a_peer_job_whose_ask_expires_is_timed_out(hub):
    async with hub.client("alice") as alice, hub.client("bob"):
        job = await settled(hub, add_job(hub, {"prompt": "quick?", "peer": "bob", "timeout_s": 1},
                                         token=alice.token)["id"], 20)
    assert (job["state"], job["reason"]) == ("timed_out", "expired")


# ---- recurring jobs ----------------------------------------------------------------------------

RESUMABLE = """
    import json, os, sys, uuid
    prompt = sys.stdin.read()
    resumed = os.environ.get("REPOWIRE_RESUME_SESSION")
    session = resumed or str(uuid.uuid4())
    print(json.dumps({"type": "result", "result": f"{prompt}; resumed={resumed}", "session_id": session}))
    """


@pytest.mark.parametrize("continuity", ["resume", "fresh"])
async def test_each_fire_of_a_recurring_job_is_a_work_item_that_resumes_the_last_session_or_not(
        shared_store, start_hub, tmp_path, continuity):
    hub = start_hub("--redis-url", shared_store)
    argv = script(tmp_path, "resumable", RESUMABLE)
    template = add_job(hub, {"prompt": "daily digest", "path": str(tmp_path), "backend": "command",
                             "command": argv, "cron": "0 9 * * *", "continuity": continuity})
    template_id = template["id"]
    assert template_id.startswith("cal-") and template["kind"] == "recurring" and template["state"] == "active"
    assert template["next_fire_at"].endswith("T09:00:00.000Z") and template["fires"] == 0
    results = [await fire_now(hub, shared_store, template_id, 15) for _ in range(2)]
    for number, job in enumerate(results, 1):
        assert job["state"] == "succeeded" and job["template_id"] == template_id and job["fire"] == number
    first, second = results
    session = first["runtime_session_id"]
    assert first["result"]["summary"] == "daily digest; resumed=None"
    if continuity == "resume":
        assert second["result"]["summary"] == f"daily digest; resumed={session}"
        assert second["runtime_session_id"] == session
    else:
        assert second["result"]["summary"] == "daily digest; resumed=None"
    view = status_of(hub, template_id)
    assert view["fires"] == 2 and view["last_work_id"] == second["id"] and view["state"] == "active"
    assert [s["work_id"] for s in view["trace"]] == [first["id"], second["id"]]
    listed = hub.get("/jobs?view=summary").json()
    assert [j["id"] for j in listed["recurring"]] == [template_id]
    assert {j["id"] for j in listed["work"]} == {first["id"], second["id"]}
    assert hub.post(f"/jobs/{template_id}/cancel").json()["state"] == "cancelled"
    refused(hub.post(f"/jobs/{template_id}/cancel"), 409, "job_finished")


async def test_a_session_scoped_recurring_job_keeps_one_executor_for_its_runs(shared_store, start_hub, tmp_path):
    hub = start_hub("--redis-url", shared_store)
    argv = script(tmp_path, "session", """
        import json, os, sys
        turns = 0
        for line in sys.stdin:
            turns += 1
            prompt = json.loads(line)["message"]["content"]
            print(json.dumps({"type": "result", "result": f"turn {turns} of pid {os.getpid()}: {prompt}",
                              "session_id": f"s-{os.getpid()}"}), flush=True)
        """)
    template_id = add_job(hub, {"prompt": "check CI", "path": str(tmp_path), "backend": "command", "command": argv,
                                "cron": "0 9 * * *", "process_scope": "session"})["id"]
    jobs = [await fire_now(hub, shared_store, template_id, 15) for _ in range(2)]
    pid = jobs[0]["runner"]["pid"]
    assert [j["result"]["summary"] for j in jobs] == [f"turn 1 of pid {pid}: check CI", f"turn 2 of pid {pid}: check CI"]
    assert jobs[1]["runner"]["pid"] == pid and not process_gone(pid)
    hub.post(f"/jobs/{template_id}/cancel")
    await eventually(lambda: process_gone(pid), 10, "the session executor to be released on cancel")


# ---- crashes and nodes -----------------------------------------------------------------------

async def test_a_hub_killed_mid_run_leaves_the_job_lost_ends_its_executor_and_never_runs_it_again(hub, tmp_path,
                                                                                                  gate):
    starts = tmp_path / "starts"
    argv = script(tmp_path, "long", f"""
        import os
        with open({str(starts)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        {gate.waits}
        """)
    job_id = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv})["id"]
    await eventually(lambda: starts.exists() and starts.read_text().strip(), 15, "the executor to start")
    pid = int(starts.read_text())
    hub.kill()
    assert not process_gone(pid)   # its own process group: it outlived the hub
    hub.restart()
    job = await settled(hub, job_id)
    assert (job["state"], job["reason"]) == ("lost", "hub_restarted")
    assert stages(job) == ["queued", "started", "executor", "lost"]
    await eventually(lambda: process_gone(pid), 10, "the executor the dead hub left")
    assert starts.read_text().split() == [str(pid)]   # never run twice


async def test_a_peer_jobs_ask_outlives_a_hub_killed_mid_run_and_its_reply_ends_the_job(hub):
    async with hub.client("alice") as alice:
        async with hub.client("bob"):
            pass
        job_id = add_job(hub, {"prompt": "are you there?", "peer": "bob", "timeout_s": 120}, token=alice.token)["id"]
        cid = (await settled(hub, job_id, states=("running",)))["delivery"]["correlation_id"]
    await eventually(lambda: asyncio.to_thread(lambda: "asked" in stages(status_of(hub, job_id))), 10, "the ask")
    hub.kill()
    hub.restart()
    async with hub.client("bob") as bob:
        ask = await bob.receive(15)
        assert ask["correlation_id"] == cid
        await bob.ack(cid, "yes")
        job = await settled(hub, job_id)
    assert job["state"] == "succeeded" and job["result"]["summary"] == "yes"
    assert "adopted" in stages(job) and stages(job).count("asked") == 1


async def test_two_nodes_run_each_job_once_and_a_cancel_on_one_ends_a_run_on_the_other(shared_store, start_hub,
                                                                                         tmp_path, gate):
    first = start_hub("--redis-url", shared_store, "--node", "n1", "--max-executors", "2")
    second = start_hub("--redis-url", shared_store, "--node", "n2", "--max-executors", "2")
    ready = tmp_path / "ready"
    blocker = script(tmp_path, "block", f"""
        open({str(ready)!r}, "w").write("up")
        {gate.waits}
        """)
    job_id = add_job(first, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": blocker})["id"]
    await eventually(ready.exists, 15, "the executor")
    job = status_of(first, job_id)
    other = second if job["node"] == "n1" else first
    assert other.post(f"/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    await eventually(lambda: process_gone(job["runner"]["pid"]), 10, "the run on the other node to end")

    runs = tmp_path / "runs"
    runs.mkdir()
    argv = script(tmp_path, "once", f"""
        import os
        open(os.path.join({str(runs)!r}, os.environ["REPOWIRE_JOB_ID"] + "." + str(os.getpid())), "w").close()
        {gate.waits}
        """)
    ids = [add_job((first, second)[i % 2], {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                             "command": argv})["id"] for i in range(8)]

    def running() -> list[dict]:
        return [j for j in (status_of(first, i) for i in ids) if j["state"] == "running"]
    # two executors a node: four at the gate, two on each node, four queued
    held = await eventually(lambda: asyncio.to_thread(lambda: (r := running()) and len(r) == 4 and r), 15,
                            "four runs at the gate")
    assert sorted(j["node"] for j in held) == ["n1", "n1", "n2", "n2"]
    gate.open()
    jobs = [await settled(first, i) for i in ids]
    assert {j["state"] for j in jobs} == {"succeeded"}
    assert sorted(p.name.split(".")[0] for p in runs.iterdir()) == sorted(ids)   # each once


async def test_a_run_whose_node_died_is_lost_after_the_lease_on_another_node(shared_store, start_hub, tmp_path,
                                                                              gate):
    first = start_hub("--redis-url", shared_store, "--node", "n1", "--job-lease", "1.5")
    started = tmp_path / "started"
    argv = script(tmp_path, "long", f"""
        open({str(started)!r}, "w").write("up")
        {gate.waits}
        """)
    job_id = add_job(first, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv})["id"]
    await eventually(started.exists, 15, "the executor")
    pid = status_of(first, job_id)["runner"]["pid"]
    first.kill()
    second = start_hub("--redis-url", shared_store, "--node", "n2", "--job-lease", "1.5")
    job = await settled(second, job_id, 20)
    assert (job["state"], job["reason"]) == ("lost", "node_gone") and job["trace"][-1]["node"] == "n2"
    os.killpg(pid, signal.SIGKILL)   # n2 cannot reach a process on n1's machine; this test's machine is both


async def test_two_nodes_fire_a_recurring_jobs_occurrence_once_on_the_minute(shared_store, start_hub, tmp_path):
    nodes = [start_hub("--redis-url", shared_store, "--node", n) for n in ("n1", "n2")]
    argv = script(tmp_path, "tick", "print('tick')\n")
    template_id = add_job(nodes[0], {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv,
                                     "cron": "* * * * *"})["id"]
    first_due = status_of(nodes[0], template_id)["next_fire_at"]
    view = await eventually(lambda: asyncio.to_thread(
        lambda: (v := status_of(nodes[1], template_id))["fires"] >= 1 and v), 75, "the minute's fire")
    work = await settled(nodes[1], view["last_work_id"])
    assert work["state"] == "succeeded" and work["provenance"]["due_at"] == first_due
    listed = nodes[0].get("/jobs").json()["work"]
    assert [j["id"] for j in listed if j.get("template_id") == template_id] == [view["last_work_id"]]
    nodes[0].post(f"/jobs/{template_id}/cancel")


# ---- the CLI -----------------------------------------------------------------------------------

async def test_the_cli_adds_lists_shows_and_cancels_jobs(hub, tmp_path):
    argv = script(tmp_path, "hello", "import sys; print('hello,', sys.stdin.read())\n")
    done = repowire(hub, "jobs", "add", "world", "--path", str(tmp_path), "--backend", "command", "--wait", "--json",
                    "--", *argv)
    assert done.returncode == 0, done.stderr
    job = orjson.loads(done.stdout)
    assert job["state"] == "succeeded" and job["result"]["summary"] == "hello, world"
    shown = repowire(hub, "jobs", "show", job["id"])
    assert shown.returncode == 0 and f"work job {job['id']}: succeeded" in shown.stdout
    assert "result: hello, world" in shown.stdout
    listed = repowire(hub, "jobs", "--summary", "--json")
    assert [j["id"] for j in orjson.loads(listed.stdout)["work"]] == [job["id"]]
    human = repowire(hub, "jobs")
    assert job["id"] in human.stdout and "succeeded" in human.stdout
    later = repowire(hub, "jobs", "add", "later", "--path", str(tmp_path), "--backend", "command", "--at", "+1h",
                     "--json", "--", *argv)
    later_id = orjson.loads(later.stdout)["id"]
    cancelled = repowire(hub, "jobs", "cancel", later_id, "--json")
    assert cancelled.returncode == 0 and orjson.loads(cancelled.stdout)["state"] == "cancelled"
    again = repowire(hub, "jobs", "cancel", later_id)
    assert again.returncode == 1 and again.stderr.startswith("repowire: job_finished:")
    relative = repowire(hub, "jobs", "add", "x", "--path", ".", "--backend", "claude", "--at", "+1h", "--json")
    assert relative.returncode == 0 and orjson.loads(relative.stdout)["target"]["path"] == os.getcwd()
    missing = repowire(hub, "jobs", "add", "x", "--path", "no-such-folder", "--backend", "claude")
    assert missing.returncode == 1 and missing.stderr.startswith("repowire: invalid_request: no folder")


def test_executors_get_only_the_allow_listed_environment(start_hub, tmp_path):
    hub = start_hub("--job-env", "EXTRA_ALLOWED", env={"SECRET_THING": "s3cret", "EXTRA_ALLOWED": "yes",
                                                       "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    argv = script(tmp_path, "env", "import json, os; print(json.dumps(sorted(os.environ)))\n")
    job_id = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv})["id"]
    job = wait_until(lambda: (j := status_of(hub, job_id))["state"] in FINAL and j, 15, "the job")
    names = set(orjson.loads(job["result"]["summary"]))
    assert "EXTRA_ALLOWED" in names and "REPOWIRE_JOB_ID" in names and "PATH" in names
    assert "SECRET_THING" not in names and "REPOWIRE_HOME" not in names
    assert "ANTHROPIC_BASE_URL" not in names   # the claude backend's, not the command backend's
    assert psutil.pid_exists(hub.pid)


async def test_jobs_that_are_over_are_deleted_after_the_retention_and_live_ones_stay(start_hub, tmp_path):
    hub = start_hub("--job-retention", "1", "--job-lease", "3")   # the sweep runs every lease/3: each second
    argv = script(tmp_path, "quick", "print('done')\n")
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    done = await settled(hub, add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command",
                                            "command": argv})["id"])
    waiting = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv,
                            "at": later})["id"]
    template = add_job(hub, {"prompt": "x", "path": str(tmp_path), "backend": "command", "command": argv,
                             "cron": "0 9 * * *"})["id"]
    assert hub.post(f"/jobs/{template}/cancel").status_code == 200

    def gone() -> bool:
        return all(hub.get(f"/jobs/{i}/status").status_code == 404 for i in (done["id"], template))
    await eventually(lambda: asyncio.to_thread(gone), 15, "the finished jobs to be deleted")
    listed = hub.get("/jobs").json()
    assert [j["id"] for j in listed["work"]] == [waiting] and listed["recurring"] == []
    assert status_of(hub, waiting)["state"] == "queued"
