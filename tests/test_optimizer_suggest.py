"""Retry/timeout tuning, suggestion rounds, proposals and their store on constructed histories."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from optimizer_support import T0, serial_runs

from optimizer.errors import ProposalNotFound, StaleProposal
from optimizer.proposals import ProposalStore, accept, auto_apply_kinds
from optimizer.records import ERROR, OK, TIMEOUT, AttemptRecord
from optimizer.rewrites.tuning import tune
from optimizer.suggest import auto_apply, suggest
from optimizer.traces import dag_critical_path, trace_workflow
from workflow.catalog import ActionSpec, Catalog
from workflow.document import OptimizeSettings, Workflow
from workflow.graph import critical_path

WFCOMMONS = Path("/work/shared/data/wfcommons")
if not WFCOMMONS.exists():
    WFCOMMONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "wfcommons"


def step_history(step_id: str, runs: int, attempt_outcomes, *, seed: int = 0) -> list[AttemptRecord]:
    """Per run, attempts until one succeeds; `attempt_outcomes(rng)` yields (outcome, error, duration)."""
    rng = random.Random(seed)
    out = []
    for r in range(runs):
        t = T0 + r * 1000.0
        for n, (outcome, error_type, d) in enumerate(attempt_outcomes(rng), start=1):
            out.append(AttemptRecord(run_id=f"run{r}", workflow="w", step_id=step_id, action="svc.call",
                                     started_at=t, ended_at=t + d, outcome=outcome, attempt=n,
                                     error_type=error_type, transient=None if outcome == OK else True))
            t += d + 1.0
            if outcome == OK:
                break
    return out


def test_tuning_raises_attempts_for_transient_failures_and_sets_a_timeout_from_the_tail():
    # every tenth attempt fails with a 503 and the retry works; successes take 1-2 s
    counter = itertools.count()

    def outcomes(rng):
        for _ in range(10):
            if next(counter) % 10 == 0:
                yield ERROR, "http_503", 0.5
            else:
                yield OK, None, 1.0 + rng.random()

    wf = Workflow.model_validate({"name": "w", "steps": [{"id": "s", "action": "svc.call",
                                                            "retry": {"max_attempts": 3}}]})
    result = tune(wf, step_history("s", 600, outcomes))
    assert result is not None
    step = result.workflow.step("s")
    assert step.retry is not None
    # first attempts fail 10%, retries (almost) never: 0.1 × ~0.01 ≤ 0.002, so two attempts are
    # enough; the timeout is new: the 99.5th percentile of successes (~2 s) × 1.5, rounded up
    assert step.retry.max_attempts == 2
    assert step.timeout_s == pytest.approx(3.0, abs=0.1)
    assert result.steps[0].transient_types["http_503"] > 0.7


def test_tuning_adds_attempts_when_one_is_not_enough():
    def outcomes(rng):
        for _ in range(10):
            yield (ERROR, "http_503", 0.5) if rng.random() < 0.3 else (OK, None, 1.0)

    wf = Workflow.model_validate({"name": "w", "steps": [{"id": "s", "action": "svc.call", "timeout_s": 1.6,
                                                            "retry": {"max_attempts": 2}}]})
    history = [r for r in step_history("s", 800, outcomes) if r.attempt <= 2]
    result = tune(wf, history)
    assert result is not None
    st = result.steps[0]
    # 0.3^n ≤ 0.002 → n = 6
    assert result.workflow.step("s").retry.max_attempts == 6  # type: ignore[union-attr]
    assert st.predicted_failure_after < 0.003 < 0.05 < st.predicted_failure_before


def test_tuning_marks_errors_that_retries_never_fix_as_non_retryable():
    def outcomes(rng):
        if rng.random() < 0.1:
            yield from [(ERROR, "validation", 0.2)] * 3
        else:
            yield OK, None, 1.0

    wf = Workflow.model_validate({"name": "w", "steps": [{"id": "s", "action": "svc.call", "timeout_s": 1.5,
                                                            "retry": {"max_attempts": 3}}]})
    result = tune(wf, step_history("s", 300, outcomes))
    assert result is not None
    retry = result.workflow.step("s").retry
    assert retry is not None and retry.non_retryable == ["validation"]
    assert retry.max_attempts == 1  # nothing left that a retry helps with


def test_tuning_cuts_a_timeout_far_above_the_latency_tail():
    def outcomes(rng):
        if rng.random() < 0.05:
            yield TIMEOUT, "timeout", 120.0  # hung calls wait out the whole timeout
        yield OK, None, 1.0 + rng.random()

    wf = Workflow.model_validate({"name": "w", "steps": [{"id": "s", "action": "svc.call", "timeout_s": 120,
                                                            "retry": {"max_attempts": 3}}]})
    result = tune(wf, step_history("s", 400, outcomes))
    assert result is not None
    assert result.workflow.step("s").timeout_s == pytest.approx(3.0, abs=0.1)
    assert result.steps[0].timeout_wait_saved_s > 3.0  # ~5% of runs × 117 s


# ---- suggestion rounds -------------------------------------------------------------------------

CATALOG = Catalog([
    ActionSpec(name="trace.task"),
    ActionSpec(name="x.check", side_effects=False, cost=1.0),
    ActionSpec(name="x.charge", cost=50.0),
])


@pytest.mark.parametrize("trace", ["sarek-dirt02-001", "epigenomics-chameleon-hep-1seq-100k-001",
                                   "1000genome-chameleon-2ch-100k-001"])
def test_parallelize_recovers_the_makespan_of_a_real_trace(trace: str):
    path = WFCOMMONS / f"{trace}.json"
    serial, runtimes = trace_workflow(path)
    history = serial_runs(serial, runtimes, runs=40)
    proposals = suggest(serial, history, catalog=CATALOG)
    par = [p for p in proposals if p.kind == "parallelize"]
    assert len(par) == 1
    proposal = par[0]
    # the serialized trace takes the sum of its tasks; parallelized it takes the DAG's critical path
    assert proposal.gain.before == pytest.approx(sum(runtimes.values()), rel=1e-6)
    assert proposal.gain.after == pytest.approx(dag_critical_path(path), rel=1e-6)
    _, length = critical_path(proposal.rewritten(), runtimes)
    assert length == pytest.approx(dag_critical_path(path), rel=1e-6)
    assert proposal.evidence.runs == 40 and proposal.evidence.confidence == 1.0
    assert "-  needs:" in proposal.diff or "needs:" in proposal.diff


def test_fail_fast_proposal_from_observed_failures():
    wf = Workflow.model_validate({"name": "shop", "steps": [
        {"id": "charge", "action": "x.charge"},
        {"id": "check", "action": "x.check", "needs": ["charge"]},
    ]})
    rng = random.Random(0)
    history = []
    for r in range(300):
        t = T0 + r * 100.0
        history.append(AttemptRecord(f"r{r}", "shop", "charge", "x.charge", t, t + 1, OK))
        ok = rng.random() > 0.2
        history.append(AttemptRecord(f"r{r}", "shop", "check", "x.check", t + 1, t + 1.2, OK if ok else ERROR,
                                     error_type=None if ok else "rejected", transient=False))
    proposals = {p.kind: p for p in suggest(wf, history, catalog=CATALOG)}
    ff = proposals["fail_fast"]
    assert ff.rewritten().step("charge").needs == ["check"]
    assert ff.rewritten().step("check").needs == []
    # wasted cost per run: before ≈ 0.2 × (50 + 1); after ≈ 0.2 × 1
    assert ff.gain.before == pytest.approx(0.2 * 51, rel=0.2)
    assert ff.gain.after == pytest.approx(0.2, rel=0.3)
    assert ff.evidence.confidence > 0.95


def test_no_proposals_when_the_workflow_is_already_good():
    wf = Workflow.model_validate({"name": "w", "steps": [
        {"id": "a", "action": "trace.task"},
        {"id": "b", "action": "trace.task", "with": {"v": "${{ steps.a.output }}"}},
    ]})
    history = serial_runs(wf, {"a": 1.0, "b": 2.0}, runs=20)
    assert suggest(wf, history, catalog=CATALOG) == []


def test_proposal_store_accept_and_auto(tmp_path: Path):
    path = WFCOMMONS / "sarek-dirt02-001.json"
    serial, runtimes = trace_workflow(path)
    serial.version = 3
    history = serial_runs(serial, runtimes, runs=40, noise=0.1)
    proposals = suggest(serial, history, catalog=CATALOG)
    store = ProposalStore(tmp_path / "proposals.json")
    store.replace_open(serial.name, proposals)
    pid = proposals[0].id
    loaded = store.get(serial.name, pid)
    assert loaded.gain == proposals[0].gain
    with pytest.raises(ProposalNotFound, match="overture optimize suggest"):
        store.get(serial.name, "pa-nothere")
    new = accept(loaded, serial)
    assert new.version == 4 and new.metadata["optimizer"]["accepted"] == pid
    with pytest.raises(StaleProposal, match="version 3"):
        accept(loaded, new)
    store.set_status(pid, "accepted")
    assert store.all(serial.name, status="accepted")[0].id == pid
    # a new round supersedes what is still open
    store.replace_open(serial.name, [])
    assert store.all(serial.name, status="open") == []
    # automatic application only for workflows that opted in, and only with strong evidence
    assert auto_apply(serial, proposals) is None
    serial.optimize = OptimizeSettings(auto=True)
    chosen = auto_apply(serial, proposals)
    assert chosen is not None and chosen.kind in auto_apply_kinds()
