"""`overture demo` end to end: real demo services over HTTP, a real SMTP server, the real service
and engine, the offline planner; and the demo services' own behaviour (latency, failures,
idempotency)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.demo.catalog import DEMO_INPUTS, REQUEST, demo_catalog, inputs_for
from service.demo.runner import DemoOptions, run_demo
from service.demo.server_thread import ServerThread
from service.demo.services import DemoState, create_services_app
from workflow.loader import catalog_from_data

REPO = Path(__file__).resolve().parents[1]


def _quiet(_: str) -> None:
    pass


def test_demo_runs_to_success_then_fails_and_compensates(tmp_path: Path) -> None:
    lines: list[str] = []
    result, _ = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0.3),
                         lines.append)
    first, second = result.runs

    assert first.state == "succeeded", lines
    assert set(first.steps.values()) == {"succeeded"}
    assert second.state == "failed", lines
    assert second.error is not None and second.error["type"] == "http_402"
    assert second.compensation is not None and second.compensation["status"] == "complete"
    assert len(second.compensation["undone"]) == 2

    # the services saw the undo calls, after the billing refusal, for the records run 2 created
    undo = [c for c in result.state.calls if c.is_undo]
    assert {(c.service, c.operation) for c in undo} == {("crm", "delete_account"),
                                                        ("provisioning", "delete_account")}
    refusal = next(c for c in result.state.calls if c.service == "billing" and c.status == 402)
    assert all(c.at >= refusal.at for c in undo)
    created_in_run_2 = {c.path for c in undo}
    assert all(path.rsplit("/", 1)[-1] not in result.state.records["crm"] for path in created_in_run_2
               if path.startswith("/crm/"))
    # every forward call carried the engine's Idempotency-Key
    assert all(c.idempotency_key for c in result.state.calls)

    # the onboarding email went through the real SMTP server, once per run
    inbox = result.mail.inbox
    assert [m.recipients for m in inbox] == [[DEMO_INPUTS["email"]], ["admin@globex.example"]]
    assert "Welcome" in inbox[0].subject and "Acme Robotics" in inbox[0].body
    assert inbox[0].headers.get("X-Overture-Idempotency-Key")

    text = "\n".join(lines)
    assert "compensation complete" in text and "undone" in text


def test_demo_with_failure_rate_recovers_by_retrying(tmp_path: Path) -> None:
    result, _ = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0.1,
                                     failure_rate=0.25, seed=11), _quiet)
    first, second = result.runs
    assert first.state == "succeeded"
    assert second.state == "failed" and (second.compensation or {}).get("status") == "complete"
    assert any(c.status == 503 for c in result.state.calls), "the failure rate injected no 503"


def test_overture_demo_command_no_serve(tmp_path: Path) -> None:
    env = {**os.environ, "OVERTURE_DATA_DIR": str(tmp_path / "unused")}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--no-serve", "--data-dir", str(tmp_path / "d"),
         "--latency-scale", "0.2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The demo went as planned" in done.stdout
    assert "succeeded" in done.stdout and "compensation complete" in done.stdout
    assert (tmp_path / "d" / "demo-catalog.yaml").exists()


def test_overture_demo_rejects_unknown_service(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--no-serve", "--data-dir", str(tmp_path),
         "--fail", "payroll"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "error: --fail takes crm, billing, provisioning, chat; got payroll" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_catalog_loads_and_plans_the_request() -> None:
    from planner.offline import OfflinePlanner

    catalog = catalog_from_data(demo_catalog("http://127.0.0.1:9", "127.0.0.1", 25))
    plan = OfflinePlanner(catalog).plan(REQUEST)
    actions = [s.action for s in plan.workflow.steps]
    for needed in ("crm.update_account", "email.send_onboarding_sequence", "provisioning.provision_account",
                   "chat.notify_team", "billing.setup_billing"):
        assert needed in actions
    compensated = {s.action for s in plan.workflow.steps if s.compensate}
    assert {"crm.update_account", "provisioning.provision_account"} <= compensated
    # every input the plan asks for gets a value
    inputs = inputs_for(plan.workflow.inputs, DEMO_INPUTS)
    assert set((plan.workflow.inputs or {}).get("required", [])) <= set(inputs)


def test_inputs_for_matches_field_names_and_step_prefixed_names() -> None:
    schema = {"properties": {"email": {}, "setup_billing_email": {}, "to": {}, "channel": {},
                             "provision_account_company": {}, "unknown_thing": {}}}
    inputs = inputs_for(schema, DEMO_INPUTS)
    assert inputs["setup_billing_email"] == DEMO_INPUTS["email"] == inputs["to"]
    assert inputs["provision_account_company"] == "Acme Robotics"
    assert inputs["channel"] == "#customer-success"
    assert "unknown_thing" not in inputs


@pytest.fixture
def services() -> tuple[DemoState, str]:
    state = DemoState(latency_scale=0.0, seed=1)
    with ServerThread(create_services_app(state)) as server:
        yield state, server.url


def test_services_replay_a_repeated_idempotency_key(services: tuple[DemoState, str]) -> None:
    state, url = services
    headers = {"Idempotency-Key": "run-1:update_crm"}
    first = httpx.post(f"{url}/crm/accounts", json={"company": "Acme"}, headers=headers)
    again = httpx.post(f"{url}/crm/accounts", json={"company": "Acme"}, headers=headers)
    other = httpx.post(f"{url}/crm/accounts", json={"company": "Acme"}, headers={"Idempotency-Key": "x"})
    assert first.json() == again.json() != other.json()
    assert len(state.records["crm"]) == 2
    assert [c.replayed for c in state.calls_to("crm")] == [False, True, False]


def test_services_fail_as_told_and_undo_still_works(services: tuple[DemoState, str]) -> None:
    state, url = services
    customer = httpx.post(f"{url}/billing/customers", json={"email": "a@b.example"}).json()["customer_id"]
    state.set_failing({"billing"})
    refused = httpx.post(f"{url}/billing/customers", json={"email": "a@b.example"})
    assert refused.status_code == 402 and "declined" in refused.json()["error"]
    undo = httpx.delete(f"{url}/billing/customers/{customer}")
    assert undo.status_code == 200 and undo.json() == {"cancelled": True, "existed": True}
    # an undo is safe to repeat
    assert httpx.delete(f"{url}/billing/customers/{customer}").json()["existed"] is False
    with pytest.raises(ValueError, match="unknown demo service"):
        state.set_failing({"payroll"})


def test_services_failure_rate_answers_503(services: tuple[DemoState, str]) -> None:
    state, url = services
    state.failure_rate = 1.0
    answer = httpx.post(f"{url}/chat/messages", json={"channel": "#cs", "text": "hi"})
    assert answer.status_code == 503
    state.failure_rate = 0.0
    assert httpx.post(f"{url}/chat/messages", json={"channel": "#cs", "text": "hi"}).status_code == 200


def test_services_take_realistic_time() -> None:
    state = DemoState(latency_scale=1.0, seed=3)
    with ServerThread(create_services_app(state)) as server:
        httpx.post(f"{server.url}/provisioning/accounts", json={"account_id": "a", "company": "c"})
    (call,) = state.calls
    assert 50 <= call.duration_ms <= 400  # 110 ms nominal, ±40 %


def test_a_second_demo_in_the_same_folder_saves_a_new_version_of_its_workflow(tmp_path: Path) -> None:
    # it used to stop at "accepting the plan failed (409): ... already has a webhook named ..."
    lines: list[str] = []
    first, _ = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0), _quiet)
    second, _ = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0),
                         lines.append)
    assert second.workflow_id == first.workflow_id
    assert f"  saved as version 2 of workflow {first.workflow_id} (made by an earlier demo in this folder)" \
        in lines
    assert [r.state for r in second.runs] == ["succeeded", "failed"]
    assert (second.runs[1].compensation or {}).get("status") == "complete"


def test_a_located_api_problem_reads_once() -> None:
    from service.demo.runner import problem_text

    message = "workflow `wf_1` (onboarding) already has a webhook named `signed-up`"
    text = problem_text({
        "detail": f"{message}; webhook names are unique (`/hooks/signed-up`)",
        "problems": [{"location": "document.triggers.webhook.name", "message": message,
                      "hint": "give this workflow's webhook another name, e.g. `signed-up-2`"}],
    })
    assert text == (f"{message}; webhook names are unique (`/hooks/signed-up`) — at "
                    "document.triggers.webhook.name; hint: give this workflow's webhook another name, "
                    "e.g. `signed-up-2`")
    assert text.count(message) == 1
    # a problem saying more than the detail keeps its message
    assert problem_text({"detail": "the workflow has 1 problem", "problems": [
        {"location": "document.steps[0].action", "message": "unknown action `x.y`"}]}) == (
        "the workflow has 1 problem — document.steps[0].action: unknown action `x.y`")


def test_a_second_demo_with_a_failure_rate_says_saved_then_adds_retries(tmp_path: Path) -> None:
    run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0), _quiet)
    lines: list[str] = []
    result, _ = run_demo(DemoOptions(data_dir=tmp_path / "demo", port=0, serve=False, latency_scale=0,
                                     failure_rate=0.2, seed=3), lines.append)
    saved = next(i for i, line in enumerate(lines) if line.startswith("  saved as version 2 of workflow"))
    retries = next(i for i, line in enumerate(lines) if line.startswith("  retries added to"))
    assert saved < retries and lines[retries].endswith("→ version 3")
    assert [r.state for r in result.runs] == ["succeeded", "failed"]
