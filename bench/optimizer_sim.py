"""Simulated services with known latency and failure distributions, run through the real runtime.

Every service has a lognormal latency and a failure probability that shift with conditions: a
daily peak (latency and errors rise around 14:00 UTC), optional outage bursts (a window in which
most calls fail), a slow degradation (latency creeping up day by day) and load (runs in flight).
Because the distributions are known, the benchmark can compute oracles: the true expected cost
of each alternative at any moment, the true failure rates for the ratio rule.

History is produced by the real `runtime.Engine` on a `ManualClock` against a SQLite journal:
the invoker sleeps on the engine's clock, and the driver jumps the clock to the next timer
whenever the event loop has nothing left to do, so a simulated day takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.history import load_history
from optimizer.records import AttemptRecord
from runtime import Engine, Journal, ManualClock, Router
from runtime.errors import PermanentActionError, TransientActionError
from runtime.invocation import ActionCall
from workflow.catalog import ActionSpec, Catalog, PythonInvoke
from workflow.document import Workflow

DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC: hour of day = (t % DAY) / 3600


@dataclass
class Service:
    name: str
    median_s: float
    sigma: float = 0.3
    p_fail: float = 0.01
    peak_latency: float = 0.0
    """Extra latency at the daily peak, as a fraction (0.5 = 50% slower at 14:00)."""
    peak_fail: float = 0.0
    """Extra failure probability at the daily peak."""
    outages: list[tuple[float, float, float]] = field(default_factory=list)
    """(start, end, failure probability) windows, in seconds after START."""
    degrade_per_day: float = 0.0
    """Latency grows by this fraction per simulated day."""
    load_latency: float = 0.0
    """Extra latency per run in flight, as a fraction."""
    error_type: str = "http_503"
    transient: bool = True
    capability: str | None = None
    cost: float | None = None
    side_effects: bool = True

    def peak(self, t: float) -> float:
        hour = (t % DAY) / 3600.0
        return math.exp(-(((hour - 14.0) / 3.0) ** 2))

    def latency_factor(self, t: float, load: float) -> float:
        days = max(0.0, (t - START) / DAY)
        return (1.0 + self.peak_latency * self.peak(t)) * (1.0 + self.degrade_per_day * days) * (
            1.0 + self.load_latency * load)

    def failure_probability(self, t: float, load: float) -> float:
        rel = t - START
        for lo, hi, p in self.outages:
            if lo <= rel < hi:
                return p
        return min(0.99, self.p_fail + self.peak_fail * self.peak(t))

    def expected_latency(self, t: float, load: float) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2.0) * self.latency_factor(t, load)

    def sample(self, t: float, load: float, rng: random.Random) -> tuple[float, bool]:
        d = self.median_s * math.exp(rng.gauss(0.0, self.sigma)) * self.latency_factor(t, load)
        return d, rng.random() >= self.failure_probability(t, load)

    def spec(self) -> ActionSpec:
        return ActionSpec(name=self.name, description=f"simulated {self.name}", capability=self.capability,
                          cost=self.cost, side_effects=self.side_effects,
                          invoke=PythonInvoke(callable="bench.optimizer_sim:unused"))


def unused(**_: Any) -> dict[str, Any]:  # the catalog needs an invoke block; the SimInvoker answers
    return {}


class SimInvoker:
    """Performs an attempt by sleeping on the engine's clock for a sampled duration, then failing or not."""

    def __init__(self, services: Mapping[str, Service], clock: ManualClock, *, seed: int = 0,
                 step_duration: Callable[[ActionCall, random.Random], float | None] | None = None) -> None:
        self.services = services
        self.clock = clock
        self.rng = random.Random(seed)
        self.step_duration = step_duration
        self.engine: Engine | None = None
        self.calls = 0

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        svc = self.services[call.action.name]
        now = self.clock.now()
        load = float(self.engine.runs_in_flight) if self.engine is not None else 0.0
        d, ok = svc.sample(now, load, self.rng)
        if self.step_duration is not None:
            fixed = self.step_duration(call, self.rng)
            if fixed is not None:
                d = fixed
        self.calls += 1
        await self.clock.sleep(d)
        if not ok:
            cls = TransientActionError if svc.transient else PermanentActionError
            raise cls(f"{svc.name} failed", type=svc.error_type)
        return {"ok": True, "by": svc.name}


def catalog_of(services: Sequence[Service]) -> Catalog:
    return Catalog([s.spec() for s in services])


