"""`overture edit` and `overture explain` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from llm_support import TEST_CATALOG, FakeOpenAI, completion, wire_plan, wire_step
from typer.testing import CliRunner

from service.cli import app

REPO = Path(__file__).resolve().parents[1]
DOC = {
    "name": "invoice-charge",
    "steps": [
        {"id": "invoice", "action": "billing.create_invoice", "with": {"customer_id": "c1", "amount": 100}},
        {"id": "charge", "action": "payments.charge_card", "needs": ["invoice"], "with": {"amount": 100}},
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(TEST_CATALOG), encoding="utf-8")
    document = tmp_path / "flow.yaml"
    document.write_text(yaml.safe_dump(DOC, sort_keys=False), encoding="utf-8")
    return catalog, document


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_edit_offline_prints_the_document_and_the_diff(files: tuple[Path, Path]) -> None:
    catalog, document = files
    code, out, err = run("edit", str(document), "retry the charge up to 3 times", "-c", str(catalog),
                         "--planner", "offline")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["steps"][1]["retry"] == {"max_attempts": 4}
    assert "edited by the offline planner: ~1 changed step" in err
    assert "retry.max_attempts: (none) → 4" in err


def test_edit_json_report(files: tuple[Path, Path]) -> None:
    catalog, document = files
    code, out, _ = run("edit", str(document), "also post in chat after the charge", "-c", str(catalog),
                       "--planner", "offline", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["planner"] == "offline"
    assert report["diff"]["steps_added"][0]["action"] == "chat.post_message"
    assert report["workflow"]["steps"][-1]["needs"] == ["charge"]


def test_edit_in_place_and_output_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    catalog, document = files
    target = tmp_path / "out.json"
    code, out, err = run("edit", str(document), "remove the charge", "-c", str(catalog), "-p", "offline",
                         "-o", str(target))
    assert code == 0 and out == "" and f"wrote {target}" in err
    assert [s["id"] for s in json.loads(target.read_text())["steps"]] == ["invoice"]
    code, _, _ = run("edit", str(document), "remove the charge", "-c", str(catalog), "-p", "offline", "-i")
    assert code == 0
    assert [s["id"] for s in yaml.safe_load(document.read_text())["steps"]] == ["invoice"]


def test_edit_with_the_llm(files: tuple[Path, Path], server: FakeOpenAI) -> None:
    catalog, document = files
    server.script(completion(wire_plan(
        wire_step("invoice", "billing.create_invoice", with_={"customer_id": "c1", "amount": 100}),
        wire_step("charge", "payments.charge_card", needs=["invoice"], with_={"amount": 100}),
        wire_step("text", "sms.send_message", needs=["charge"], with_={"to": "+15550100", "body": "paid"}),
    )))
    env = {"OPENAI_BASE_URL": server.base_url, "OVERTURE_LLM_MAX_RETRIES": "0"}
    code, out, err = run("edit", str(document), "also text the customer once the invoice is paid",
                         "-c", str(catalog), "--planner", "llm", "-m", "my-model", env=env)
    assert code == 0, err
    assert "edited by the llm planner: +1 step, +1 edge" in err
    assert "+ step text (sms.send_message)" in err and "+ edge charge → text" in err
    assert yaml.safe_load(out)["metadata"]["model"] == "my-model"
    assert server.chat_requests[0].body["model"] == "my-model"


def test_explain_offline_and_with_the_llm(files: tuple[Path, Path], server: FakeOpenAI) -> None:
    catalog, document = files
    code, out, _ = run("explain", str(document), "-c", str(catalog), "-p", "offline")
    assert code == 0 and "invoice" in out.lower()

    server.script(completion("The invoice is created, then the card is charged."))
    env = {"OPENAI_BASE_URL": server.base_url}
    code, out, _ = run("explain", str(document), "-c", str(catalog), "--json", env=env)
    assert code == 0
    assert json.loads(out) == {"text": "The invoice is created, then the card is charged.", "planner": "llm",
                               "warnings": []}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60)


def test_bad_input_is_one_clear_line(files: tuple[Path, Path]) -> None:
    catalog, document = files
    done = _cli("edit", str(document), "frobnicate the wombat", "-c", str(catalog), "-p", "offline")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: cannot apply “frobnicate the wombat”: no catalog action matches “frobnicate the wombat”"]
    done = _cli("edit", str(document), "remove the charge", "-c", str(catalog), "-p", "llm")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: no LLM endpoint configured")


def test_plan_command_with_the_llm_planner(files: tuple[Path, Path], server: FakeOpenAI) -> None:
    catalog, _ = files
    server.script(completion(wire_plan(
        wire_step("invoice", "billing.create_invoice", with_={"customer_id": "c1", "amount": 100}),
    )))
    env = {"OPENAI_BASE_URL": server.base_url, "OVERTURE_MODEL": "m1"}
    code, out, err = run("plan", "-c", str(catalog), "-f", "json", "--planner", "llm", "Invoice c1 for $1",
                         env=env)
    assert code == 0, err
    document = json.loads(out)
    assert document["steps"][0]["action"] == "billing.create_invoice"
    assert document["metadata"]["planner"] == "llm" and document["metadata"]["model"] == "m1"
