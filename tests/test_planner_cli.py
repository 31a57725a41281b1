"""`plan` on the command line: one document on stdout, warnings on stderr, every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from test_planner_support import small_catalog
from typer.testing import CliRunner

from service.cli_plan import register
from workflow.loader import load_catalog
from workflow.validator import validate

REPO = Path(__file__).resolve().parents[1]
REQUEST = "Create a CRM account for Quill, then send a fax to their office and post a note in #sales."


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """test app"""

    return app


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(small_catalog().to_data(), sort_keys=False))
    return path


def run(app: typer.Typer, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=stdin)


def test_json_is_one_document_and_warnings_go_to_stderr(app: typer.Typer, catalog_file: Path) -> None:
    result = run(app, "plan", "--catalog", str(catalog_file), "--format", "json", REQUEST)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["action"] for s in doc["steps"]] == ["crm.create_account", "chat.post_message"]
    assert validate(doc, load_catalog(catalog_file)).ok
    assert "fax" in result.stderr and "warning:" in result.stderr
    assert "fax" not in result.stdout.split('"description"')[0]


def test_yaml_is_the_default(app: typer.Typer, catalog_file: Path) -> None:
    result = run(app, "plan", "-c", str(catalog_file), "Export report rep_9, then post it in #data.")
    assert result.exit_code == 0
    doc = yaml.safe_load(result.stdout)
    assert [s["action"] for s in doc["steps"]] == ["reports.export_report", "chat.post_message"]


def test_mermaid(app: typer.Typer, catalog_file: Path) -> None:
    result = run(
        app, "plan", "-c", str(catalog_file), "-f", "mermaid", "Export report rep_9, then post it in #data."
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("flowchart TD")
    assert "s_export_report --> s_post_message" in result.stdout


def test_explain_keeps_json_parseable(app: typer.Typer, catalog_file: Path) -> None:
    result = run(
        app,
        "plan",
        "-c",
        str(catalog_file),
        "-f",
        "json",
        "--explain",
        "Charge customer cus_1 $30, retry twice, and in parallel export report rep_2. "
        "If the export fails, refund the charge.",
    )
    assert result.exit_code == 0
    json.loads(result.stdout)
    assert "1. " in result.stderr and "can run in parallel" in result.stderr
    assert "up to 3 attempts" in result.stderr and "payments.refund_charge" in result.stderr


def test_request_from_file_and_stdin(app: typer.Typer, catalog_file: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.txt"
    request.write_text("Suspend workspace ws_4 and text the owner at +15550002222.")
    from_file = run(app, "plan", "-c", str(catalog_file), "-f", "json", "--file", str(request))
    from_stdin = run(app, "plan", "-c", str(catalog_file), "-f", "json", stdin=request.read_text())
    assert from_file.exit_code == 0 and from_stdin.exit_code == 0
    assert json.loads(from_file.stdout)["steps"] == json.loads(from_stdin.stdout)["steps"]


def test_nothing_plannable_is_one_clear_error(app: typer.Typer, catalog_file: Path) -> None:
    result = run(app, "plan", "-c", str(catalog_file), "Water the plants.")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_missing_catalog_file(app: typer.Typer, tmp_path: Path) -> None:
    result = run(app, "plan", "-c", str(tmp_path / "nope.yaml"), "Export a report.")
    assert result.exit_code == 2
    assert "file not found" in result.stderr and "Traceback" not in result.stderr


def test_module_runner_in_a_subprocess(catalog_file: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner",
            "plan",
            "--catalog",
            str(catalog_file),
            "--format",
            "json",
            "Export report rep_3 and post it in #bi.",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["steps"]) == 2