async def _quiesce() -> None:
    """Let every ready callback run until the loop would otherwise wait for time to pass."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(100_000):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            # one more turn: a callback scheduled by the last one may still be pending
            await asyncio.sleep(0)
            if not ready:
                return


@dataclass
class RunOutcome:
    run_id: str
    workflow: str
    started_at: float
    ended_at: float
    state: str


def _record_end(ended: dict[str, float], run_id: str, clock: ManualClock, _future: object) -> None:
    ended[run_id] = clock.now()


async def drive(
    engine: Engine,
    clock: ManualClock,
    arrivals: Sequence[tuple[float, Workflow]],
) -> list[RunOutcome]:
    """Start each workflow at its arrival time (seconds after START) and run everything to the end."""
    pending = sorted(arrivals, key=lambda a: a[0])
    i = 0
    started: dict[str, tuple[str, float]] = {}
    waiters: dict[str, asyncio.Future[Any]] = {}
    ended: dict[str, float] = {}
    while i < len(pending) or any(not w.done() for w in waiters.values()):
        while i < len(pending) and START + pending[i][0] <= clock.now():
            wf = pending[i][1]
            run_id = await engine.start_run(wf, {})
            started[run_id] = (wf.name, clock.now())
            waiter = asyncio.ensure_future(engine.wait(run_id))
            waiter.add_done_callback(functools.partial(_record_end, ended, run_id, clock))
            waiters[run_id] = waiter
            i += 1
        await _quiesce()
        nxt = clock.next_wake()
        arrival = START + pending[i][0] if i < len(pending) else None
        targets = [t for t in (nxt, arrival) if t is not None]
        if not targets:
            if any(not w.done() for w in waiters.values()):
                raise RuntimeError("runs are stuck: no timer and no arrival left")
            break
        clock.set_time(min(targets))
    out = []
    for run_id, (name, t0) in started.items():
        result = waiters[run_id].result()
        out.append(RunOutcome(run_id, name, t0, ended.get(run_id, t0), str(result.state.value)))
    return out


async def simulate(
    services: Sequence[Service],
    arrivals: Sequence[tuple[float, Workflow]],
    journal_path: Path,
    *,
    router: Router | None = None,
    seed: int = 0,
    stats_window_s: float = 300.0,
    step_duration: Callable[[ActionCall, random.Random], float | None] | None = None,
    concurrency: int = 256,
) -> tuple[list[AttemptRecord], list[RunOutcome]]:
    """Run the arrivals through the real engine; return the journal's attempts and the runs."""
    clock = ManualClock(start=START)
    journal = Journal.open(journal_path)
    invoker = SimInvoker({s.name: s for s in services}, clock, seed=seed, step_duration=step_duration)
    engine = Engine(catalog_of(services), journal, invoker, clock=clock, router=router,
                    rng=random.Random(seed), worker_id="sim", concurrency=concurrency,
                    stats_window_s=stats_window_s)
    invoker.engine = engine
    try:
        async with engine:
            runs = await drive(engine, clock, arrivals)
        records = load_history(journal)
    finally:
        journal.close()
    return records, runs


# ---- a fast discrete-event twin of the engine, for histories of 100k attempts ------------------
#
# The real engine journals every state change through SQLAlchemy; on this machine that runs at tens
# of attempts per second, too slow for 100k-attempt histories. This twin follows the engine's
# semantics for what the optimizer sees (steps start when their dependencies finish; retries with
# the policy's delays; per-attempt timeouts; routing through a `Router` with the same `Conditions`;
# the run stops at the first step that fails for good) and produces the same `AttemptRecord`s.


@dataclass
class FastRun:
    run_id: str
    workflow: str
    started_at: float
    ended_at: float
    succeeded: bool
    wasted_cost: float
    """Cost of every step started in a run that failed (0 for a run that succeeded)."""
    compensations: int
    step_durations: dict[str, float]


@dataclass
class Decision:
    at: float
    load: float
    step_id: str
    candidates: list[str]
    chosen: str
    propensity: float


class _WindowTracker:
    """The journal's `action_stats` over a window, kept incrementally."""

    def __init__(self, window_s: float) -> None:
        from optimizer.features import WindowStats

        self.stats = WindowStats(window_s=window_s)

    def conditions(self, now: float, load: int, candidates: Sequence[str]) -> Any:
        from runtime.routing import ActionStats, Conditions

        recent = {}
        for a in candidates:
            r = self.stats.query(a, now)
            recent[a] = ActionStats(calls=r.calls, error_rate=r.error_rate, mean_latency_s=r.mean_latency_s,
                                    latest_calls=r.latest_calls, latest_error_rate=r.latest_error_rate,
                                    latest_mean_latency_s=r.latest_mean_latency_s,
                                    latest_started_at=r.latest_started_at,
                                    newest_started_at=r.newest_started_at, newest_failed=r.newest_failed)
        return Conditions(now=now, runs_in_flight=load, worker_id="sim", recent=recent)


