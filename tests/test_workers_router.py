"""`overture worker start` routes with the optimizer's learned router, as `overture serve` does:
steps with alternatives go by the trained models once a version is stored (picked up while the
worker runs), and by the step's own action before that or with `--router default`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from optimizer_support import attempts, lognormal
from test_workers import database, start_worker, stop, wait_finished, wait_ready  # noqa: F401 - a fixture

from optimizer.models import train
from optimizer.store import ModelStore
from runtime.invokers import build_invoker
from runtime.journal import Journal
from runtime.records import AttemptRecord, RunState
from runtime.secrets import SecretStore
from runtime.workers import QueueingEngine, RunQueue, ensure_schema
from workflow.loader import load_catalog, read_data
from workflow.validator import ensure_valid

CATALOG = """
actions:
  - name: w.slow
    capability: lookup
    input: {type: object, properties: {label: {type: string}}}
    invoke: {kind: python, callable: "workers_support:work"}
  - name: w.fast
    capability: lookup
    input: {type: object, properties: {label: {type: string}}}
    invoke: {kind: python, callable: "workers_support:work"}
"""
FLOW = """
name: routed
steps:
  - {id: look, action: w.slow, alternatives: [w.fast], with: {label: look}}
"""


def submit(url: str, folder: Path, count: int) -> list[str]:
    catalog = load_catalog(folder / "catalog.yaml")
    workflow = ensure_valid(read_data(folder / "flow.yaml"), catalog)
    journal = Journal.open(url)

    async def go() -> list[str]:
        engine = QueueingEngine(catalog, journal, build_invoker(catalog, SecretStore.from_env()),
                                queue=RunQueue(url), worker_id="test-submit")
        try:
            return [await engine.start_run(workflow, {}) for _ in range(count)]
        finally:
            await engine.close()

    try:
        return asyncio.run(go())
    finally:
        journal.close()


def routed(url: str, folder: Path, count: int) -> list[AttemptRecord]:
    """Run `count` workflows through the workers; their attempts of step `look`."""
    ids = submit(url, folder, count)
    journal = Journal.open(url)
    try:
        states = wait_finished(journal, ids, timeout=60)
        assert set(states.values()) == {RunState.SUCCEEDED}, states
        return [a for r in ids for a in journal.attempts(run_id=r) if a.step_id == "look"]
    finally:
        journal.close()


def store_models(models_dir: Path) -> int:
    # w.slow: 2 s and fails half the time; w.fast: 50 ms and never fails — 300 attempts each
    history = [*attempts("w.slow", 300, duration=lognormal(2.0), p_fail=lambda _t: 0.5, step_id="look"),
               *attempts("w.fast", 300, duration=lognormal(0.05), p_fail=lambda _t: 0.0, step_id="look")]
    store = ModelStore(models_dir)
    models = train(history, version=store.next_version())
    store.save(models)
    return models.version


def wait_log(folder: Path, name: str, text: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while text not in (folder / f"{name}.log").read_text():
        assert time.monotonic() < end, (folder / f"{name}.log").read_text()[-2000:]
        time.sleep(0.05)


def test_workers_route_by_the_stored_models_and_follow_a_retraining(database: str,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "flow.yaml").write_text(FLOW)
    models = tmp_path / "models"
    ensure_schema(database)
    learned = start_worker(database, tmp_path, "learned",
                           extra=["--models", str(models), "--models-poll", "0.2"])
    try:
        wait_ready({"learned": learned}, tmp_path)
        wait_log(tmp_path, "learned", "no trained models")
        # before any training: the step's own action, chosen for sure
        before = routed(database, tmp_path, 2)
        assert [(a.action, a.propensity) for a in before] == [("w.slow", 1.0)] * 2

        version = store_models(models)
        wait_log(tmp_path, "learned", f"routing with the learned models v{version}")
        after = routed(database, tmp_path, 6)
        assert all(a.candidates == ["w.slow", "w.fast"] for a in after), after
        # the models' choice (exploration may still try the other one, with its propensity logged)
        assert sum(a.action == "w.fast" for a in after) >= 5, [(a.action, a.propensity) for a in after]
        assert all(a.propensity is not None and 0 < a.propensity <= 1 for a in after), after
    finally:
        assert stop([learned]) == [0], (tmp_path / "learned.log").read_text()[-2000:]

    # told not to: the stored models are left alone
    default = start_worker(database, tmp_path, "default",
                           extra=["--models", str(models), "--router", "default"])
    try:
        wait_ready({"default": default}, tmp_path)
        assert [(a.action, a.propensity) for a in routed(database, tmp_path, 2)] == [("w.slow", 1.0)] * 2
    finally:
        assert stop([default]) == [0]


def test_an_unknown_router_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    done = subprocess.run([sys.executable, "-m", "service.cli", "worker", "start", "--database-url",
                           "postgresql+psycopg://nobody@127.0.0.1:1/none", "--catalog",
                           str(tmp_path / "catalog.yaml"), "--router", "smart"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --router must be `learned` or `default`, not `smart`"]
