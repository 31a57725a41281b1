"""`overture approve` follows a step's `approvers` (the engine's rule: trimmed, case-insensitive):
`--by` (default $USER) must name one of them, else one error line, a non-zero exit and the run still
waiting; then a listed approver decides it. The real console entry point, in a subprocess."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from cli_support import cli, error_line

from runtime import Engine, Journal
from runtime.testing import ScriptedInvoker
from workflow.catalog import Catalog

FLOW = """\
name: gated
steps:
  - id: ok
    action: core.approval
    with: {prompt: "Go ahead?", approvers: [Ann, finance-leads]}
  - id: log
    action: core.log
    needs: [ok]
    with: {message: "done"}
"""

AS_MALLORY = {"USER": "mallory", "LOGNAME": "mallory"}  # getpass reads these first


def shown(data: Path, run_id: str) -> dict[str, Any]:
    code, out, err = cli("runs", "show", run_id, "--json", "--data-dir", data)
    assert code == 0, err
    return dict(json.loads(out))


def test_approve_refuses_someone_not_listed_and_the_run_waits_for_a_listed_approver(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    data = tmp_path / "data"
    code, out, err = cli("run", tmp_path / "flow.yaml", "--data-dir", data, env=AS_MALLORY)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    assert "may be decided by: Ann, finance-leads" in out
    assert f"approve {run_id} ok" in out and "--by NAME" in out

    # no --by: $USER decides, and mallory is not listed
    code, out, err = cli("approve", run_id, "ok", "--data-dir", data, env=AS_MALLORY)
    assert code == 2 and out == ""
    line = error_line(err)
    assert line == err.strip()  # one line
    assert line.startswith("error: step `ok` of run ") and "may be decided only by Ann, finance-leads" in line
    assert "`mallory` ($USER, as no --by was given)" in line and "still waiting" in line

    code, _, err = cli("approve", run_id, "ok", "--by", "Anne", "--reject", "--data-dir", data)
    assert code == 2 and "the decider is `Anne` (--by)" in error_line(err)
    code, _, err = cli("approve", run_id, "ok", "--by", "  ", "--data-dir", data)
    assert code == 2 and "--by is empty" in error_line(err)

    run = shown(data, run_id)
    assert run["state"] == "waiting"
    assert [(a["step"], a["decided_at"], a["by"]) for a in run["approvals"]] == [("ok", None, None)]
    assert run["approvals"][0]["approvers"] == ["Ann", "finance-leads"]
    code, out, err = cli("runs", "show", run_id, "--data-dir", data)
    assert code == 0, err
    waiting = out.splitlines()
    at = next(i for i, line in enumerate(waiting) if "waiting for approval of `ok`: Go ahead?" in line)
    assert waiting[at + 1].strip() == "may be decided by: Ann, finance-leads"

    code, out, err = cli("approve", run_id, "ok", "--by", " ann ", "-m", "fine", "--data-dir", data)
    assert code == 0, err
    assert "succeeded" in out
    run = shown(data, run_id)
    assert run["state"] == "succeeded"
    [approval] = run["approvals"]
    assert (approval["approved"], approval["by"], approval["comment"]) == (True, "ann", "fine")
    assert approval["as"] == "Ann"  # the listed name that matched, as the step lists it
    code, out, err = cli("runs", "show", run_id, "--data-dir", data)
    assert code == 0, err
    assert "ok: approved by ann (fine)" in out  # its own name again is not repeated


def test_runs_show_names_the_role_a_decision_was_made_as(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW.replace("[Ann, finance-leads]", "[manager]"))
    data = tmp_path / "data"
    code, _, err = cli("run", tmp_path / "flow.yaml", "--data-dir", data)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    # decided as the API decides for a token with a role (the CLI's --by is a name only)
    journal = Journal.open(data / "journal.db")
    try:
        asyncio.run(
            Engine(Catalog(), journal, ScriptedInvoker({})).approve(
                run_id, "ok", True, "alice", "budgeted", roles=["Manager"], drive=False
            )
        )
    finally:
        journal.close()
    code, out, err = cli("runs", "show", run_id, "--data-dir", data)
    assert code == 0, err
    assert "ok: approved by alice (as manager) (budgeted)" in out
    assert shown(data, run_id)["approvals"][0]["as"] == "manager"


def test_a_step_without_approvers_is_decided_by_whoever_runs_approve(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW.replace(", approvers: [Ann, finance-leads]", ""))
    data = tmp_path / "data"
    code, out, err = cli("run", tmp_path / "flow.yaml", "--data-dir", data)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    assert "may be decided by" not in out and "--by NAME" not in out
    code, out, err = cli("approve", run_id, "ok", "--data-dir", data, env=AS_MALLORY)
    assert code == 0, err
    assert shown(data, run_id)["approvals"][0]["by"] == "mallory"


def test_runs_show_names_each_waiting_items_own_approvers(tmp_path: Path) -> None:
    per_item = FLOW.replace(
        "approvers: [Ann, finance-leads]}", 'approvers: "${{ item }}"}\n    for_each: [ann, bob]'
    )
    (tmp_path / "flow.yaml").write_text(per_item)
    data = tmp_path / "data"
    code, _, err = cli("run", tmp_path / "flow.yaml", "--data-dir", data)
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    code, _, err = cli("approve", run_id, "ok", "--by", "ann", "--data-dir", data)
    assert code == 2  # bob's item is not ann's to decide
    code, out, err = cli("runs", "show", run_id, "--data-dir", data)
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert (
        lines[lines.index("waiting for approval of `ok` (item 0): Go ahead?") + 1] == "may be decided by: ann"
    )
    assert (
        lines[lines.index("waiting for approval of `ok` (item 1): Go ahead?") + 1] == "may be decided by: bob"
    )
