"""What a new user hit walking the README, each now a normal outcome or one clear line: a second
demo in the same folder, follow-up hints that keep the options given, runs refused before they are
recorded when an action cannot be called, core-only workflows without a catalog, the state an
approval answers with, what `overture serve` says it uses, `worker submit --wait` on a paused run,
`optimize` taking `--data-dir`/`--database-url` like every other command, and a never-firing
schedule in the scheduler."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import APPROVAL_STEPS, cli

from runtime import Engine, Journal, ManualClock
from runtime.testing import ScriptedInvoker
from runtime.triggers import FireStore, Scheduler, TriggeredWorkflow
from runtime.triggers.cron import CronRule, ScheduleError
from runtime.triggers.engine_target import EngineTarget
from workflow.catalog import Catalog
from workflow.document import Workflow

# -- 9. a schedule that never fires -------------------------------------------------------------


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_a_cron_that_never_fires_is_a_schedule_error_not_croniter_s() -> None:
    rule = CronRule("0 0 30 2 *")  # 30 February: valid cron syntax, no date ever matches
    with pytest.raises(ScheduleError, match="never fires"):
        rule.next_after(_at(2030, 1, 1))
    with pytest.raises(ScheduleError, match="never fires"):
        rule.latest_at_or_before(_at(2030, 1, 1))
    with pytest.raises(ScheduleError, match="never fires"):
        rule.between(_at(2030, 1, 1), _at(2031, 1, 1))


async def test_the_scheduler_skips_a_never_firing_schedule_and_fires_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # stored before the validator refused such schedules: the scheduler must not trip over it
    workflow = Workflow.model_validate(
        {
            "name": "digest",
            "triggers": {"schedule": [{"cron": "0 0 30 2 *"}, {"cron": "0 * * * *"}]},
            "steps": [{"id": "note", "action": "core.log", "with": {"message": "hi"}}],
        }
    )
    target = TriggeredWorkflow("wf_1", workflow)
    clock = ManualClock(_at(2030, 1, 7, 8, 30))
    journal = Journal.open(tmp_path / "journal.db")
    engine = Engine(Catalog([]), journal, ScriptedInvoker(), clock=clock)
    store = FireStore.open(tmp_path / "journal.db")
    scheduler = Scheduler(store, lambda: [target], EngineTarget(engine), clock=clock, grace_s=60)
    try:
        with caplog.at_level(logging.WARNING, logger="overture.triggers"):
            assert await scheduler.tick() == []
            clock.set_time(_at(2030, 1, 7, 9, 0, 5))
            fired = await scheduler.tick()
        assert [f.scheduled_at for f in fired] == [_at(2030, 1, 7, 9, 0)]
        assert "never fires" in caplog.text
        assert scheduler.next_due() == _at(2030, 1, 7, 10, 0)  # the other schedule's next fire
        assert next(u.times for u in scheduler.upcoming(target)) == []
    finally:
        await scheduler.stop()
        await engine.close()
        store.close()
        journal.close()


# -- 2. follow-up hints keep the options given; 3. invokers checked first; 4. core-only, no catalog

CORE_FLOW = """\
name: core-flow
""" + APPROVAL_STEPS

PLAN_ONLY_CATALOG = """\
actions:
  - name: crm.create_account
    input: {type: object, properties: {email: {type: string}}}
    compensation: crm.delete_account
  - name: crm.delete_account
    input: {type: object}
  - name: chat.post
    input: {type: object}
    invoke: {kind: python, callable: "json:dumps"}
"""

NEEDS_INVOKERS = """\
name: needs-invokers
steps:
  - id: account
    action: crm.create_account
    with: {email: a@b.example}
    compensate: {action: crm.delete_account}
  - {id: tell, action: chat.post, needs: [account]}
  - {id: log, action: core.log, needs: [tell], with: {message: hi}}
