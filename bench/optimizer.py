"""Optimizer benchmark: learn from simulated history, then check every rewrite against its oracle.

    .venv/bin/python -m bench.optimizer [--quick]
    .venv/bin/python -m bench.optimizer --decision-ab GIT_REF   # decision latency, now vs GIT_REF
    .venv/bin/python -m bench.optimizer --seed-table [--seed-table-ref GIT_REF] [--seed-table-runs N]
        # regret after 500 (or N) runs of history across seeds; with a ref, that revision's optimizer beside

Services with known latency and failure distributions (daily peaks, outage bursts, a slow
degradation; see `bench/optimizer_sim.py`) are called by two kinds of workflow: a customer
onboarding with alternatives for two of its steps, and the five real WfCommons traces,
over-serialized as a planner might write them. History comes from the fast twin of the engine
(and, for a check that both agree, from the real `runtime.Engine` on a `ManualClock`); the models
train on it; fresh runs then measure:

- makespan of the parallelized traces vs the as-planned ones and vs the oracle (the critical path
  of each run's realized durations on the true DAG);
- wasted cost of the fail-fast order (learned failure rates) vs the as-planned order and vs the
  ratio-rule order computed with the true failure rates;
- routing regret of the learned policy vs the oracle that knows the true distributions, per
  amount of history (the learning curve), and the success rate; the target's figure
  (`regret_at_500_runs`) is the mean of five fresh evaluations of the policy learned from 500 runs
  (one evaluation swings a point or two with the luck of its outages' first calls);
- training time on ~100k attempts and the router's decision latency.

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.optimizer_sim import DAY, START, Decision, FastRun, Service, fast_simulate, simulate
from optimizer.models import train
from optimizer.predict import predict_run_duration
from optimizer.rewrites.reorder import fail_fast
from optimizer.router import LearnedRouter, route_cost
from optimizer.suggest import step_failure_rates, suggest
from optimizer.traces import trace_workflow
from runtime.routing import Conditions, RouteChoice
from workflow.catalog import Catalog
from workflow.document import Step, Workflow
from workflow.graph import critical_path

WFCOMMONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "wfcommons"
if not WFCOMMONS.exists():
    WFCOMMONS = Path("/work/shared/data/wfcommons")
H = 3600.0
WINDOW_S = 3600.0  # the engine's default `stats_window_s`
Traces = dict[str, tuple[Workflow, dict[str, float]]]
EVAL_START = 20 * DAY  # fresh runs start after the longest history (11,000 runs × 150 s ≈ 19 days)


def services() -> dict[str, Service]:
    svcs = [
        Service("crm.create_account", 1.5, p_fail=0.02, cost=20.0),
        Service("crm.delete_account", 0.5, p_fail=0.0, cost=1.0),
        Service("tenant.create", 4.0, p_fail=0.03, peak_latency=0.5, cost=30.0),
        Service("kyc.verify", 0.4, p_fail=0.12, transient=False, error_type="rejected", cost=1.0,
                side_effects=False),
        # geocoding: alpha is fast but suffers at the daily peak and has outage bursts;
        # beta is slower, steady, and degrades slowly over the weeks
        Service("geo.alpha", 1.0, sigma=0.3, p_fail=0.02, peak_latency=2.5, peak_fail=0.15,
                capability="geo", cost=2.0, side_effects=False,
                outages=[(3 * DAY + 10 * H, 3 * DAY + 12 * H, 0.9), (11 * DAY + 2 * H, 11 * DAY + 4 * H, 0.9),
                         (20 * DAY + 9 * H, 20 * DAY + 12 * H, 0.9)]),
        Service("geo.beta", 2.2, sigma=0.2, p_fail=0.02, degrade_per_day=0.02, capability="geo", cost=2.0,
                side_effects=False),
        # mail: primary is cheap and quick, with outages; backup is slower and steady
        Service("mail.primary", 0.5, p_fail=0.02, capability="mail",
                outages=[(5 * DAY + 14 * H, 5 * DAY + 16 * H, 0.8),
                         (21 * DAY + 13 * H, 21 * DAY + 16 * H, 0.8)]),
        Service("mail.backup", 1.2, p_fail=0.02, capability="mail"),
        Service("trace.task", 1.0, p_fail=0.0, cost=1.0),
    ]
    return {s.name: s for s in svcs}


def onboarding() -> Workflow:
    """As planned: one chain, with the identity check last and no alternatives or retries tuned."""
    return Workflow.model_validate({"name": "onboarding", "steps": [
        {"id": "create_account", "action": "crm.create_account",
         "compensate": {"action": "crm.delete_account",
                        "with": {"id": "${{ steps.create_account.output }}"}}},
        {"id": "geocode", "action": "geo.alpha", "alternatives": ["geo.beta"], "needs": ["create_account"],
         "retry": {"max_attempts": 2, "initial_interval_s": 2}},
        {"id": "provision", "action": "tenant.create", "needs": ["geocode"],
         "with": {"account": "${{ steps.create_account.output }}", "region": "${{ steps.geocode.output }}"}},
        {"id": "notify", "action": "mail.primary", "alternatives": ["mail.backup"], "needs": ["provision"],
         "with": {"tenant": "${{ steps.provision.output }}"}},
        {"id": "verify", "action": "kyc.verify", "needs": ["notify"]},
    ]})


class RandomRouter:
    """History's logging policy: uniform over the candidates, propensity 1/k."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        pick = self.rng.choice(list(candidates))
        return RouteChoice(pick, 1.0 / len(candidates))


