"""Jobs benchmark: what the hub adds to a run, and what reading 10,000 jobs costs.

    python -m bench.jobs [--runs 3] [--fires 30] [--jobs 10000] [--out bench/RESULTS.md]

Per run (a fresh hub on its embedded store, loopback only):
- **Overhead per fire.** `fires` one-time jobs with the `command` backend, one after another,
  each running the same small Python script (reads the prompt, prints a line). The hub's times
  come from the job's own trace: made → started (the timer's claim), started → executor
  (process start), executor → succeeded (the run, and reading its output), made → succeeded.
  The yardstick starts the same script by hand the same number of times
  (`asyncio.create_subprocess_exec`, prompt on stdin, wait for the exit), in the same run.
- **Reading many jobs.** `jobs` jobs due tomorrow are made (`POST /jobs`); then `GET /jobs`
  in the summary and the full view, each 5 times: response size and time.

Results go to the `jobs` section of bench/RESULTS.md; figures are medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.run import ROOT, STEP_TIMEOUT_S, Target, publish, start_hub

SECTION_START, SECTION_END = "<!-- jobs -->", "<!-- /jobs -->"
SCRIPT = "import sys\nprint('ok', len(sys.stdin.read()))\n"
READS = 5


def ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


async def by_hand(argv: list[str], fires: int) -> list[float]:
    """Start the script as the hub would, without the hub: ms per run."""
    took = []
    for _ in range(fires):
        start = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE, start_new_session=True)
        await process.communicate(b"the prompt")
        took.append((time.perf_counter() - start) * 1000)
    return took


def hub_fires(client: httpx.Client, argv: list[str], folder: str, fires: int) -> dict[str, list[float]]:
    parts: dict[str, list[float]] = {"claim": [], "start": [], "run": [], "total": []}
    for _ in range(fires):
        job = client.post("/jobs", json={"prompt": "the prompt", "path": folder, "backend": "command",
                                         "command": argv}).json()
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while job["state"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.005)
            job = client.get(f"/jobs/{job['id']}/status").json()
        if job["state"] != "succeeded":
            raise RuntimeError(f"a job ended {job['state']}: {job.get('result')}")
        at = {stage["stage"]: ms(stage["at"]) for stage in job["trace"]}
        parts["claim"].append(at["started"] - at["queued"])
        parts["start"].append(at["executor"] - at["started"])
        parts["run"].append(at["succeeded"] - at["executor"])
        parts["total"].append(at["succeeded"] - at["queued"])
    return parts


def many_jobs(client: httpx.Client, argv: list[str], folder: str, count: int) -> dict[str, float]:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    for _ in range(count):
        response = client.post("/jobs", json={"prompt": "later, with a prompt of a typical length: " + "x" * 200,
                                              "path": folder, "backend": "command", "command": argv,
                                              "at": tomorrow})
        response.raise_for_status()
    out: dict[str, float] = {}
    for view in ("summary", "full"):
        times, size = [], 0
        for _ in range(READS):
            start = time.perf_counter()
            response = client.get("/jobs", params={"view": view, "limit": count})
            times.append((time.perf_counter() - start) * 1000)
            size = len(response.content)
            if len(response.json()["work"]) != count:
                raise RuntimeError(f"GET /jobs?view={view} listed {len(response.json()['work'])} of {count}")
        out[f"{view}_ms"] = statistics.median(times)
        out[f"{view}_bytes"] = size
    return out


def one_run(args, folder: Path) -> dict:
    script = folder / "job.py"
    script.write_text(SCRIPT)
    argv = [sys.executable, str(script)]
    target: Target = start_hub(["--no-bridge", "--max-jobs", str(args.jobs + args.fires + 10)])
    try:
        base = target.url.replace("ws://", "http://").removesuffix("/ws")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target.token}"}, timeout=60) as client:
            manual = asyncio.run(by_hand(argv, args.fires))
            fires = hub_fires(client, argv, str(folder), args.fires)
            reading = many_jobs(client, argv, str(folder), args.jobs)
    finally:
        target.stop()
    return {"by_hand": statistics.median(manual), **{k: statistics.median(v) for k, v in fires.items()}, **reading}


def report(rows: list[dict], args) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    overhead = med("total") - med("by_hand")
    return "\n".join([
        SECTION_START,
        "## Jobs",
        "",
        f"Measured {when} by `python -m bench.jobs --runs {args.runs} --fires {args.fires} --jobs {args.jobs}`. "
        f"Median of {args.runs} runs (each a fresh hub on its embedded store). A fire is a one-time `command` job "
        "running a small Python script (it reads the prompt and prints a line); the hub's times are its trace's. "
        "By hand: the same script started with `asyncio.create_subprocess_exec`, prompt on stdin, waited for.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| the script started by hand, start to exit (ms) | {med('by_hand'):.1f} |",
        f"| hub: made → started, the timer's claim (ms) | {med('claim'):.1f} |",
        f"| hub: started → executor running (ms) | {med('start'):.1f} |",
        f"| hub: executor running → succeeded, the run and its output (ms) | {med('run'):.1f} |",
        f"| hub: made → succeeded (ms) | {med('total'):.1f} |",
        f"| **the hub's overhead per fire** (made → succeeded, minus by hand) (ms) | {overhead:.1f} |",
        f"| `GET /jobs?view=summary` with {args.jobs:,} jobs: time (ms) | {med('summary_ms'):.0f} |",
        f"| `GET /jobs?view=summary` with {args.jobs:,} jobs: size (KiB) | {med('summary_bytes') / 1024:,.0f} |",
        f"| `GET /jobs` (full) with {args.jobs:,} jobs: time (ms) | {med('full_ms'):.0f} |",
        f"| `GET /jobs` (full) with {args.jobs:,} jobs: size (KiB) | {med('full_bytes') / 1024:,.0f} |",
        SECTION_END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fires", type=int, default=30, help="one-time jobs run one after another, per run")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs listed by the reading measure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="rw-bench-jobs-") as folder:
            rows.append(one_run(args, Path(folder)))
    publish(args.out, report(rows, args))


if __name__ == "__main__":
    main()
