"""Constructed histories for the optimizer tests: attempts drawn from known distributions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping

from optimizer.models import ModelSet
from optimizer.records import ERROR, OK, AttemptRecord
from workflow.document import Workflow

T0 = 1_767_225_600.0  # midnight UTC


def attempts(
    action: str,
    n: int,
    *,
    duration: Callable[[float, random.Random], float],
    p_fail: Callable[[float], float],
    seed: int = 0,
    spacing_s: float = 60.0,
    workflow: str = "w",
    step_id: str = "s",
    error_type: str = "http_503",
    start: float = T0,
) -> list[AttemptRecord]:
    """`n` attempts of one action, one every `spacing_s`, duration and failure as functions of time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = start + i * spacing_s
        d = duration(t, rng)
        ok = rng.random() >= p_fail(t)
        out.append(AttemptRecord(run_id=f"{action}-{seed}-{i}", workflow=workflow, step_id=step_id,
                                 action=action,
                                 started_at=t, ended_at=t + d, outcome=OK if ok else ERROR,
                                 error_type=None if ok else error_type, transient=None if ok else True))
    return out


def hour(t: float) -> float:
    return (t % 86_400.0) / 3600.0


def lognormal(median: float, sigma: float = 0.2) -> Callable[[float, random.Random], float]:
    return lambda _t, rng: median * math.exp(rng.gauss(0.0, sigma))


def serial_runs(workflow: Workflow, durations: Mapping[str, float], runs: int, *, seed: int = 0,
                noise: float = 0.0) -> list[AttemptRecord]:
    """Successful runs of `workflow` laid out as the engine would run them (each step starts when
    its dependencies end), step durations = `durations` × lognormal noise."""
    from optimizer.estimate import topology

    rng = random.Random(seed)
    order, preds = topology(workflow)
    out = []
    for r in range(runs):
        t0 = T0 + r * 100_000.0
        finish: dict[str, float] = {}
        for s in order:
            start = max((finish[p] for p in preds[s]), default=t0)
            d = durations[s] * (math.exp(rng.gauss(0.0, noise)) if noise else 1.0)
            finish[s] = start + d
            out.append(AttemptRecord(run_id=f"run{r}", workflow=workflow.name, step_id=s,
                                     action=workflow.step(s).action, started_at=start, ended_at=start + d,
                                     outcome=OK))
    return out


def router_models() -> ModelSet:
    """geo.fast (~1 s) and geo.slow (~3 s), both failing 2% of the time, and a stretch of history in
    which geo.fast had outages."""
    from optimizer.models import train  # scikit-learn: imported by the tests that train

    fast = attempts("geo.fast", 3000, duration=lognormal(1.0), p_fail=lambda t: 0.02, step_id="g")
    slow = attempts("geo.slow", 3000, duration=lognormal(3.0), p_fail=lambda t: 0.02, step_id="g", seed=1)
    # a history with outages of geo.fast, so the model learns what a high recent error rate means
    flaky = attempts("geo.fast", 3000, duration=lognormal(1.0),
                     p_fail=lambda t: 0.95 if 5 <= hour(t) < 8 else 0.02,
                     step_id="g", seed=2, spacing_s=20.0, start=fast[-1].started_at + 60.0)
    return train(fast + slow + flaky, window_s=600)
