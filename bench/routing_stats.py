"""What a routed step pays to read its candidates' stats, by traffic in the stats window.

    .venv/bin/python -m bench.routing_stats [--rates 2000,20000,100000]

For each rate (attempts per hour per candidate, two candidates, a SQLite journal on disk under
`bench/out/`), times `Journal.action_stats` (every dispatch read the whole window before) and
`RoutingStats.stats` (the engine's path: the journal read at most once a second per action, this
process's attempts merged in) over dispatches spread across 3 seconds of wall time, so the mean
includes the re-reads. The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from runtime.journal import Journal
from runtime.routing_stats import RoutingStats

OUT = Path(__file__).resolve().parent / "out"
WINDOW_S = 3600.0
ACTIONS = ["geo.primary", "geo.backup"]


def fill(journal: Journal, per_hour: int, now: float) -> None:
    rng = random.Random(1)
    for i in range(per_hour):
        started = now - WINDOW_S + i * WINDOW_S / per_hour
        for action in ACTIONS:
            attempt_id = journal.start_attempt(
                run_id=f"r{i // 50}", workflow_name="w", step_id="s", iteration=-1, attempt=1,
                kind="action", action=action, idempotency_key=f"{action}-{i}", now=started,
                worker_id="bench", runs_in_flight=None, propensity=None, candidates=None, inputs={},
            )
            ok = rng.random() > 0.05
            journal.finish_attempt(attempt_id, started + 0.2, outcome="succeeded" if ok else "failed")


def timed(call: Callable[[], Any], seconds: float) -> list[float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(0.002)  # dispatches spread over the time, as steps arrive
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="2000,20000,100000", help="attempts per hour per candidate")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="routing-stats-", dir=OUT))
    report: dict[str, dict[str, float]] = {}
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            journal = Journal.open(directory / f"j{rate}.db")
            journal.defer_fsync = True  # filling fast; the reads are what is measured
            now = time.time()
            fill(journal, rate, now)
            cached = RoutingStats(journal, WINDOW_S)
            direct = timed(partial(journal.action_stats, ACTIONS, since=now - WINDOW_S), 3.0)
            engine = timed(partial(cached.stats, ACTIONS, now=now), 3.0)
            report[str(rate)] = {
                "whole_window_p50_ms": statistics.median(direct),
                "whole_window_mean_ms": statistics.fmean(direct),
                "routing_stats_p50_ms": statistics.median(engine),
                "routing_stats_mean_ms": statistics.fmean(engine),
                "routing_stats_reads": cached.reads,
                "dispatches": len(engine),
            }
            journal.close()
            r = report[str(rate)]
            print(
                f"{rate:>7} attempts/h per candidate: whole window {r['whole_window_p50_ms']:.3f} ms p50"
                f" ({r['whole_window_mean_ms']:.3f} mean); routing stats"
                f" {r['routing_stats_p50_ms']:.3f} ms p50 ({r['routing_stats_mean_ms']:.3f} mean,"
                f" {cached.reads} window reads in {len(engine)} dispatches)",
                flush=True,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({"bench": "routing_stats", "window_s": WINDOW_S, "rates": report}, sort_keys=True))


if __name__ == "__main__":
    main()
