"""Load the service API: `overture serve` (real uvicorn on 127.0.0.1, SQLite in a temp data dir)
takes concurrent run starts from an httpx async client; prints throughput and latency.

    .venv/bin/python bench/api_load.py --runs 500 --concurrency 32

The workflow has three `core.log` steps (one, then two in parallel), so every run exercises the
API, input validation, the engine and the journal without calling out. The last line printed is
one JSON object with the figures (`start_rps`, `start_p50_ms`, `start_p99_ms`, `finish_rps`, ...).
The load is bounded (`--runs`) and stops by itself; the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]

WORKFLOW: dict[str, Any] = {
    "name": "bench-logs",
    "inputs": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]},
    "steps": [
        {"id": "first", "action": "core.log", "with": {"message": "run ${{ inputs.n }} started"}},
        {"id": "left", "action": "core.log", "needs": ["first"], "with": {"message": "left"}},
        {"id": "right", "action": "core.log", "needs": ["first"], "with": {"message": "right"}},
    ],
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def finished_runs(metrics: str) -> int:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("overture_runs_finished_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def make_token(data_dir: Path, database_url: str | None) -> str:
    sys.path.insert(0, str(REPO))
    from service.auth import create_token
    from service.settings import ServiceSettings
    from service.store import Store

    settings = ServiceSettings(data_dir=data_dir, database_url=database_url)
    settings.ensure_data_dir()
    store = Store(settings.resolved_database_url())
    try:
        return create_token(store, "bench")[1]
    finally:
        store.close()


def start_server(data_dir: Path, port: int, database_url: str | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from service.cli import main; main()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
    if database_url:
        command += ["--database-url", database_url]
    env = {**os.environ, "OVERTURE_DATA_DIR": str(data_dir)}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                err = server.stderr.read().decode() if server.stderr else ""
                raise SystemExit(f"the server exited with {server.returncode}:\n{err[-2000:]}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not become healthy in time")


async def load(base: str, token: str, runs: int, concurrency: int, wait_s: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        r = await client.post("/v1/catalogs", json={"name": "bench", "actions": []})
        r.raise_for_status()
        r = await client.post("/v1/workflows", json={"document": WORKFLOW, "catalog_id": r.json()["id"]})
        r.raise_for_status()
        workflow_id = r.json()["id"]
        # one warm-up run so the first measured request does not pay for imports and caches
        warm = await client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": {"n": 0}})
        warm.raise_for_status()

        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        errors: list[str] = []
        run_ids: list[str] = []

        async def start(n: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                try:
                    body = {"workflow_id": workflow_id, "inputs": {"n": n}}
                    response = await client.post("/v1/runs", json=body)
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    return
                latencies.append(time.perf_counter() - t0)
                if response.status_code == 201:
                    run_ids.append(response.json()["id"])
                else:
                    errors.append(f"HTTP {response.status_code}")

        began = time.perf_counter()
        await asyncio.gather(*(start(n) for n in range(runs)))
        start_wall = time.perf_counter() - began

        # then until every started run has finished (bounded by --wait), read from /metrics
        finished = 0
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            finished = finished_runs((await client.get("/metrics")).text) - 1  # less the warm-up run
            if finished >= len(run_ids):
                break
            await asyncio.sleep(0.05)
        finish_wall = time.perf_counter() - began

        # the API alone, with the engine idle: concurrent reads of one run (steps, attempts, events)
        show_latencies: list[float] = []

        async def show(n: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                response = await client.get(f"/v1/runs/{run_ids[n % len(run_ids)]}")
                show_latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code} on GET")

        began = time.perf_counter()
        await asyncio.gather(*(show(n) for n in range(runs if run_ids else 0)))
        show_wall = time.perf_counter() - began

    ms = [x * 1000 for x in latencies]
    return {
        "runs": runs,
        "concurrency": concurrency,
        "started": len(run_ids),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "start_wall_s": round(start_wall, 3),
        "start_rps": round(len(run_ids) / start_wall, 1) if start_wall else None,
        "start_p50_ms": round(percentile(ms, 50), 2),
        "start_p99_ms": round(percentile(ms, 99), 2),
        "start_mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        "start_max_ms": round(max(ms), 2) if ms else None,
        "finished": finished,
        "finish_wall_s": round(finish_wall, 3),
        "finish_rps": round(finished / finish_wall, 1) if finish_wall else None,
        "show_rps": round(len(show_latencies) / show_wall, 1) if show_wall else None,
        "show_p50_ms": round(percentile([x * 1000 for x in show_latencies], 50), 2),
        "show_p99_ms": round(percentile([x * 1000 for x in show_latencies], 99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="run starts to send (default 500)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once (default 32)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the runs to finish")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the data here (default: a temp dir)")
    parser.add_argument("--database-url", default=None,
                        help="an empty database for the service and journal (default: SQLite files)")
    args = parser.parse_args()
    if args.runs < 1 or args.runs > 100_000 or args.concurrency < 1 or args.concurrency > 1_000:
        parser.error("--runs must be 1..100000 and --concurrency 1..1000")

    with tempfile.TemporaryDirectory(prefix="overture-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        token = make_token(data_dir, args.database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, args.database_url)
        try:
            asyncio.run(wait_healthy(base, server))
            figures = asyncio.run(load(base, token, args.runs, args.concurrency, args.wait))
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"run starts: {figures['started']}/{args.runs} at concurrency {args.concurrency}, "
          f"{figures['errors']} errors, {figures['start_rps']} starts/s")
    print(f"start latency: p50 {figures['start_p50_ms']} ms, p99 {figures['start_p99_ms']} ms, "
          f"max {figures['start_max_ms']} ms")
    print(f"runs finished: {figures['finished']} in {figures['finish_wall_s']} s "
          f"({figures['finish_rps']} runs/s end to end)")
    print(f"GET /v1/runs/{{id}} with the engine idle: {figures['show_rps']} req/s, "
          f"p50 {figures['show_p50_ms']} ms, p99 {figures['show_p99_ms']} ms")
    figures["database"] = "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
