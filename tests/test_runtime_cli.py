"""`overture run / runs / approve / cancel / resume` through the real entry point, on a real
journal in a temporary data directory, calling Python-callable actions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

CATALOG = """
actions:
  - name: crm.create
    input: {type: object, properties: {email: {type: string}}, required: [email]}
    output: {type: object, properties: {account_id: {type: string}}}
    compensation: crm.delete
    invoke: {kind: python, callable: "runtime_support:cli_create"}
  - name: crm.delete
    input: {type: object, properties: {account_id: {type: string}}, required: [account_id]}
    invoke: {kind: python, callable: "runtime_support:cli_delete"}
  - name: x.boom
    invoke: {kind: python, callable: "runtime_support:cli_boom"}
"""

APPROVAL_FLOW = """
name: gated
inputs: {type: object, properties: {email: {type: string}}, required: [email]}
steps:
  - id: create
    action: crm.create
    with: {email: "${{ inputs.email }}"}
    compensate: {action: crm.delete}
  - id: ok
    action: core.approval
    needs: [create]
    with: {prompt: "continue?"}
  - id: note
    action: core.log
    needs: [ok]
    with: {message: "done for ${{ steps.create.output.account_id }}"}
"""

FAILING_FLOW = """
name: failing
steps:
  - id: create
    action: crm.create
    with: {email: "zed@x.io"}
    compensate: {action: crm.delete}
  - id: boom
    action: x.boom
    needs: [create]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "gated.yaml").write_text(APPROVAL_FLOW)
    (tmp_path / "failing.yaml").write_text(FAILING_FLOW)
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OVERTURE_DATABASE_URL", raising=False)
    monkeypatch.delenv("OVERTURE_CATALOG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def overture(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    from service.cli import main

    monkeypatch.setattr(sys, "argv", ["overture", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def run_ids(capsys: Any, monkeypatch: Any) -> list[dict[str, Any]]:
    code, out, _ = overture(capsys, monkeypatch, "runs", "list", "--json")
    assert code == 0
    return list(json.loads(out))


def test_run_pauses_for_approval_then_approve_finishes_it(
    workdir: Path, capsys: Any, monkeypatch: Any
) -> None:
    code, out, _ = overture(
        capsys, monkeypatch, "run", "gated.yaml", "-c", "catalog.yaml", "-i", "email=ann@x.io"
    )
    assert code == 0
    assert "waiting" in out and "overture approve" in out
    [run] = run_ids(capsys, monkeypatch)
    assert run["state"] == "waiting"

    code, out, _ = overture(
        capsys,
        monkeypatch,
        "approve",
        run["id"][:10],
        "ok",
        "--comment",
        "fine by me",
        "--by",
        "ann",
        "-c",
        "catalog.yaml",
    )
    assert code == 0 and "succeeded" in out

    code, out, _ = overture(capsys, monkeypatch, "runs", "show", run["id"], "--json")
    shown = json.loads(out)
    assert shown["state"] == "succeeded"
    assert [s["state"] for s in shown["steps"]] == ["succeeded"] * 3
    assert shown["approvals"][0]["by"] == "ann" and shown["approvals"][0]["comment"] == "fine by me"
    code, out, _ = overture(capsys, monkeypatch, "runs", "show", run["id"])
    assert code == 0 and "approved by ann (fine by me)" in out and "crm.create" in out


def test_a_failing_run_exits_1_and_reports_its_compensation(
    workdir: Path, capsys: Any, monkeypatch: Any
) -> None:
    code, out, _ = overture(capsys, monkeypatch, "run", "failing.yaml", "-c", "catalog.yaml", "--watch")
    assert code == 1
    assert "failed" in out and "the service said no" in out
    assert "compensation complete: undone create" in out
    [run] = run_ids(capsys, monkeypatch)
    code, out, _ = overture(capsys, monkeypatch, "runs", "show", run["id"], "--json")
    undo = json.loads(out)["steps"][0]["undo"]
    assert undo == [{"iteration": -1, "state": "undone", "action": "crm.delete", "error": None}]


def test_cancel_is_recorded_and_resume_compensates(workdir: Path, capsys: Any, monkeypatch: Any) -> None:
    overture(capsys, monkeypatch, "run", "gated.yaml", "-c", "catalog.yaml", "-i", "email=bo@x.io")
    [run] = run_ids(capsys, monkeypatch)
    code, out, _ = overture(capsys, monkeypatch, "cancel", run["id"])
    assert code == 0 and "recorded" in out
    code, out, _ = overture(capsys, monkeypatch, "resume", "-c", "catalog.yaml")
    assert code == 1 and "cancelled" in out and "undone create" in out
    code, out, _ = overture(capsys, monkeypatch, "resume", "-c", "catalog.yaml")
    assert code == 0 and "no unfinished runs" in out
    code, _, err = overture(capsys, monkeypatch, "cancel", run["id"])
    assert code != 0 and err.count("\n") == 1 and "already cancelled" in err


def test_usage_errors_are_one_line(workdir: Path, capsys: Any, monkeypatch: Any) -> None:
    code, _, err = overture(capsys, monkeypatch, "run", "gated.yaml", "-c", "catalog.yaml")
    assert code == 2 and err.strip() == "error: input (inputs): 'email' is a required property"
    code, _, err = overture(capsys, monkeypatch, "run", "gated.yaml", "-c", "catalog.yaml", "-i", "oops")
    assert code == 2 and err.strip() == "error: --input `oops`: expected key=value"
    code, _, err = overture(capsys, monkeypatch, "runs", "show", "nope")
    assert code == 2 and err.strip() == "error: no run `nope`; `overture runs list` shows the runs"
    code, _, err = overture(capsys, monkeypatch, "approve", "nope", "ok")
    assert code == 2 and "no run `nope`" in err
    code, _, err = overture(capsys, monkeypatch, "runs", "list", "--state", "sleeping")
    assert code == 2 and "unknown state `sleeping`" in err


async def test_a_run_nothing_can_call_is_refused_in_the_words_the_api_uses(tmp_path: Path) -> None:
    # one workflow, one catalog whose charge and undo have no `invoke:` block: `overture run`'s
    # line carries POST /v1/runs's detail word for word (runtime.invokers.uncallable.cannot_run)
    from api_support import CATALOG as API_CATALOG
    from api_support import WORKFLOW, api_client
    from cli_support import cli, error_line

    actions = [dict(a) for a in API_CATALOG["actions"]]
    for a in actions:
        if a["name"] in ("billing.charge_card", "crm.delete_account"):
            del a["invoke"]
    (tmp_path / "catalog.yaml").write_text(json.dumps({"actions": actions}))
    (tmp_path / "flow.yaml").write_text(json.dumps(WORKFLOW))
    data = tmp_path / "data"
    code, out, err = cli(
        "run", tmp_path / "flow.yaml", "--catalog", tmp_path / "catalog.yaml", "--data-dir", data
    )
    assert (code, out) == (2, "")
    line = error_line(err)
    assert not data.exists()  # nothing recorded

    async with api_client(tmp_path / "api", overrides={}) as api:
        catalog_id = await api.upload_catalog({"actions": actions})
        workflow_id = await api.create_workflow(WORKFLOW, catalog_id=catalog_id)
        r = await api.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": {}})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("cannot run: 2 steps call actions with no `invoke:` block")
    assert detail.endswith("; nothing was recorded")
    assert line.startswith(f"error: {tmp_path / 'flow.yaml'}: {detail}. Add an `invoke:` block")
    assert "--catalog" in line  # the CLI's own fix: a catalog file, not an upload