"""


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_a_core_only_workflow_validates_and_runs_without_a_catalog(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(CORE_FLOW)
    code, out, err = cli("validate", flow)
    assert (code, out.strip()) == (0, f"{flow}: valid"), err
    code, out, err = cli("run", flow, "--data-dir", tmp_path / "d")
    assert code == 0, err
    assert "waiting for approval of `ok`" in out
    # a workflow that calls a catalog action still says it needs a catalog, naming the step
    other = tmp_path / "other.yaml"
    other.write_text(NEEDS_INVOKERS)
    code, _, err = cli("validate", other)
    assert code == 2
    assert err.strip() == (
        "error: no catalog given: step `account` calls `crm.create_account`, which is "
        "not a core.* action; pass --catalog FILE (or set OVERTURE_CATALOG)"
    )


def test_the_hints_a_run_prints_carry_the_data_dir_and_work_when_followed(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(CORE_FLOW)
    data = tmp_path / "my data"  # a space: the hint quotes it for the shell
    code, out, err = cli("run", flow, "--data-dir", data)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    hint = next(line.strip() for line in out.splitlines() if line.strip().startswith("overture approve"))
    assert hint == f"overture approve {run_id} ok --data-dir '{data}' [--reject] [--comment TEXT]"
    # following it (without the optional parts) finishes the run: a core-only run needs no catalog
    import shlex

    words = shlex.split(hint.removesuffix(" [--reject] [--comment TEXT]"))
    code, out, err = cli(*words[1:])
    assert code == 0, err
    assert f"run {run_id}: succeeded" in out


def test_an_unknown_run_names_the_runs_list_command_with_the_options_given(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(CORE_FLOW)
    data = tmp_path / "d"
    assert cli("run", flow, "--data-dir", data)[0] == 0
    for command in (["runs", "show", "nope"], ["approve", "nope", "ok"], ["cancel", "nope"]):
        code, _, err = cli(*command, "--data-dir", data)
        assert code == 2
        assert err.strip() == f"error: no run `nope`; `overture runs list --data-dir {data}` shows the runs"
    # given by the environment, the option is not repeated: the next command reads it there too
    code, _, err = cli("runs", "show", "nope", env={"OVERTURE_DATA_DIR": str(data)})
    assert err.strip() == "error: no run `nope`; `overture runs list` shows the runs"


def test_a_recorded_approval_names_resume_with_the_options_given(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(PLAN_ONLY_CATALOG)
    flow = tmp_path / "flow.yaml"
    flow.write_text(CORE_FLOW + "  - {id: tell, action: chat.post, needs: [log]}\n")
    data = tmp_path / "d"
    code, out, err = cli("run", flow, "--catalog", catalog, "--data-dir", data)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    assert f"overture approve {run_id} ok --data-dir {data} --catalog {catalog}" in out
    code, out, err = cli("approve", run_id, "ok", "--data-dir", data)  # no catalog: recorded only
    assert code == 0, err
    resume = f"overture resume --data-dir {data} --catalog CATALOG"
    assert out.strip() == f"recorded for run {run_id}; `{resume}` continues it"


def test_a_run_whose_actions_cannot_be_called_is_refused_before_it_is_recorded(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(PLAN_ONLY_CATALOG)
    flow = tmp_path / "flow.yaml"
    flow.write_text(NEEDS_INVOKERS)
    data = tmp_path / "d"
    code, out, err = cli("run", flow, "--catalog", catalog, "--data-dir", data)
    assert code == 2, out
    line = err.strip()
    assert "\n" not in line
    assert line.startswith(f"error: {flow}: cannot run: 1 step calls actions with no `invoke:` block")
    assert "step `account` (crm.create_account, undo crm.delete_account)" in line
    assert "chat.post" not in line and "core.log" not in line
    assert "Add an `invoke:` block" in line and "Action invokers" in line
    assert not data.exists()  # nothing recorded, not even an empty journal
    code, out, _ = cli("runs", "list", "--data-dir", data, "--json")
    assert (code, out.strip()) == (0, "[]")


# -- 5. an approval answers with the state the run is in once the decision took effect ----------


class _Slow:
    """An action that takes a while: the run is visibly `running` while it is in flight."""

    async def invoke(self, call: Any) -> dict[str, Any]:
        import asyncio

        await asyncio.sleep(1.0)
        return {}


def test_an_approval_answers_with_the_run_state_after_the_decision(tmp_path: Path) -> None:
    import time

    import httpx
    from api_support import served_app

    document = {
        "name": "gated",
        "steps": [
            {"id": "ok", "action": "core.approval", "with": {"prompt": "go on?"}},
            {"id": "work", "action": "slow.act", "needs": ["ok"]},
        ],
    }
    with (
        served_app(tmp_path, overrides={"slow.act": _Slow()}) as served,
        httpx.Client(base_url=served.url(), headers=served.headers, timeout=30) as client,
    ):
        r = client.post("/v1/catalogs", json={"name": "slow", "actions": [{"name": "slow.act"}]})
        assert r.status_code == 201, r.text
        r = client.post("/v1/workflows", json={"document": document, "catalog_id": r.json()["id"]})
        assert r.status_code == 201, r.text
        r = client.post("/v1/runs", json={"workflow_id": r.json()["id"], "inputs": {}})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        deadline = time.monotonic() + 10
        while client.get(f"/v1/runs/{run_id}").json()["state"] != "waiting":
            assert time.monotonic() < deadline, "the run never waited for its approval"
            time.sleep(0.02)
        r = client.post(f"/v1/runs/{run_id}/approvals/ok", json={"approved": True})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "running"  # was "waiting": the state before the run went on


# -- 7. `worker submit --wait` on a run that pauses for an approval -----------------------------


@pytest.mark.parametrize("approvers", ["", ", approvers: [manager]"])
def test_worker_submit_wait_ends_at_an_approval_with_the_approve_command(
    tmp_path: Path, approvers: str
) -> None:
    import signal

    from test_workers import database as _unused  # noqa: F401 - the same throwaway database
    from test_workers import files, start_worker, stop, wait_ready
    from workers_support import postgres_reason, scratch_database

    if postgres_reason():
        pytest.skip(postgres_reason() or "")
    catalog, _ = files(tmp_path)
    flow = tmp_path / "gated.yaml"
    flow.write_text(
        f'name: gated\nsteps:\n  - {{id: ok, action: core.approval, with: {{prompt: "go on?"{approvers}}}}}\n'
        "  - {id: b, action: w.work, needs: [ok], with: {label: b}}\n"
    )
    with scratch_database() as url:
        worker = start_worker(url, tmp_path, "consistency-worker")
        try:
            wait_ready({"consistency-worker": worker}, tmp_path)
            code, out, err = cli(
                "worker",
                "submit",
                flow,
                "--database-url",
                url,
                "--catalog",
                catalog,
                "--wait",
                "60",
                env={"PYTHONPATH": str(Path(__file__).parent)},
            )
            assert code == 0, err  # was 1 with {"waiting": 1}: a paused run is a normal outcome
            run_id = out.split()[0]
            lines = err.strip().splitlines()
            assert lines[0] == '{"waiting": 1}'
            command = f"overture approve {run_id} ok --database-url {url} --catalog {catalog}"
            if approvers:
                # `overture approve` refuses a --by that is not an approver: the line asks for one
                command += " --by NAME"
                assert lines[2] == "  may be decided by: manager"
            assert lines[1] == f"run {run_id} is waiting for approval of `ok`: {command}"
            # following it finishes the run
            code, out, err = cli(
                *lines[1].split(": ", 1)[1].replace("NAME", "manager").split()[1:],
                env={"PYTHONPATH": str(Path(__file__).parent)},
            )
            assert code == 0, err
            assert f"run {run_id}: succeeded" in out
        finally:
            assert stop([worker]) == [0]
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)


# -- 8. optimize takes --data-dir / --database-url like every other command ---------------------


def _history(journal_path: Path) -> None:
    import asyncio

    from test_optimizer_cli import _run_history

    journal = Journal.open(journal_path)
    try:
        asyncio.run(_run_history(journal, 6))
    finally:
        journal.close()


def test_optimize_takes_the_data_dir_and_database_url_of_the_other_commands(tmp_path: Path) -> None:
    import json

    from test_optimizer_cli import DOC

    from workflow.loader import save_workflow

    data = tmp_path / "data"
    data.mkdir()
    _history(data / "journal.db")
    doc = tmp_path / "nightly.yaml"
    save_workflow(Workflow.model_validate(DOC), doc)

    code, out, err = cli("optimize", "train", "--data-dir", data)
    assert code == 0, err
    assert "trained v1 on 18 attempts" in out and (data / "models" / "v1.joblib").exists()
    code, out, err = cli("optimize", "suggest", doc, "--data-dir", data)
    assert code == 0, err
    assert f"accept one with: overture optimize accept {doc} PROPOSAL_ID --data-dir {data}" in out
    proposals = json.loads((data / "proposals.json").read_text())["proposals"]
    assert proposals
    code, out, err = cli("optimize", "accept", doc, proposals[0]["id"], "--data-dir", data)
    assert code == 0, err
    assert "now version 2" in out
    code, _, err = cli("optimize", "accept", doc, "pa-nope", "--data-dir", data)
    assert code == 2
    assert f"`overture optimize suggest {doc} --data-dir {data}` lists the current ones" in err

    # the journal by URL (as on PostgreSQL): models still go to the data folder
    elsewhere = tmp_path / "elsewhere"
    code, out, err = cli(
        "optimize",
        "train",
        "--database-url",
        f"sqlite:///{data / 'journal.db'}",
        env={"OVERTURE_DATA_DIR": str(elsewhere)},
    )
    assert code == 0, err
    assert (elsewhere / "models" / "v1.joblib").exists()
    # --journal still works (scripts use it) and --help shows the options the others have
    code, out, err = cli("optimize", "train", "--journal", data / "journal.db", "--data-dir", elsewhere)
    assert code == 0, err
    assert (elsewhere / "models" / "v2.joblib").exists()
    code, out, _ = cli("optimize", "train", "--help", env={"COLUMNS": "200"})
    assert "--data-dir" in out and "--database-url" in out and "--journal" not in out
    # a data folder where nothing ran says which option to check
    code, _, err = cli("optimize", "train", "--data-dir", tmp_path / "typo")
    assert code == 2
    assert err.strip().startswith(
        f"error: no journal at {tmp_path / 'typo' / 'journal.db'}: nothing has run there; check --data-dir"
    )


# -- 6. `overture serve` says where the journal is -----------------------------------------------


def _serve_banner(*args: str | Path) -> str:
    """The first line `overture serve` prints (then it is stopped)."""
    import signal
    import time

    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OVERTURE_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "serve",
            "--port",
            "0",
            *(str(a) for a in args),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if line.startswith(("serving on", "error:")) or not line:
                return line.strip()
        raise AssertionError("overture serve printed no banner")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_prints_the_journal_s_url_with_the_password_masked(tmp_path: Path) -> None:
    from workers_support import postgres_reason, scratch_database

    data = tmp_path / "d"
    line = _serve_banner("--data-dir", data)
    assert line.endswith(f"data: {data} (journal.db, overture.db, models, proposals))"), line
    if postgres_reason():
        pytest.skip(postgres_reason() or "")
    with scratch_database() as url:
        secret_url = url.replace("postgres@", "postgres:s3cret@")
        line = _serve_banner("--data-dir", data, "--database-url", secret_url)
    masked = url.replace("postgres@", "postgres:***@")
    assert line.endswith(f"journal and service tables: {masked}; data folder {data}: models, proposals)"), (
        line
    )
    assert "s3cret" not in line


def test_trigger_and_token_hints_carry_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for command in (["triggers", "fires", "wf_nope"], ["triggers", "pause", "wf_nope"]):
        code, _, err = cli(*command, "--data-dir", data)
        assert code == 2
        assert err.strip() == (
            f"error: no workflow `wf_nope` with triggers; `overture triggers list --data-dir "
            f"{data}` shows them"
        )
    code, _, err = cli("token", "revoke", "nope", "--data-dir", data)
    assert code == 1
    assert err.strip() == (
        f"error: no active token with id or name `nope`; `overture token list --data-dir {data}` shows them"
    )
    code, out, _ = cli("token", "list", "--data-dir", data)
    assert out.strip() == f"no tokens; make one with `overture token create --data-dir {data} --name NAME`"


def test_resume_needs_a_catalog_only_for_runs_that_call_catalog_actions(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(PLAN_ONLY_CATALOG)
    core, other = tmp_path / "core.yaml", tmp_path / "other.yaml"
    core.write_text(CORE_FLOW)
    other.write_text(
        CORE_FLOW.replace("core-flow", "other-flow") + "  - {id: tell, action: chat.post, needs: [log]}\n"
    )
    data = tmp_path / "d"
    assert cli("run", core, "--data-dir", data)[0] == 0
    code, out, err = cli("resume", "--data-dir", data)  # waiting for its approval: it stays so
    assert code == 0, err
    assert "waiting for approval of `ok`" in out
    assert cli("run", other, "--catalog", catalog, "--data-dir", data)[0] == 0
    code, _, err = cli("resume", "--data-dir", data)
    assert code == 2
    assert err.strip().startswith("error: no catalog given: run ")
    assert "(other-flow) calls actions that are not core.*; pass --catalog FILE" in err