class DefaultPolicy:
    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        return RouteChoice(step.action, 1.0)


class Timed:
    """Wraps a router to time each decision."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.timings: list[float] = []

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        t = time.perf_counter()
        choice = self.inner.choose(step, candidates, conditions)
        self.timings.append(time.perf_counter() - t)
        return choice


def true_cost(svc: Service, at: float, load: float) -> float:
    return route_cost(svc.expected_latency(at, load), svc.failure_probability(at, load))


def regret(decisions: Sequence[Decision], svcs: Mapping[str, Service]) -> float:
    chosen = best = 0.0
    for d in decisions:
        costs = {a: true_cost(svcs[a], d.at, d.load) for a in d.candidates}
        chosen += costs[d.chosen]
        best += min(costs.values())
    return (chosen - best) / best if best else 0.0


def arrivals(
    wf: Workflow, n: int, *, start_s: float, spacing_s: float, seed: int
) -> list[tuple[float, Workflow]]:
    rng = random.Random(seed)
    return [(start_s + i * spacing_s + rng.random() * spacing_s * 0.5, wf) for i in range(n)]


def fmt(x: float) -> float:
    return float(f"{x:.4g}")


# ---- sections ----------------------------------------------------------------------------------

def history(svcs: dict[str, Service], n_onboarding: int, trace_rounds: int, seed: int) -> tuple[
        list[Any], Traces, float]:
    traces = {p.stem: trace_workflow(p) for p in sorted(WFCOMMONS.glob("*.json"))}
    arr = arrivals(onboarding(), n_onboarding, start_s=0.0, spacing_s=150.0, seed=seed)
    span = n_onboarding * 150.0
    for k in range(trace_rounds):
        for j, (wf, _) in enumerate(traces.values()):
            arr.append((k * span / max(trace_rounds, 1) + j * 60.0, wf))
    runtimes = {wf.name: rt for wf, rt in traces.values()}

    def step_duration(workflow: str, step_id: str, rng: random.Random) -> float | None:
        rt = runtimes.get(workflow)
        return None if rt is None else rt[step_id] * math.exp(rng.gauss(0.0, 0.1))

    t = time.perf_counter()
    records, _ = fast_simulate(svcs, arr, router=RandomRouter(seed), seed=seed, window_s=WINDOW_S,
                               step_duration=step_duration)
    return records, traces, time.perf_counter() - t


def makespan_section(svcs: dict[str, Service], records: list[Any], traces: Traces, runs: int,
                     seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stem, (planned, runtimes) in traces.items():
        mine = [r for r in records if r.workflow == planned.name]
        proposals = [p for p in suggest(planned, mine) if p.kind == "parallelize"]
        if not proposals:
            out[stem] = {"error": "no parallelize proposal"}
            continue
        optimized = proposals[0].rewritten()
        dag, _ = trace_workflow(WFCOMMONS / f"{stem}.json", serialize=False)

        def step_duration(workflow: str, step_id: str, rng: random.Random,
                          rt: dict[str, float] = runtimes) -> float:
            return rt[step_id] * math.exp(rng.gauss(0.0, 0.1))

        spans = {}
        oracle: list[float] = []
        for label, wf in (("planned", planned), ("optimized", optimized)):
            arr = [(30 * DAY + i * 10_000.0, wf) for i in range(runs)]
            _, fruns = fast_simulate(svcs, arr, seed=seed + 1, step_duration=step_duration)
            spans[label] = statistics.fmean(r.ended_at - r.started_at for r in fruns)
            if label == "optimized":
                oracle = [critical_path(dag, r.step_durations)[1] for r in fruns]
        oracle_mean = statistics.fmean(oracle)
        out[stem] = {
            "planned_s": fmt(spans["planned"]), "optimized_s": fmt(spans["optimized"]),
            "oracle_s": fmt(oracle_mean), "vs_oracle": fmt(spans["optimized"] / oracle_mean),
            "speedup": fmt(spans["planned"] / spans["optimized"]),
            "predicted_gain_s": fmt(proposals[0].gain.value),
        }
    return out


def onboarding_eval(svcs: dict[str, Service], wf: Workflow, router: Any, *, runs: int, seed: int,
                    start_s: float) -> tuple[list[FastRun], list[Decision]]:
    decisions: list[Decision] = []
    arr = arrivals(wf, runs, start_s=start_s, spacing_s=150.0, seed=seed)
    _, fruns = fast_simulate(svcs, arr, router=router, seed=seed, window_s=WINDOW_S, decisions=decisions)
    return fruns, decisions


def routing_section(svcs: dict[str, Service], records: list[Any], sizes: Sequence[int], eval_runs: int,
                    seed: int) -> tuple[dict[str, Any], float, float]:
    wf = onboarding()
    onb = [r for r in records if r.workflow == "onboarding"]
    order: list[str] = []
    seen: set[str] = set()
    for r in sorted(onb, key=lambda r: r.started_at):
        if r.run_id not in seen:
            seen.add(r.run_id)
            order.append(r.run_id)
    # after the history; includes outages of geo.alpha (day 20) and mail.primary (day 21)
    eval_start = EVAL_START
    curve = {}
    baseline_runs, baseline_dec = onboarding_eval(svcs, wf, DefaultPolicy(), runs=eval_runs, seed=seed + 7,
                                                  start_s=eval_start)
    random_runs, random_dec = onboarding_eval(svcs, wf, RandomRouter(seed), runs=eval_runs, seed=seed + 7,
                                              start_s=eval_start)
    timings: list[float] = []
    last_success = 0.0
    for n in sizes:
        keep = set(order[:n])
        models = train([r for r in onb if r.run_id in keep], window_s=WINDOW_S)
        router = Timed(LearnedRouter(models, seed=seed))
        fruns, dec = onboarding_eval(svcs, wf, router, runs=eval_runs, seed=seed + 7, start_s=eval_start)
        timings.extend(router.timings)
        last_success = statistics.fmean(r.succeeded for r in fruns)
        curve[str(n)] = {"regret": fmt(regret(dec, svcs)), "success_rate": fmt(last_success)}
    # the same policy without exploration, at the largest history: what exploration costs
    greedy = LearnedRouter(models, epsilon=0.0, uncertainty=0.0)
    greedy_runs, greedy_dec = onboarding_eval(svcs, wf, greedy, runs=eval_runs, seed=seed + 7,
                                              start_s=eval_start)
    greedy_success = statistics.fmean(r.succeeded for r in greedy_runs)
    curve[f"{sizes[-1]}_no_exploration"] = {"regret": fmt(regret(greedy_dec, svcs)),
                                            "success_rate": fmt(greedy_success)}
    p99 = float(np.quantile(timings, 0.99)) * 1000 if timings else 0.0
    p50 = float(np.quantile(timings, 0.5)) * 1000 if timings else 0.0
    return {
        "learning_curve": curve,
        "default_policy": {"regret": fmt(regret(baseline_dec, svcs)),
                           "success_rate": fmt(statistics.fmean(r.succeeded for r in baseline_runs))},
        "random_policy": {"regret": fmt(regret(random_dec, svcs)),
                          "success_rate": fmt(statistics.fmean(r.succeeded for r in random_runs))},
        "decision_ms_p50": fmt(p50),
    }, p99, last_success


def failfast_section(svcs: dict[str, Service], records: list[Any], catalog: Catalog, runs: int,
                     seed: int) -> dict[str, Any]:
    planned = onboarding()
    onb = [r for r in records if r.workflow == "onboarding"]
    learned_p, _ = step_failure_rates(planned, onb)
    learned = fail_fast(planned, learned_p, catalog)
    # the oracle: the same rule with the true per-step failure probabilities (averaged over the day)
    true_p = {}
    for step in planned.steps:
        svc = svcs[step.action]
        p = statistics.fmean(svc.failure_probability(START + 25 * DAY + h * H, 0.0) for h in range(24))
        attempts = step.retry.max_attempts if step.retry and svc.transient else 1
        true_p[step.id] = p**attempts
    oracle = fail_fast(planned, true_p, catalog)
    out: dict[str, Any] = {}
    for label, wf in (("planned", planned), ("learned", learned.workflow if learned else planned),
                      ("oracle", oracle.workflow if oracle else planned)):
        fruns, _ = onboarding_eval(svcs, wf, None, runs=runs, seed=seed + 11, start_s=25 * DAY)
        out[label] = {
            "wasted_cost": fmt(statistics.fmean(r.wasted_cost for r in fruns)),
            "compensations": fmt(statistics.fmean(r.compensations for r in fruns)),
            "makespan_s": fmt(statistics.fmean(r.ended_at - r.started_at for r in fruns if r.succeeded)),
        }
    out["learned_moves"] = [list(m) for m in (learned.moved if learned else [])]
    return out


def tuning_section(svcs: dict[str, Service], records: list[Any], catalog: Catalog, runs: int,
                   seed: int) -> dict[str, Any]:
    planned = onboarding()
    onb = [r for r in records if r.workflow == "onboarding"]
    models = train(onb, window_s=WINDOW_S)
    proposals = {p.kind: p for p in suggest(planned, onb, catalog=catalog, models=models)}
    tuned = proposals["retry_timeout"].rewritten() if "retry_timeout" in proposals else planned
    out: dict[str, Any] = {"kinds_proposed": sorted(proposals)}
    for label, wf, router in (("planned", planned, None), ("tuned", tuned, None),
                              ("tuned_routed", tuned, LearnedRouter(models, seed=seed))):
        fruns, _ = onboarding_eval(svcs, wf, router, runs=runs, seed=seed + 13, start_s=EVAL_START)
        # success of the steps the tuning touches: runs not ended by the identity check's rejection
        out[label] = {"success_rate": fmt(statistics.fmean(r.succeeded for r in fruns))}
    # forecast vs realized, on the parallelized onboarding
    par = proposals.get("parallelize")
    wf = par.rewritten() if par else planned
    forecast = predict_run_duration(wf, models, samples=3000)
    fruns, _ = onboarding_eval(svcs, wf, None, runs=runs, seed=seed + 17, start_s=EVAL_START)
    actual = float(np.median([r.ended_at - r.started_at for r in fruns if r.succeeded]))
    out["forecast"] = {"p50_s": fmt(forecast.p50_s), "p90_s": fmt(forecast.p90_s),
                       "actual_median_s": fmt(actual),
                       "rel_error": fmt(abs(forecast.p50_s - actual) / actual)}
    return out


def real_runtime_section(svcs: dict[str, Service], traces: Traces, records: list[Any],
                         runs: int) -> dict[str, Any]:
    """The same parallelize check on the real engine (ManualClock, SQLite journal)."""
    stem = "sarek-dirt02-001"
    planned, runtimes = traces[stem]
    mine = [r for r in records if r.workflow == planned.name]
    optimized = next(p for p in suggest(planned, mine) if p.kind == "parallelize").rewritten()

    def step_duration(call: Any, rng: random.Random) -> float:
        return runtimes[call.step_id]

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        for label, wf in (("planned", planned), ("optimized", optimized)):
            arr = [(i * 20_000.0, wf) for i in range(runs)]
            t = time.perf_counter()
            recs, rruns = asyncio.run(simulate(list(svcs.values()), arr, Path(tmp) / f"{label}.db",
                                               step_duration=step_duration, stats_window_s=WINDOW_S))
            wall = time.perf_counter() - t
            out[label] = {"makespan_s": fmt(statistics.fmean(r.ended_at - r.started_at for r in rruns)),
                          "attempts": len(recs), "wall_s": fmt(wall),
                          "attempts_per_s": fmt(len(recs) / wall if wall else 0.0)}
    dag, _ = trace_workflow(WFCOMMONS / f"{stem}.json", serialize=False)
    out["oracle_s"] = fmt(critical_path(dag, runtimes)[1])
    return out


def _decision_inputs(n: int) -> tuple[Step, list[str], list[Conditions]]:
    """`n` routing questions for the geocode step at random moments of the history's span, with
    window stats of the shape the journal reports."""
    from runtime.routing import NEWEST_ATTEMPTS, ActionStats

    step = onboarding().step("geocode")
    rng = random.Random(0)

    def newest(now: float, p_fail: float) -> tuple[tuple[float, ...], tuple[bool, ...]]:
        # a fresh sequence each time: the router's filter takes in every attempt of it, its worst case
        started = sorted((now - rng.random() * 600 for _ in range(NEWEST_ATTEMPTS)), reverse=True)
        return tuple(started), tuple(rng.random() < p_fail for _ in started)

    def recent(now: float) -> dict[str, ActionStats]:
        alpha_at, alpha_failed = newest(now, 0.3)
        beta_at, beta_failed = newest(now, 0.1)
        return {
            "geo.alpha": ActionStats(rng.randrange(30), rng.random() * 0.3, 1.2,
                                     latest_calls=rng.random() * 4, latest_error_rate=rng.random() * 0.5,
                                     latest_mean_latency_s=1.1, latest_started_at=alpha_at[0],
                                     newest_started_at=alpha_at, newest_failed=alpha_failed),
            "geo.beta": ActionStats(rng.randrange(30), rng.random() * 0.1, 2.5,
                                    latest_calls=rng.random() * 4, latest_error_rate=rng.random() * 0.2,
                                    latest_mean_latency_s=2.4, latest_started_at=beta_at[0],
                                    newest_started_at=beta_at, newest_failed=beta_failed),
        }

    conditions = []
    for _ in range(n):
        now = START + rng.random() * 20 * DAY
        conditions.append(Conditions(now=now, runs_in_flight=rng.randrange(50), worker_id="w",
                                     recent=recent(now)))
    return step, ["geo.alpha", "geo.beta"], conditions


def _quantiles_ms(ns: Sequence[int]) -> dict[str, float]:
    arr = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50": fmt(float(np.quantile(arr, 0.5))), "p99": fmt(float(np.quantile(arr, 0.99))),
            "p999": fmt(float(np.quantile(arr, 0.999))), "max": fmt(float(arr.max()))}


def decision_latency(routers: Mapping[str, Any], n: int = 10_000) -> dict[str, dict[str, Any]]:
    """Per router: wall time of `choose` over `n` decisions (perf_counter_ns), and the thread's CPU
    time per decision (thread_time_ns, a second pass: reading that clock costs about a microsecond).

    Garbage collection stays on, as in a serving process, after `gc.freeze()` (what `load_router`
    does once the models are loaded). The routers take turns decision by decision, so a spell of
    machine load falls on both alike. Wall time includes the slices the OS gives other processes in
    between (a loaded machine); CPU time does not."""
    import gc

    step, candidates, conditions = _decision_inputs(n)
    gc.collect()
    gc.freeze()
    wall: dict[str, list[int]] = {name: [0] * n for name in routers}
    cpu: dict[str, list[int]] = {name: [0] * n for name in routers}
    order = list(routers.items())
    for clock, into in ((time.perf_counter_ns, wall), (time.thread_time_ns, cpu)):
        for i, cond in enumerate(conditions):
            for name, router in (order if i % 2 else order[::-1]):
                t = clock()
                router.choose(step, candidates, cond)
                into[name][i] = clock() - t
    gc.unfreeze()
    return {name: {"wall_ms": _quantiles_ms(wall[name]), "cpu_ms": _quantiles_ms(cpu[name])}
            for name in routers}


def _optimizer_at(ref: str) -> Any:
    """The `optimizer` package as it was at git revision `ref`, imported apart under another name
    (its modules' imports of one another rewritten to that name), so its training and its router
    run beside today's in one process."""
    import importlib
    import re
    import subprocess

    root = Path(__file__).resolve().parents[1]
    alias = "optimizer_at_" + re.sub(r"\W", "_", ref)
    if alias in sys.modules:
        return sys.modules[alias]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=True, capture_output=True, text=True, cwd=root).stdout

    import atexit
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="optimizer_at_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    imports = re.compile(r"^(\s*)(from|import) optimizer(?=[.\s])", re.MULTILINE)
    for name in git("ls-tree", "-r", "--name-only", ref, "optimizer/").split():
        if not name.endswith(".py"):
            continue
        target = tmp / alias / Path(name).relative_to("optimizer")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(imports.sub(rf"\1\2 {alias}", git("show", f"{ref}:{name}")))
    sys.path.insert(0, str(tmp))
    return importlib.import_module(alias)


