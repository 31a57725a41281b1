"""End to end: runs on the real engine → journal → `overture optimize train / suggest / accept`."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optimizer.history import load_history
from runtime import Engine, Journal, ManualClock
from runtime.invocation import ActionCall
from runtime.testing import ScriptedInvoker
from service.cli import app
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Workflow
from workflow.loader import load_workflow, save_workflow

CATALOG = Catalog([ActionSpec(name="svc.slow"), ActionSpec(name="svc.quick")])
DOC = {"name": "nightly", "version": 1, "steps": [
    {"id": "a", "action": "svc.slow"},
    {"id": "b", "action": "svc.slow", "needs": ["a"]},
    {"id": "c", "action": "svc.quick", "needs": ["b"], "with": {"x": "${{ steps.a.output.v }}"}},
]}


async def _run_history(journal: Journal, runs: int) -> None:
    clock = ManualClock()

    def sleeper(seconds: float) -> Any:
        async def act(call: ActionCall) -> dict[str, Any]:
            await clock.sleep(seconds)
            return {"v": call.step_id}
        return act

    invoker = ScriptedInvoker({"svc.slow": sleeper(10.0), "svc.quick": sleeper(1.0)})
    wf = Workflow.model_validate(DOC)
    async with Engine(CATALOG, journal, invoker, clock=clock, rng=random.Random(1), worker_id="t") as engine:
        for _ in range(runs):
            run_id = await engine.start_run(wf, {})
            waiter = asyncio.ensure_future(engine.wait(run_id))
            for _ in range(200):
                for _ in range(50):
                    await asyncio.sleep(0)
                if waiter.done():
                    break
                clock.advance_to_next()
            assert waiter.done() and waiter.result().succeeded


@pytest.fixture
def history_journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    journal = Journal.open(path)
    try:
        asyncio.run(_run_history(journal, 6))
    finally:
        journal.close()
    return path


def test_journal_rows_become_attempt_records(history_journal: Path):
    journal = Journal.open(history_journal)
    try:
        records = load_history(journal, workflow="nightly")
    finally:
        journal.close()
    assert len(records) == 18
    assert {r.step_id for r in records} == {"a", "b", "c"}
    assert all(r.ok and r.iteration is None for r in records)
    assert sorted({round(r.duration, 6) for r in records}) == [1.0, 10.0]


def test_train_suggest_accept(history_journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    doc_path = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate(DOC), doc_path)
    runner = CliRunner()

    trained = runner.invoke(app, ["optimize", "train", "--journal", str(history_journal)])
    assert trained.exit_code == 0, trained.output
    assert "trained v1 on 18 attempts" in trained.output
    assert (tmp_path / "data" / "models" / "v1.joblib").exists()

    suggested = runner.invoke(app, ["optimize", "suggest", str(doc_path), "--journal", str(history_journal),
                                    "--format", "json"])
    assert suggested.exit_code == 0, suggested.output
    data = json.loads(suggested.output)
    par = [p for p in data["proposals"] if p["kind"] == "parallelize"]
    assert len(par) == 1
    # a → b → c took 21 s; with b free of a (no data), a and b run side by side: 10 + 1 = 11 s
    assert par[0]["gain"]["before"] == pytest.approx(21.0)
    assert par[0]["gain"]["after"] == pytest.approx(11.0)
    assert par[0]["evidence"]["runs"] == 6
    assert data["predicted_duration_s"]["p50"] == pytest.approx(21.0, rel=0.01)

    accepted = runner.invoke(app, ["optimize", "accept", str(doc_path), par[0]["id"]])
    assert accepted.exit_code == 0, accepted.output
    new = load_workflow(doc_path)
    assert new.version == 2
    assert new.step("b").needs == []
    assert new.step("c").needs == []  # its order after a comes from the data it reads

    again = runner.invoke(app, ["optimize", "accept", str(doc_path), par[0]["id"]])
    assert again.exit_code != 0


INVOKED = """\
actions:
  - {name: svc.slow, invoke: {kind: python, callable: "builtins:dict"}}
  - {name: svc.quick, invoke: {kind: python, callable: "builtins:dict"}}
