"""Executor processes for path jobs: start one in its own process group, hand it a prompt, read
what it prints, and end it whole.

An executor is started with an argument list (never a shell), in the job's folder, with the
environment the backend's allow-list gives it, and in a new session, so that its process group
holds everything it starts. Ending it (on cancel, timeout, an output flood, or once a per-fire
run is over) sends SIGTERM to the group, then SIGKILL after a grace. Every byte it prints counts
against the output cap; lines are read by the backend's `StreamReader` into progress entries.

A per-fire executor gets the prompt on standard input, which is then closed; its run ends when
it exits. A session executor keeps standard input open and gets one stream-json user message
per run; a run ends with the stream's `result` line, and the process waits for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from hub.core.backends import StreamReader, session_message, trimmed
from hub.core.jobs import JobState

CHUNK = 65_536
LINE_MAX = 65_536       # a longer line is read as several
STDERR_TAIL = 2_000     # characters of standard error kept for a failure's message
DRAIN_S = 1.0           # after a per-fire executor exits, how long its output may still come


@dataclass(frozen=True, slots=True)
class RunOutcome:
    state: JobState
    reason: str                 # '' when it succeeded; else why, as a short code
    summary: str
    exit_code: int | None
    error: str | None
    output_bytes: int
    session_id: str | None


def process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat), '' when it is gone:
    with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def kill_group_if_same(pid: int, start_time: str) -> bool:
    """SIGKILL the process group of `pid` if that process is still the one that started at
    `start_time` (an executor left by a hub that died). Blocking: call in a thread."""
    if not start_time or process_start_time(pid) != start_time:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        return True
    return False


class Executor:
    """One executor process. `start` it, `run` a prompt (once, or once per fire in a session),
    `end` it from anywhere (cancel), `close` it when done."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str], reader: StreamReader, *, output_cap: int,
                 kill_grace_s: float, on_progress: Callable[[list[str]], None], session_mode: bool):
        self.argv, self.cwd, self.env = argv, cwd, env
        self.reader = reader
        self.output_cap = output_cap
        self.kill_grace_s = kill_grace_s
        self.on_progress = on_progress
        self.session_mode = session_mode
        self.process: asyncio.subprocess.Process | None = None
        self.start_time = ""
        self._ending: tuple[JobState, str] | None = None
        self._bytes = 0                      # printed during the current run
        self._stderr_tail = ""
        self._run_over = asyncio.Event()     # the current run's `result` line came, or the process ended
        self._pumps: list[asyncio.Task] = []
        self._kill: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> str | None:
        """Start the process; returns why it could not start, or None."""
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except (FileNotFoundError, PermissionError, NotADirectoryError, OSError) as exc:
            return f"{self.argv[0]}: {exc.strerror or exc}"
        self.start_time = await anyio.to_thread.run_sync(process_start_time, self.process.pid)
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [asyncio.create_task(self._pump(self.process.stdout, lines=True), name="executor-stdout"),
                       asyncio.create_task(self._pump(self.process.stderr, lines=False), name="executor-stderr")]
        return None

    async def run(self, prompt: str, timeout_s: float) -> RunOutcome:
        """Hand the prompt over and wait for the run to end (or the timeout)."""
        process = self.process
        assert process is not None and process.stdin is not None, "started"
        self.reader.start_run()
        self._bytes, self._stderr_tail = 0, ""
        self._run_over.clear()
        try:
            if self.session_mode:
                process.stdin.write(session_message(prompt))
                await process.stdin.drain()
            else:
                process.stdin.write(prompt.encode())
                await process.stdin.drain()
                process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass   # it exited already; its exit says why
        try:
            async with asyncio.timeout(timeout_s):
                if self.session_mode:
                    await self._run_over.wait()
                else:
                    await process.wait()
                    # what it printed last; a child it left behind may hold the pipes open
                    await asyncio.wait(self._pumps, timeout=DRAIN_S)
        except TimeoutError:
            self.end(JobState.TIMED_OUT, "timeout")
            await self.closed()
        return self._outcome()

    def end(self, state: JobState, reason: str) -> None:
        """End the executor (its whole process group) because of `state`; the first reason wins."""
        if self._ending is None:
            self._ending = (state, reason)
        self._terminating()

    async def closed(self) -> None:
        """End the process group (a per-fire run is over, a session is released) and wait for it."""
        if (kill := self._terminating()) is not None:
            await asyncio.shield(kill)
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    def _terminating(self) -> asyncio.Future[None] | None:
        """The one ending of the process group, started on the first call (None: never started)."""
        if self._kill is None and self.process is not None:
            self._kill = asyncio.ensure_future(self._terminate())
        return self._kill

    async def _terminate(self) -> None:
        process = self.process
        assert process is not None
        self._signal(signal.SIGTERM)
        if process.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.kill_grace_s):
                    await process.wait()
        self._signal(signal.SIGKILL)   # whatever is left in the group, whether or not the leader went
        await process.wait()
        self._run_over.set()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid or 0, sig)

    async def _pump(self, stream: asyncio.StreamReader, *, lines: bool) -> None:
        pending = b""
        cut = False   # this stream went past the cap: what it printed after is not read
        while True:
            chunk = await stream.read(CHUNK)
            if not chunk:
                break
            room = self.output_cap - self._bytes
            self._bytes += len(chunk)
            if len(chunk) > room:
                cut = True
                self.end(JobState.FAILED, "output_limit")
                # What fits under the cap is read, however the pipe cut it into chunks; the rest is
                # drained unread, so that the process is not stuck on a full pipe while it is ended.
                chunk = chunk[:max(room, 0)]
                if not chunk:
                    continue
            if not lines:
                self._stderr_tail = (self._stderr_tail + chunk.decode("utf-8", "replace"))[-STDERR_TAIL:]
                continue
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if len(pending) > LINE_MAX:
                complete.append(pending)
                pending = b""
            self._read_lines(complete)
        if lines:
            if pending and not cut:   # a last line without its newline is read; one the cap cut is not
                self._read_lines([pending])
            self._run_over.set()

    def _read_lines(self, lines: list[bytes]) -> None:
        progress: list[str] = []
        for line in lines:
            progress += self.reader.read(line)
        if progress:
            self.on_progress(progress)
        if self.reader.run.finished and self.session_mode:
            self._run_over.set()

    def _outcome(self) -> RunOutcome:
        run, process = self.reader.run, self.process
        exit_code = process.returncode if process is not None else None
        summary = self.reader.summary()
        error = run.error or (trimmed(self._stderr_tail.strip(), 500) or None)
        outcome = (JobState.SUCCEEDED, "")
        if self._ending is not None:
            outcome = self._ending
        elif self.session_mode and not run.finished:
            outcome = (JobState.FAILED, "executor_exited")
        elif run.is_error:
            outcome = (JobState.FAILED, "backend_error")
        elif not self.session_mode and exit_code != 0:
            outcome = (JobState.FAILED, "exit_code")
        state, reason = outcome
        return RunOutcome(state, reason, summary, exit_code, error if state is not JobState.SUCCEEDED else None,
                          self._bytes, run.session_id)
