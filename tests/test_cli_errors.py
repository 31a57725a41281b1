"""Bad input to the `overture` CLI: one clear `error:` line, no traceback, the right exit code
(0 ok, 1 invalid document, 2 usage and input errors)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_support import APPROVAL_STEPS, CATALOG, cli, error_line

WORKFLOW = """\
name: qa-flow
inputs: {type: object, properties: {email: {type: string}}, required: [email]}
""" + APPROVAL_STEPS


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "catalog": tmp_path / "catalog.yaml",
        "workflow": tmp_path / "wf.yaml",
        "not_workflow": tmp_path / "other.yaml",
        "bad_yaml": tmp_path / "bad.yaml",
    }
    paths["catalog"].write_text(CATALOG)
    paths["workflow"].write_text(WORKFLOW)
    paths["not_workflow"].write_text("foo: 1\n")
    paths["bad_yaml"].write_text("name: x\nsteps: [\n")
    paths["data"] = tmp_path / "data"
    return paths


def test_graph_of_a_file_that_is_not_a_workflow_is_an_invalid_document(files: dict[str, Path]) -> None:
    code, _, err = cli("graph", files["not_workflow"])
    assert code == 1
    assert error_line(err).startswith("error: ") and "required field `name` is missing" in err
    code, _, err = cli("graph", files["workflow"].parent / "nope.yaml")
    assert code == 2 and "file not found" in error_line(err)


def test_edit_and_explain_of_a_non_workflow_exit_1(files: dict[str, Path]) -> None:
    for command in (("explain",), ("edit",)):
        extra = ("add a log",) if command == ("edit",) else ()
        code, _, err = cli(*command, "-c", files["catalog"], files["not_workflow"], *extra,
                           "--planner", "offline")
        assert code == 1 and "not a valid workflow document" in error_line(err)


def test_explain_warns_when_the_document_does_not_fit_the_catalog(files: dict[str, Path]) -> None:
    typo = files["workflow"].parent / "typo.yaml"
    typo.write_text(WORKFLOW.replace("core.log", "core.lgo"))
    code, out, err = cli("explain", "-c", files["catalog"], typo, "--planner", "offline")
    assert code == 0 and out.strip()
    assert "warning: " in err and "steps[1].action" in err and "core.lgo" in err


def test_plan_with_an_empty_request_is_a_usage_error(files: dict[str, Path]) -> None:
    code, out, err = cli("plan", "-c", files["catalog"], "   ", "--planner", "offline")
    assert code == 2 and out == ""
    assert error_line(err).startswith("error: the request is empty")


def test_plan_that_matches_nothing_says_so_once(files: dict[str, Path]) -> None:
    code, out, err = cli("plan", "-c", files["catalog"], "xyzzy plugh", "--planner", "offline")
    assert code == 1 and out == ""
    assert err.count("as background") == 1, err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--deadline", "-5", "--deadline"),
        ("--follow-timers", "-1", "--follow-timers"),
    ],
)
def test_run_rejects_out_of_range_options(files: dict[str, Path], option: str, value: str,
                                          expected: str) -> None:
    code, _, err = cli("run", "-c", files["catalog"], files["workflow"], "--input", "email=a@b.example",
                       "--data-dir", files["data"], option, value)
    assert code == 2 and expected in err


def test_run_missing_input_is_one_line(files: dict[str, Path]) -> None:
    code, _, err = cli("run", "-c", files["catalog"], files["workflow"], "--data-dir", files["data"])
    assert code == 2
    assert error_line(err) == "error: input (inputs): 'email' is a required property"


def test_bad_input_syntax(files: dict[str, Path]) -> None:
    code, _, err = cli("run", "-c", files["catalog"], files["workflow"], "--input", "foo",
                       "--data-dir", files["data"])
    assert code == 2 and error_line(err) == "error: --input `foo`: expected key=value"


def test_a_journal_that_cannot_be_opened_is_one_line(files: dict[str, Path]) -> None:
    code, _, err = cli("runs", "list", "--data-dir", files["workflow"])  # a file, not a folder
    assert code == 2
    assert error_line(err).startswith(f"error: cannot open the journal at {files['workflow']}")
    code, _, err = cli("runs", "list", "--database-url", "foo://bar")
    assert code == 2 and "check --database-url" in error_line(err)


def test_runs_list_limit_must_be_positive(files: dict[str, Path]) -> None:
    code, _, err = cli("runs", "list", "--limit", "0", "--data-dir", files["data"])
    assert code == 2 and "--limit" in err


def test_unknown_and_empty_run_ids(files: dict[str, Path]) -> None:
    for command in (("runs", "show"), ("approve",), ("cancel",)):
        extra = ("ok",) if command == ("approve",) else ()
        code, _, err = cli(*command, "nope", *extra, "--data-dir", files["data"])
        assert code == 2 and error_line(err) == (
            f"error: no run `nope`; `overture runs list --data-dir {files['data']}` shows the runs")
    code, _, err = cli("runs", "show", "", "--data-dir", files["data"])
    assert code == 2 and "give a run id" in error_line(err)


def test_approval_flow_errors_name_the_waiting_step(files: dict[str, Path]) -> None:
    code, _, err = cli("run", "-c", files["catalog"], files["workflow"], "--input", "email=a@b.example",
                       "--data-dir", files["data"])
    assert code == 0, err
    run_id = err.split("started run ")[1].split()[0]
    code, _, err = cli("approve", run_id, "nostep", "--data-dir", files["data"])
    assert code == 2
    assert error_line(err) == (f"error: step `nostep` of run {run_id} is not waiting for an approval; "
                               "waiting for approval: `ok`")
    code, out, err = cli("cancel", run_id, "-c", files["catalog"], "--data-dir", files["data"])
    assert code == 0 and "cancelled" in out
    code, _, err = cli("approve", run_id, "ok", "--data-dir", files["data"])
    assert code == 2
    assert error_line(err) == (f"error: run {run_id} has ended, already cancelled; "
                               "there is nothing to approve")


def test_token_and_serve_options(files: dict[str, Path]) -> None:
    code, _, err = cli("token", "create", "--name", " ", "--data-dir", files["data"])
    assert code == 2 and error_line(err).startswith("error: --name is empty")
    code, _, err = cli("token", "list", "--format", "xml", "--data-dir", files["data"])
    assert code == 2 and error_line(err) == "error: --format takes text or json; got `xml`"
    code, _, err = cli("serve", "--port", "99999", "--data-dir", files["data"])
    assert code == 2 and "--port" in err
    code, _, err = cli("serve", "--log-level", "loud", "--data-dir", files["data"])
    assert code == 2 and "--log-level" in err


def test_serve_on_a_busy_port_is_one_line(files: dict[str, Path]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = cli("serve", "--port", str(port), "--data-dir", files["data"])
    assert code == 2
    assert error_line(err) == (f"error: port {port} on 127.0.0.1 is in use; pass --port with another port "
                               "(or 0 for any free one)")