"""


def test_accept_refuses_a_rewrite_the_catalog_can_no_longer_invoke(
    history_journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OVERTURE_CATALOG", raising=False)
    doc_path = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate(DOC), doc_path)
    before = doc_path.read_text()
    runner = CliRunner()
    suggested = runner.invoke(app, ["optimize", "suggest", str(doc_path), "--journal", str(history_journal),
                                    "--format", "json"])
    assert suggested.exit_code == 0, suggested.output
    [par] = [p for p in json.loads(suggested.output)["proposals"] if p["kind"] == "parallelize"]
    # the catalog changed since the runs: svc.quick lost its invoke block
    changed = tmp_path / "changed.yaml"
    changed.write_text(INVOKED.replace('{name: svc.quick, invoke: {kind: python, callable: "builtins:dict"}}',
                                       "{name: svc.quick}"))
    refused = runner.invoke(app, ["optimize", "accept", str(doc_path), par["id"], "--catalog", str(changed)])
    assert refused.exit_code == 2
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert lines == [
        f"error: {doc_path}: cannot run: 1 step calls actions with no `invoke:` block, which nothing can "
        f"call: step `c` (svc.quick); proposal `{par['id']}` was not applied; the file is unchanged. Add an "
        "`invoke:` block (kind http, python or smtp) to each of these actions in the catalog (README: "
        '"Action invokers"), or pass --catalog with one that has them'
    ]
    assert doc_path.read_text() == before  # not rewritten, and the proposal is still open:

    (tmp_path / "invoked.yaml").write_text(INVOKED)
    invoked = str(tmp_path / "invoked.yaml")
    accepted = runner.invoke(app, ["optimize", "accept", str(doc_path), par["id"], "-c", invoked])
    assert accepted.exit_code == 0, accepted.output
    assert load_workflow(doc_path).version == 2


def test_suggest_without_history_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    doc_path = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate(DOC), doc_path)
    empty = str(tmp_path / "empty.db")
    result = CliRunner().invoke(app, ["optimize", "suggest", str(doc_path), "--journal", empty])
    assert result.exit_code != 0
    assert "run the workflow first" in str(result.exception) + result.output


def test_auto_apply_waits_for_strong_evidence(history_journal: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    doc_path = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate({**DOC, "optimize": {"auto": True}}), doc_path)
    args = ["optimize", "suggest", str(doc_path), "--journal", str(history_journal)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # six runs are below the 30 that automatic application asks for: the document stays as it is
    assert load_workflow(doc_path).version == 1
    assert "applied" not in result.output


def test_auto_apply_skips_a_rewrite_the_catalog_cannot_invoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    journal_path = tmp_path / "journal.db"
    journal = Journal.open(journal_path)
    try:
        asyncio.run(_run_history(journal, 30))  # enough runs for automatic application
    finally:
        journal.close()
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OVERTURE_CATALOG", raising=False)
    doc_path = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate({**DOC, "optimize": {"auto": True}}), doc_path)
    changed = tmp_path / "changed.yaml"
    changed.write_text(INVOKED.replace('{name: svc.slow, invoke: {kind: python, callable: "builtins:dict"}}',
                                       "{name: svc.slow}"))
    args = ["optimize", "suggest", str(doc_path), "--journal", str(journal_path), "--catalog"]
    result = CliRunner().invoke(app, [*args, str(changed)])
    assert result.exit_code == 0, result.output
    assert load_workflow(doc_path).version == 1
    refused = "was not applied automatically: cannot run: 2 steps call actions with no `invoke:` block"
    assert refused in result.output
    assert "step `a` (svc.slow); step `b` (svc.slow)" in result.output

    (tmp_path / "invoked.yaml").write_text(INVOKED)
    result = CliRunner().invoke(app, [*args, str(tmp_path / "invoked.yaml")])
    assert result.exit_code == 0, result.output
    assert "automatically" in result.output and load_workflow(doc_path).version == 2
