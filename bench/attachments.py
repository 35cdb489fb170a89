"""Attachment benchmark: upload and download speed, the hub against a bare file server.

    python -m bench.attachments [--runs 3] [--large-mib 25] [--large 4] [--small 200] [--out bench/RESULTS.md]

Per run and target (fresh processes, loopback only, one client at a time):
- large: `large` uploads of `large-mib` MiB each, then each downloaded: MiB/s both ways, and
  the server's CPU seconds per 100 MiB uploaded;
- small: `small` uploads of 4 KiB: the round trip p50 / p99.
The hub parses multipart as it streams, hashes, counts against the limits, writes to disk,
commits metadata to its store, and serves downloads with the permission check. The yardstick
(bench/file_server.py) writes the raw body to a file and serves it back, nothing else. Results
go to the `attachments` section of bench/RESULTS.md; figures are medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.run import ROOT, Target, alternating, cpu_seconds, percentiles, publish, start_hub

SECTION_START, SECTION_END = "<!-- attachments -->", "<!-- /attachments -->"
MiB = 1024 * 1024


def start_file_server() -> Target:
    folder = tempfile.mkdtemp(prefix="rw-bench-files-")
    proc = subprocess.Popen([sys.executable, "-m", "bench.file_server", folder], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        raise RuntimeError("file server did not start")
    return Target("relay", f"http://127.0.0.1:{line.split()[1]}", proc, home=Path(folder))


def http_base(target: Target) -> str:
    return target.url.replace("ws://", "http://").removesuffix("/ws")


def send_file(client: httpx.Client, target: Target, data: bytes) -> str:
    if target.name == "hub":
        response = client.post("/attachments", files={"file": ("bench.bin", data, "application/octet-stream")})
    else:
        response = client.post("/attachments", content=data)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def measure_target(target: Target, large_mib: int, large: int, small: int) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    server, _ = target.procs()
    data = os.urandom(large_mib * MiB)
    with httpx.Client(base_url=http_base(target), headers=headers, timeout=120) as client:
        cpu_before = cpu_seconds(server)
        started = time.perf_counter()
        ids = [send_file(client, target, data) for _ in range(large)]
        upload_s = time.perf_counter() - started
        cpu_upload = cpu_seconds(server) - cpu_before
        started = time.perf_counter()
        for attachment_id in ids:
            got = client.get(f"/attachments/{attachment_id}")
            assert got.status_code == 200 and len(got.content) == len(data)
        download_s = time.perf_counter() - started
        piece = os.urandom(4096)
        samples = []
        for _ in range(small):
            begun = time.perf_counter_ns()
            send_file(client, target, piece)
            samples.append(time.perf_counter_ns() - begun)
    total_mib = large * large_mib
    return {"large": {"upload_mib_s": round(total_mib / upload_s, 1), "download_mib_s": round(total_mib / download_s, 1),
                      "cpu_s_per_100mib": round(cpu_upload * 100 / total_mib, 3)},
            "small": {k: round(v, 2) for k, v in percentiles(samples).items()}}


async def bench(args) -> dict:
    async def measure(name: str, target: Target, run: int) -> dict[str, dict]:
        return await asyncio.to_thread(measure_target, target, args.large_mib, args.large, args.small)

    def start(name: str) -> Target:
        if name == "hub":
            return start_hub(["--no-bridge", "--attachment-max-bytes", str(args.large_mib * MiB),
                              "--attachment-peer-quota", str(64 * 1024 * MiB),
                              "--attachment-hub-quota", str(64 * 1024 * MiB)])
        return start_file_server()
    return await alternating(args.runs, start, measure)


def report(results: dict, args) -> str:
    def med(name: str, part: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name][part])

    rows = [f"| upload, {args.large} × {args.large_mib} MiB (MiB/s) | {med('hub', 'large', 'upload_mib_s'):.0f} | "
            f"{med('relay', 'large', 'upload_mib_s'):.0f} |",
            f"| download of the same (MiB/s) | {med('hub', 'large', 'download_mib_s'):.0f} | "
            f"{med('relay', 'large', 'download_mib_s'):.0f} |",
            f"| server CPU per 100 MiB uploaded (s) | {med('hub', 'large', 'cpu_s_per_100mib'):.2f} | "
            f"{med('relay', 'large', 'cpu_s_per_100mib'):.2f} |",
            f"| 4 KiB upload round trip, p50 (ms) | {med('hub', 'small', 'p50_ms'):.2f} | "
            f"{med('relay', 'small', 'p50_ms'):.2f} |",
            f"| 4 KiB upload round trip, p99 (ms) | {med('hub', 'small', 'p99_ms'):.2f} | "
            f"{med('relay', 'small', 'p99_ms'):.2f} |"]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        SECTION_START,
        "## Attachments",
        "",
        f"Measured {when} by `python -m bench.attachments --runs {args.runs} --large-mib {args.large_mib} "
        f"--large {args.large} --small {args.small}`. Median of {args.runs} runs, one client at a time over "
        "loopback. The hub parses the multipart body as it streams, hashes it, counts it against the limits, "
        "writes it to disk and commits its metadata to the store; downloads check who may read. The yardstick "
        "is a bare uvicorn app that writes the raw body to a file and serves it back (bench/file_server.py).",
        "",
        "| measure | hub | bare file server |",
        "|---|---:|---:|",
        *rows,
        SECTION_END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-mib", type=int, default=25, help="size of each large upload")
    parser.add_argument("--large", type=int, default=4, help="large uploads per run")
    parser.add_argument("--small", type=int, default=200, help="4 KiB uploads per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report(asyncio.run(bench(args)), args))


if __name__ == "__main__":
    main()
