"""Planning latency of the offline planner, in-process (the issue's target: ≤ 50 ms per request).

    .venv/bin/python bench/planner_speed.py [CASES.jsonl CATALOG.yaml] [--repeat N]

Builds the planner once (the TF-IDF index is cached per catalog), plans every request of the
planner benchmark N times and prints the median and 95th percentile per request as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT.parent / "shared" / "bench" / "planner"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", default=str(BENCH / "cases.jsonl"))
    parser.add_argument("catalog", nargs="?", default=str(BENCH / "catalog.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from planner.offline import OfflinePlanner
    from workflow.loader import load_catalog

    started = time.perf_counter()
    planner = OfflinePlanner(load_catalog(args.catalog))
    build_s = time.perf_counter() - started
    requests = [
        json.loads(line)["request"] for line in Path(args.cases).read_text().splitlines() if line.strip()
    ]
    planner.plan(requests[0])  # warm caches (regexes, lexicon) once, as a long-running service would
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        for request in requests:
            t0, c0 = time.perf_counter(), time.process_time()
            planner.plan(request)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    cpu.sort()
    print(
        json.dumps(
            {
                "requests": len(requests),
                "repeat": args.repeat,
                "index_build_s": round(build_s, 3),
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                "max_ms": round(times[-1], 1),
                # CPU time per request: what a request costs when the machine is not shared
                "median_cpu_ms": round(statistics.median(cpu), 1),
                "p95_cpu_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
