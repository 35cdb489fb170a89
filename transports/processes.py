"""The few facts about a process that the agent-side programs need (its name, command line,
parent and start time), read from /proc with the standard library on Linux, and from psutil
elsewhere.

The SessionStart hook and every `repowire` command an agent runs walk the process tree to
find their agent; psutil alone costs them about 10 ms to import, and the hooks run under
`python -S`, without installed packages. Both readers give the same start time (boot time plus
the start in clock ticks, as psutil computes it), so a session file written by one is
recognised by the other.
"""

from __future__ import annotations

import importlib
import os

PROC = "/proc"
MAX_ANCESTORS = 64


class ProcessGone(Exception):
    """The process does not exist (any more), or cannot be read."""


class Process:
    __slots__ = ("pid",)

    def __init__(self, pid: int):
        self.pid = pid

    def __repr__(self) -> str:
        return f"Process({self.pid})"

    def _stat(self) -> list[str]:
        """The fields of /proc/<pid>/stat after the name (the name may hold spaces and parentheses)."""
        try:
            with open(f"{PROC}/{self.pid}/stat", "rb") as stat:
                raw = stat.read().decode(errors="replace")
        except OSError:
            raise ProcessGone(self.pid) from None
        return raw[raw.rindex(")") + 2:].split()

    def name(self) -> str:
        try:
            with open(f"{PROC}/{self.pid}/comm", "rb") as comm:
                return comm.read().decode(errors="replace").strip()
        except OSError:
            raise ProcessGone(self.pid) from None

    def cmdline(self) -> list[str]:
        try:
            with open(f"{PROC}/{self.pid}/cmdline", "rb") as cmdline:
                return [part.decode(errors="replace") for part in cmdline.read().split(b"\0") if part]
        except OSError:
            raise ProcessGone(self.pid) from None

    def ppid(self) -> int:
        return int(self._stat()[1])

    def create_time(self) -> float:
        """Seconds since the epoch, as psutil.Process.create_time() gives it on Linux."""
        return _boot_time() + int(self._stat()[19]) / os.sysconf("SC_CLK_TCK")

    def parents(self) -> list[Process]:
        chain: list[Process] = []
        pid = self.ppid()
        while pid > 0 and len(chain) < MAX_ANCESTORS:
            parent = Process(pid)
            chain.append(parent)
            pid = parent.ppid()
        return chain


class PsutilProcess(Process):
    """The same facts where there is no /proc (macOS, the BSDs)."""
    __slots__ = ("_process",)

    def __init__(self, pid: int):
        super().__init__(pid)
        psutil = importlib.import_module("psutil")
        try:
            self._process = psutil.Process(pid)
        except psutil.Error:
            raise ProcessGone(pid) from None

    def _ask(self, what: str) -> object:
        psutil = importlib.import_module("psutil")
        try:
            return getattr(self._process, what)()
        except psutil.Error:
            raise ProcessGone(self.pid) from None

    def name(self) -> str:
        return str(self._ask("name"))

    def cmdline(self) -> list[str]:
        return list(self._ask("cmdline"))  # type: ignore[call-overload]

    def ppid(self) -> int:
        return int(self._ask("ppid"))  # type: ignore[call-overload]

    def create_time(self) -> float:
        return float(self._ask("create_time"))  # type: ignore[arg-type]

    def parents(self) -> list[Process]:
        parents: list[Process] = [PsutilProcess(p.pid) for p in self._ask("parents")]  # type: ignore[attr-defined]
        return parents[:MAX_ANCESTORS]


def process(pid: int) -> Process:
    """The process `pid`; raises ProcessGone when there is none."""
    if os.path.isdir(PROC):
        found = Process(pid)
        found.ppid()   # exists and readable
        return found
    return PsutilProcess(pid)


def _boot_time() -> float:
    with open(f"{PROC}/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise ProcessGone("no boot time in /proc/stat")
