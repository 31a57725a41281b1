"""`overture triggers` on a real data folder: next fire times of stored workflows and of files,
pause and resume (seen by the fire store the service reads; resuming a workflow whose actions
nothing can invoke is refused), fires, and signing a delivery."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import REPO
from typer.testing import CliRunner

from runtime.triggers import FireStore, verify
from service.cli import app
from service.settings import ServiceSettings
from service.store import Store

DOCUMENT = {
    "name": "weekday-digest",
    "triggers": {"schedule": [{"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}],
                 "webhook": {"name": "digest-requested"}},
    "steps": [{"id": "note", "action": "core.log", "with": {"message": "digest"}}],
}


def stored(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    settings = ServiceSettings(data_dir=data)
    settings.ensure_data_dir()
    store = Store(settings.resolved_database_url())
    row, _ = store.create_workflow("weekday-digest", "default", DOCUMENT, source="document", note=None)
    store.close()
    return data, row.id


def test_list_shows_next_fire_times_and_pause_resume_round_trips(tmp_path: Path) -> None:
    data, workflow_id = stored(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["triggers", "list", "--data-dir", str(data), "--json", "-n", "4"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    schedule = next(r for r in rows if r["kind"] == "schedule")
    assert schedule["workflow"] == workflow_id and schedule["paused"] is False
    assert schedule["description"] == "every weekday (Monday to Friday) at 09:00 (Europe/Berlin)"
    assert len(schedule["next_fires"]) == 4
    weekdays = ("Mon", "Tue", "Wed", "Thu", "Fri")
    assert all(t.startswith(weekdays) and " 09:00 " in t for t in schedule["next_local"])
    assert [r["path"] for r in rows if r["kind"] == "webhook"] == ["/hooks/digest-requested"]

    result = runner.invoke(app, ["triggers", "pause", workflow_id, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert result.output.count("paused") == 2                      # `all`: the schedule and the webhook
    result = runner.invoke(app, ["triggers", "list", "--data-dir", str(data)])
    assert result.output.count("[paused]") == 2 and "next:" not in result.output
    fire_store = FireStore.open(ServiceSettings(data_dir=data).resolved_journal_url())
    assert all(s.paused for s in fire_store.states(workflow_id)) and len(fire_store.states(workflow_id)) == 2
    fire_store.close()

    result = runner.invoke(app, ["triggers", "resume", workflow_id, schedule["trigger"],
                                 "--data-dir", str(data)])
    assert result.exit_code == 0 and "resumed" in result.output
    result = runner.invoke(app, ["triggers", "list", "--data-dir", str(data)])
    assert result.output.count("[paused]") == 1 and result.output.count("next:") == 3

    result = runner.invoke(app, ["triggers", "pause", workflow_id, "schedule-nope", "--data-dir", str(data)])
    assert result.exit_code == 2 and schedule["trigger"] in result.output
    result = runner.invoke(app, ["triggers", "fires", workflow_id, "--data-dir", str(data)])
    assert result.exit_code == 0 and "no fires" in result.output


def test_resume_refuses_a_workflow_calling_actions_nothing_can_invoke(tmp_path: Path) -> None:
    action = {"name": "digest.send", "description": "Send the digest.", "input": {"type": "object"},
              "output": {"type": "object"}}
    document = {**DOCUMENT, "steps": [{"id": "send", "action": "digest.send"}]}
    data = tmp_path / "data"
    settings = ServiceSettings(data_dir=data)
    settings.ensure_data_dir()
    store = Store(settings.resolved_database_url())
    store.add_catalog("digest", "test", {"actions": [action]})
    row, _ = store.create_workflow("weekday-digest", "default", document, source="document", note=None)
    runner = CliRunner()
    result = runner.invoke(app, ["triggers", "pause", row.id, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output

    result = runner.invoke(app, ["triggers", "resume", row.id, "--data-dir", str(data)])
    assert result.exit_code == 2, result.output
    assert f"error: {row.id}: cannot run: 1 step calls actions with no `invoke:` block" in result.output
    assert "step `send` (digest.send at workflow.steps[0].action)" in result.output
    assert "nothing was resumed" in result.output and "resumed " not in result.output
    fire_store = FireStore.open(settings.resolved_journal_url())
    assert all(s.paused for s in fire_store.states(row.id))

    # a newer upload of the action with an invoke: block wins, as in the service
    store.add_catalog("digest", "test", {"actions": [{**action, "invoke": {"kind": "python",
                                                                          "callable": "builtins:dict"}}]})
    store.close()
    result = runner.invoke(app, ["triggers", "resume", row.id, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert not any(s.paused for s in fire_store.states(row.id))
    fire_store.close()


def test_list_reads_documents_on_disk() -> None:
    document = REPO / "examples" / "weekly-usage-digest.yaml"
    result = CliRunner().invoke(app, ["triggers", "list", "--json", str(document)])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["description"] == "every Monday at 08:00 (America/New_York)"
    assert all(t.startswith("Mon") and "08:00" in t for t in row["next_local"])


def test_sign_prints_headers_the_service_accepts(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"email": "ada@example.com"}')
    result = CliRunner().invoke(app, ["triggers", "sign", str(body), "--secret-env", "HOOK_SECRET",
                                      "--delivery", "dlv_9"], env={"HOOK_SECRET": "s3cret-value"})
    assert result.exit_code == 0, result.output
    headers = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert headers["Overture-Delivery"] == "dlv_9"
    verify("s3cret-value", body.read_bytes(), headers["Overture-Signature"], now=time.time())