def fast_simulate(
    services: Mapping[str, Service],
    arrivals: Sequence[tuple[float, Workflow]],
    *,
    router: Router | None = None,
    costs: Mapping[str, float] | None = None,
    seed: int = 0,
    window_s: float = 300.0,
    step_duration: Callable[[str, str, random.Random], float | None] | None = None,
    decisions: list[Decision] | None = None,
) -> tuple[list[AttemptRecord], list[FastRun]]:
    """Run every arrival to its end; (attempt records, runs). `costs` by action, default 1."""
    import heapq
    import itertools

    from optimizer.records import ERROR, OK, TIMEOUT
    from workflow.document import RetryPolicy
    from workflow.graph import dependency_graph

    rng = random.Random(seed)
    tracker = _WindowTracker(window_s)
    records: list[AttemptRecord] = []
    runs: list[FastRun] = []
    seq = itertools.count()
    events: list[tuple[float, int, str, Any]] = []
    graphs: dict[int, tuple[dict[str, list[str]], dict[str, list[str]]]] = {}
    in_flight = 0
    pending_done: list[tuple[float, int, AttemptRecord]] = []  # attempts not yet visible to stats

    @dataclass
    class _State:
        run_id: str
        wf: Workflow
        preds: dict[str, list[str]]
        succs: dict[str, list[str]]
        started_at: float
        waiting: dict[str, int]
        done: set[str] = field(default_factory=set)
        started: dict[str, float] = field(default_factory=dict)
        ended: dict[str, float] = field(default_factory=dict)
        attempts: dict[str, int] = field(default_factory=dict)
        finished: bool = False
        cost: float = 0.0
        completed_side: int = 0

    for k, (at, wf) in enumerate(arrivals):
        heapq.heappush(events, (START + at, next(seq), "arrive", (k, wf)))

    def flush(now: float) -> None:
        while pending_done and pending_done[0][0] <= now:
            tracker.stats.add(heapq.heappop(pending_done)[2])

    def start_attempt(now: float, st: _State, step_id: str) -> None:
        step = st.wf.step(step_id)
        candidates = [step.action, *[a for a in step.alternatives if a != step.action]]
        action, propensity = step.action, None
        if len(candidates) > 1 and router is not None:
            flush(now)
            choice = router.choose(step, candidates, tracker.conditions(now, in_flight, candidates))
            action, propensity = choice.action, choice.propensity
            if decisions is not None:
                decisions.append(Decision(now, float(in_flight), step_id, candidates, action, propensity))
        svc = services[action]
        n = st.attempts.get(step_id, 0) + 1
        st.attempts[step_id] = n
        if step_id not in st.started:
            st.started[step_id] = now
            st.cost += (costs or {}).get(action, svc.cost if svc.cost is not None else 1.0)
        d, ok = svc.sample(now, float(in_flight), rng)
        if step_duration is not None:
            fixed = step_duration(st.wf.name, step_id, rng)
            if fixed is not None:
                d = fixed
        outcome = OK if ok else ERROR
        if step.timeout_s is not None and d > step.timeout_s:
            d, outcome = step.timeout_s, TIMEOUT
        rec = AttemptRecord(
            run_id=st.run_id, workflow=st.wf.name, step_id=step_id, action=action, started_at=now,
            ended_at=now + d, outcome=outcome, attempt=n,
            error_type=None if outcome == OK else ("timeout" if outcome == TIMEOUT else svc.error_type),
            transient=None if outcome == OK else (True if outcome == TIMEOUT else svc.transient),
            load=float(in_flight), worker="sim", propensity=propensity,
        )
        heapq.heappush(events, (now + d, next(seq), "end", (st, rec)))

    def finish_run(now: float, st: _State, ok: bool) -> None:
        nonlocal in_flight
        st.finished = True
        in_flight -= 1
        durations = {s: t1 - st.started[s] for s, t1 in st.ended.items()}
        runs.append(FastRun(st.run_id, st.wf.name, st.started_at, now, ok, 0.0 if ok else st.cost,
                            0 if ok else st.completed_side, durations))

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            k, wf = payload
            key = id(wf)
            if key not in graphs:
                g = dependency_graph(wf)
                graphs[key] = ({s: list(g.predecessors(s)) for s in g}, {s: list(g.successors(s)) for s in g})
            preds, succs = graphs[key]
            st = _State(f"run-{k}", wf, preds, succs, now, {s: len(p) for s, p in preds.items()})
            in_flight += 1
            for s, c in st.waiting.items():
                if c == 0:
                    start_attempt(now, st, s)
        elif kind == "retry":
            st, step_id = payload
            if not st.finished:
                start_attempt(now, st, step_id)
        else:
            st, rec = payload
            if st.finished:
                continue  # the run already failed: this attempt was cancelled, and is not journaled
            records.append(rec)
            heapq.heappush(pending_done, (rec.ended_at, next(seq), rec))
            step = st.wf.step(rec.step_id)
            if rec.ok:
                st.done.add(rec.step_id)
                spec = services[rec.action]
                if step.compensate is not None and spec.side_effects:
                    st.completed_side += 1
                st.ended[rec.step_id] = now
                for nxt in st.succs[rec.step_id]:
                    st.waiting[nxt] -= 1
                    if st.waiting[nxt] == 0:
                        start_attempt(now, st, nxt)
                if len(st.done) == len(st.preds):
                    finish_run(now, st, True)
                continue
            policy = step.retry or RetryPolicy()
            n = st.attempts[rec.step_id]
            retryable = rec.transient and (rec.error_type not in policy.non_retryable)
            if retryable and n < policy.max_attempts:
                wake = now + policy.delay_before(n + 1)
                heapq.heappush(events, (wake, next(seq), "retry", (st, rec.step_id)))
            else:
                finish_run(now, st, False)
    return records, runs