def _learning_at(ref: str) -> tuple[Any, type]:
    """`train` and `LearnedRouter` as they were at git revision `ref`."""
    import importlib

    package = _optimizer_at(ref).__name__
    models = importlib.import_module(package + ".models")
    router = importlib.import_module(package + ".router")
    return models.train, router.LearnedRouter


def decision_ab(ref: str, n: int) -> int:
    """The routing decision's latency now and at git revision `ref`, side by side in one process
    (each router on its own revision's models of the quick history)."""
    svcs = services()
    records, _, _ = history(svcs, 2000, 40, 1)
    ref_train, ref_router = _learning_at(ref)
    routers = {ref: ref_router(ref_train(records, window_s=WINDOW_S), seed=0),
               "now": LearnedRouter(train(records, window_s=WINDOW_S), seed=0)}
    figures = decision_latency(routers, n)
    for name, row in figures.items():
        print(f"route decision {name}: wall {row['wall_ms']} ms, CPU {row['cpu_ms']} ms", file=sys.stderr)
    print(json.dumps({"decisions": n, "load_avg_1m": fmt(os.getloadavg()[0]), "routers": figures}))
    return 0


def regret_after(svcs: dict[str, Service], fit: Any, cls: type, records: Sequence[Any], runs: int,
                 history_seed: int, eval_seeds: Sequence[int]) -> dict[int, float]:
    """Routing regret per evaluation seed of the policy `fit` learns from the first `runs` runs of
    the onboarding history in `records` (`cls` is its router): fresh evaluations of 1,500 runs."""
    wf = onboarding()
    onb = [r for r in records if r.workflow == "onboarding"]
    order = list(dict.fromkeys(r.run_id for r in sorted(onb, key=lambda r: r.started_at)))
    keep = set(order[:runs])
    models = fit([r for r in onb if r.run_id in keep], window_s=WINDOW_S)
    out = {}
    for e in eval_seeds:
        router = cls(models, seed=history_seed)
        _, dec = onboarding_eval(svcs, wf, router, runs=1500, seed=e, start_s=EVAL_START)
        out[e] = fmt(regret(dec, svcs))
    return out


def seed_table(ref: str | None, runs: int = 500, history_seeds: Sequence[int] = (1, 2, 3),
               eval_seeds: Sequence[int] = (8, 9, 10, 11, 12)) -> int:
    """Routing regret after `runs` runs of history, per history seed × evaluation seed (the default
    run's pair is history 1, evaluation 8): one evaluation's regret swings by a point or two with
    the luck of its outages, so a change is judged on the table's mean. With `ref`, the optimizer
    at that git revision (its training and its router) side by side, on the same histories and
    evaluations."""
    svcs = services()
    learners: dict[str, tuple[Any, type]] = {"now": (train, LearnedRouter)}
    if ref:
        learners = {ref: _learning_at(ref), **learners}
    table: dict[str, dict[str, float]] = {name: {} for name in learners}
    for h in history_seeds:
        records, _, _ = history(svcs, 11_000, 200, h)
        for name, (fit, cls) in learners.items():
            for e, value in regret_after(svcs, fit, cls, records, runs, h, eval_seeds).items():
                table[name][f"{h}/{e}"] = value
        for name in learners:
            row = [table[name][f"{h}/{e}"] for e in eval_seeds]
            print(f"{name} history {h}: {row} mean {statistics.fmean(row):.4f}", file=sys.stderr)
    figures = {name: {"mean": fmt(statistics.fmean(t.values())), "median": fmt(statistics.median(t.values())),
                      "max": fmt(max(t.values())), "default_seed": t[f"{history_seeds[0]}/{eval_seeds[0]}"],
                      "per_history": {str(h): fmt(statistics.fmean(t[f"{h}/{e}"] for e in eval_seeds))
                                      for h in history_seeds},
                      "table": t}
               for name, t in table.items()}
    print(json.dumps({"runs": runs, "regret": figures}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller history, for a smoke run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--decision-ab", metavar="GIT_REF",
                        help="only time routing decisions, now against the router at GIT_REF")
    parser.add_argument("--decisions", type=int, default=10_000, help="decisions to time")
    parser.add_argument("--seed-table", action="store_true",
                        help="only routing regret after 500 runs, 3 history seeds × 5 evaluation seeds")
    parser.add_argument("--seed-table-ref", metavar="GIT_REF",
                        help="with --seed-table: the optimizer at GIT_REF (its training, its router) beside")
    parser.add_argument("--seed-table-runs", type=int, default=500, metavar="N",
                        help="with --seed-table: runs of history to train on (default 500)")
    args = parser.parse_args(argv)
    if args.seed_table:
        return seed_table(args.seed_table_ref, runs=args.seed_table_runs)
    if args.decision_ab:
        return decision_ab(args.decision_ab, args.decisions)
    seed = args.seed
    svcs = services()
    catalog = Catalog([s.spec() for s in svcs.values()])
    n_onb, rounds = (2000, 40) if args.quick else (11_000, 200)
    eval_runs = 400 if args.quick else 1500
    sizes = [50, 200, 500] if args.quick else [50, 100, 200, 500, 1000, 2000]

    records, traces, sim_s = history(svcs, n_onb, rounds, seed)
    print(f"history: {len(records)} attempts, {len({r.run_id for r in records})} runs, "
          f"simulated in {sim_s:.1f}s", file=sys.stderr)
    t = time.perf_counter()
    import sklearn.ensemble
    import sklearn.linear_model  # noqa: F401 - timed apart: a long-lived process pays it once

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    models = train(records, window_s=WINDOW_S)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    train(records, window_s=WINDOW_S, boosted=True)
    train_boosted_s = time.perf_counter() - t
    print(f"training: {train_s:.2f}s (boosted quantiles: {train_boosted_s:.2f}s; "
          f"sklearn import {import_s:.2f}s)", file=sys.stderr)
    decision = decision_latency({"learned": LearnedRouter(models, seed=0)}, args.decisions)["learned"]
    wall_ms, cpu_ms = decision["wall_ms"], decision["cpu_ms"]
    print(f"route decision ({args.decisions}, gc on): wall {wall_ms} ms, CPU {cpu_ms} ms "
          f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)

    makespan = makespan_section(svcs, records, traces, runs=20, seed=seed)
    for stem, row in makespan.items():
        print(f"makespan {stem}: {row}", file=sys.stderr)
    routing, p99_ms, success = routing_section(svcs, records, sizes, eval_runs, seed)
    print(f"routing: {routing}", file=sys.stderr)
    failfast = failfast_section(svcs, records, catalog, eval_runs, seed)
    print(f"fail-fast: {failfast}", file=sys.stderr)
    tuning = tuning_section(svcs, records, catalog, eval_runs, seed)
    print(f"tuning: {tuning}", file=sys.stderr)
    real = real_runtime_section(svcs, traces, records, runs=2 if args.quick else 4)
    print(f"real runtime: {real}", file=sys.stderr)

    ratios = [row["vs_oracle"] for row in makespan.values() if "vs_oracle" in row]
    curve = routing["learning_curve"]
    single_500 = curve.get("500", {}).get("regret")
    # the target is judged on five fresh evaluations of the policy learned from 500 runs (the
    # curve's is the first of them): one evaluation swings a point or two with its outages' luck
    at_500 = single_500  # --quick: the one evaluation, for a smoke run
    each_500: dict[int, float] = {}
    if not args.quick:
        each_500 = regret_after(svcs, train, LearnedRouter, records, 500, seed, range(seed + 7, seed + 12))
        at_500 = fmt(statistics.fmean(each_500.values()))
        print(f"regret after 500 runs, five evaluations: {list(each_500.values())} mean {at_500}",
              file=sys.stderr)
    figures = {
        "attempts": len(records),
        "history_sim_s": fmt(sim_s),
        "train_s": fmt(train_s),
        "train_boosted_s": fmt(train_boosted_s),
        "makespan_vs_oracle_max": fmt(max(ratios)) if ratios else None,
        "makespan_speedup_mean": fmt(statistics.fmean(row["speedup"] for row in makespan.values()
                                                      if "speedup" in row)),
        "makespan": makespan,
        "regret_at_500_runs": at_500,
        "regret_at_500_runs_each_evaluation": list(each_500.values()),
        "regret_at_500_runs_learning_curve": single_500,
        "routing": routing,
        "route_decision_ms_p99": wall_ms["p99"],
        "route_decision_ms_p50": wall_ms["p50"],
        "route_decision_ms_p999": wall_ms["p999"],
        "route_decision_cpu_ms_p50": cpu_ms["p50"],
        "route_decision_cpu_ms_p99": cpu_ms["p99"],
        "load_avg_1m": fmt(os.getloadavg()[0]),
        "route_decision_ms_p99_inside_simulation": fmt(p99_ms),
        "sklearn_import_s": fmt(import_s),
        "success_rate_learned": fmt(success),
        "fail_fast": failfast,
        "tuning": tuning,
        "real_runtime": real,
        "targets_met": {
            "makespan_within_10pct_of_oracle": bool(ratios) and max(ratios) <= 1.10,
            "regret_le_5pct_after_500_runs": at_500 is not None and at_500 <= 0.05,
            "train_100k_le_10s": train_s <= 10.0,
            "decision_p99_le_1ms": wall_ms["p99"] <= 1.0,
        },
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
