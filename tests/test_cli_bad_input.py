"""Bad input to the `overture` CLI that once ended in a traceback ("internal error"), silently
changed data, or quietly did something else: each case is now one `error:` line with a fix and a
non-zero exit, and leaves nothing behind. (`test_cli_errors.py` covers the basic cases.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import APPROVAL_STEPS, CATALOG, cli, error_line

WORKFLOW = """\
name: qa-flow
inputs: {type: object, properties: {email: {type: string}, amount: {type: number}}, required: [email]}
""" + APPROVAL_STEPS

SCHEDULED = """\
name: scheduled
triggers: {schedule: [{cron: "CRON", timezone: ZONE}]}
steps:
  - {id: log, action: core.log, with: {message: hi}}
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "folder").mkdir()
    return tmp_path


# -- inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("amount=NaN", "error: input amount: 'NaN' is not of type 'number'"),
        ("amount=Infinity", "error: input amount: 'Infinity' is not of type 'number'"),
        (
            "amount=1e999",
            "error: --input `amount=1e999`: Infinity is not a JSON number; write a finite number, or "
            "quote it to keep it as text",
        ),
    ],
)
def test_non_finite_inputs_are_refused_not_run(work: Path, pair: str, expected: str) -> None:
    code, _, err = cli("run", "-c", "catalog.yaml", "wf.yaml", "-i", "email=a@b.example", "-i", pair,
                       "--data-dir", "data", cwd=work)  # fmt: skip
    assert code == 2 and error_line(err).startswith(expected)
    assert not (work / "data").exists()  # nothing was started


def test_inputs_are_checked_against_the_formats_their_schema_names(work: Path) -> None:
    (work / "formats.yaml").write_text(
        WORKFLOW.replace("email: {type: string}", "email: {type: string, format: email}")
    )
    code, _, err = cli(
        "run", "-c", "catalog.yaml", "formats.yaml", "-i", "email=nobody", "--data-dir", "data", cwd=work
    )
    assert code == 2 and error_line(err) == "error: input email: 'nobody' is not a 'email'"


def test_a_schedule_whose_inputs_break_a_format_is_invalid(work: Path) -> None:
    document = WORKFLOW.replace("email: {type: string}", "email: {type: string, format: email}").replace(
        "steps:",
        'triggers: {schedule: [{cron: "0 9 * * *", timezone: UTC, inputs: {email: nobody}}]}\nsteps:',
    )
    (work / "scheduled.yaml").write_text(document)
    code, out, _ = cli("validate", "-c", "catalog.yaml", "scheduled.yaml", cwd=work)  # every fire would fail
    assert code == 1 and "triggers.schedule[0].inputs.email:" in out and "'nobody' is not a 'email'" in out


def test_a_nan_in_an_inputs_file_is_located(work: Path) -> None:
    (work / "inputs.yaml").write_text("email: a@b.example\namount: .nan\n")
    code, _, err = cli("run", "-c", "catalog.yaml", "wf.yaml", "--inputs-file", "inputs.yaml", "--data-dir",
                       "data", cwd=work)  # fmt: skip
    assert code == 2 and error_line(err) == (
        "error: inputs.yaml: amount: NaN is not a JSON number; write a finite number, or quote it to keep "
        "it as text"
    )
    # the same in a document: it would run with NaN, and `plan --format json` could not write it
    (work / "nan.yaml").write_text(WORKFLOW.replace('with: {prompt: "Go ahead?"}', "timeout_s: .inf"))
    code, _, err = cli("validate", "-c", "catalog.yaml", "nan.yaml", cwd=work)
    assert code == 2 and error_line(err).startswith("error: nan.yaml: steps[0].timeout_s: Infinity is not")


# -- catalogs -------------------------------------------------------------------------------------------


def test_a_catalog_file_may_not_redefine_core_actions_or_hold_broken_schemas(work: Path) -> None:
    (work / "core.yaml").write_text("actions:\n  - name: core.log\n    description: my own log\n")
    code, _, err = cli("validate", "-c", "core.yaml", "wf.yaml", cwd=work)
    assert code == 2
    assert "actions[0].name: `core.log` is a built-in action" in error_line(err) and "ops.log" in err
    (work / "schema.yaml").write_text("actions:\n  - name: x.y\n    input: {type: object, properties: "
                                      "{n: {type: money}}}\n")  # fmt: skip
    code, _, err = cli("validate", "-c", "schema.yaml", "wf.yaml", cwd=work)
    assert code == 2 and "actions[0].input.properties.n.type: not a valid JSON Schema" in error_line(err)


def test_a_stray_comma_in_catalog_does_not_read_the_current_folder(work: Path) -> None:
    (work / "broken.yaml").write_text("name: x\nsteps: [\n")  # would be read as a catalog file
    code, out, err = cli("validate", "-c", "catalog.yaml,", "wf.yaml", cwd=work)
    assert code == 0 and "valid" in out, err
    code, _, err = cli("validate", "-c", " , ", "wf.yaml", cwd=work)
    assert code == 2 and error_line(err) == "error: the catalog path is empty; name a catalog file or folder"


def test_yaml_that_expands_without_end_is_refused(work: Path) -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    (work / "laughs.yaml").write_text("\n".join(lines) + "\nname: x\nsteps: []\n")
    code, _, err = cli("validate", "-c", "catalog.yaml", "laughs.yaml", cwd=work)
    assert code == 2 and "anchors and aliases (`&name`, `*name`) expand to more than" in error_line(err)
    (work / "loop.yaml").write_text("actions: &a [*a]\n")
    code, _, err = cli("catalog", "show", "loop.yaml", cwd=work)  # was: internal error, RecursionError
    assert code == 2 and "nested more than 100 levels deep" in error_line(err)


def test_the_same_catalog_file_twice_is_read_once(work: Path) -> None:
    code, out, err = cli("validate", "-c", "catalog.yaml", "-c", "./catalog.yaml", "wf.yaml", cwd=work)
    assert code == 0 and "valid" in out, err  # was: "action `crm.create_account` is defined twice"


# -- documents ------------------------------------------------------------------------------------------


def test_empty_documents_say_they_are_empty(work: Path) -> None:
    (work / "empty.yaml").write_text("")
    code, out, _ = cli("validate", "-c", "catalog.yaml", "empty.yaml", cwd=work)
    assert code == 1 and "found nothing (the document is empty)" in out and "NoneType" not in out
    code, _, err = cli("validate", "-c", "empty.yaml", "wf.yaml", cwd=work)
    assert code == 2 and "found nothing (the document is empty)" in error_line(err)


def test_a_multi_line_name_and_a_schedule_that_never_fires_are_invalid(work: Path) -> None:
    (work / "named.yaml").write_text(WORKFLOW.replace("name: qa-flow", 'name: "qa\\nflow"'))
    code, out, _ = cli("validate", "-c", "catalog.yaml", "named.yaml", cwd=work)
    assert code == 1 and "name: the name holds a control character" in out and "qa flow" in out
    (work / "feb30.yaml").write_text(SCHEDULED.replace("CRON", "0 9 30 2 *").replace("ZONE", "UTC"))
    code, out, _ = cli("validate", "-c", "catalog.yaml", "feb30.yaml", cwd=work)
    assert code == 1 and "never fires" in out and "(FEB) has day 30" in out


def test_an_expression_nested_thousands_deep_is_a_problem_not_a_crash(work: Path) -> None:
    deep = "${{ " + "not " * 3000 + "true }}"
    (work / "deep.yaml").write_text(
        WORKFLOW.replace('with: {message: "done"}', f'if: "{deep}"\n    with: {{message: "done"}}')
    )
    code, out, _ = cli("validate", "-c", "catalog.yaml", "deep.yaml", cwd=work)  # was: internal error
    assert (
        code == 1 and "steps[1].if: expression does not parse" in out and "nests more than 64 levels" in out
    )


def test_triggers_list_checks_the_documents_it_is_given(work: Path) -> None:
    (work / "feb30.yaml").write_text(SCHEDULED.replace("CRON", "0 9 30 2 *").replace("ZONE", "UTC"))
    code, _, err = cli("triggers", "list", "feb30.yaml", cwd=work)  # was: CroniterBadDateError
    assert code == 1 and "feb30.yaml: triggers.schedule[0].cron" in err and "never fires" in err
    (work / "mars.yaml").write_text(SCHEDULED.replace("CRON", "0 9 * * *").replace("ZONE", "Mars/Phobos"))
    code, out, err = cli("triggers", "list", "mars.yaml", cwd=work)  # was: listed, with no fire times
    assert code == 1 and out == "" and "unknown time zone `Mars/Phobos`" in err


# -- files written and read -----------------------------------------------------------------------------


def test_edit_output_that_cannot_be_written_is_one_line(work: Path) -> None:
    args = ("edit", "-c", "catalog.yaml", "wf.yaml", "retry the log step 3 times", "--planner", "offline")
    code, _, err = cli(*args, "-o", "folder", cwd=work)
    assert (
        code == 2 and error_line(err) == "error: folder: is a directory; name a file to write the document to"
    )
    code, _, err = cli(*args, "-o", "nowhere/wf.yaml", cwd=work)
    assert code == 2 and "the folder nowhere does not exist" in error_line(err)
    code, _, err = cli(*args, "-o", "out.yaml", "--in-place", cwd=work)  # -o was silently ignored
    assert code == 2 and "give --output FILE or --in-place, not both" in err
    assert (work / "wf.yaml").read_text() == WORKFLOW and not (work / "out.yaml").exists()


def test_a_request_file_that_is_not_utf8_is_a_usage_error(work: Path) -> None:
    (work / "request.txt").write_bytes(b"\xff\xfe create the account")
    code, _, err = cli(
        "plan", "-c", "catalog.yaml", "--file", "request.txt", "--planner", "offline", cwd=work
    )
    assert code == 2 and "request.txt is not UTF-8 text" in error_line(err)


def test_triggers_sign_with_a_missing_body_or_an_empty_variable_name(work: Path) -> None:
    env = {"HOOK_SECRET": "whsec_0123456789"}
    code, _, err = cli("triggers", "sign", "nope.json", "--secret-env", "HOOK_SECRET", cwd=work, env=env)
    assert code == 2 and error_line(err).startswith("error: cannot read nope.json: No such file or directory")
    code, _, err = cli("triggers", "sign", "folder", "--secret-env", "HOOK_SECRET", cwd=work, env=env)
    assert code == 2 and error_line(err).startswith("error: cannot read folder: Is a directory")
    code, _, err = cli("triggers", "sign", "wf.yaml", "--secret-env", " ", cwd=work)
    assert code == 2 and "--secret-env is empty" in error_line(err)


# -- data folders, database URLs and settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("token", "list"),
        ("token", "create", "--name", "ci"),
        ("triggers", "list"),
        ("triggers", "fires", "wf_1"),
    ],
)
def test_service_commands_with_a_file_as_data_dir_or_a_bad_database_url(
    work: Path, command: tuple[str, ...]
) -> None:
    code, _, err = cli(*command, "--data-dir", "wf.yaml", cwd=work)
    assert code == 2
    assert error_line(err) == ("error: cannot use wf.yaml as the data folder: it is a file, not a folder; "
                               "check --data-dir (a folder, created when missing)")  # fmt: skip
    code, _, err = cli(*command, "--database-url", "nosuchdb://x", cwd=work)
    assert code == 2 and error_line(err).startswith("error: cannot open the database at nosuchdb://x: ")
    assert "check --database-url" in error_line(err)


def test_serve_refuses_bad_options_before_starting(work: Path) -> None:
    code, _, err = cli("serve", "--data-dir", "wf.yaml", "--port", "0", cwd=work)
    assert code == 2 and "cannot use wf.yaml as the data folder: it is a file" in error_line(err)
    code, _, err = cli("serve", "--host", "no-such-host.invalid", "--port", "0", "--data-dir", "d", cwd=work)
    assert code == 2 and error_line(err).startswith("error: --host `no-such-host.invalid` does not resolve")
    code, _, err = cli(
        "serve", "--port", "0", "--data-dir", "d", cwd=work, env={"OVERTURE_CONCURRENCY": "lots"}
    )
    assert code == 2 and error_line(err).startswith(
        "error: $OVERTURE_CONCURRENCY: Input should be a valid integer"
    )
    assert "(found 'lots')" in err and "fix or unset it" in err


def test_a_token_name_is_one_line(work: Path) -> None:
    code, _, err = cli("token", "create", "--name", "ci\nbot", "--data-dir", "d", cwd=work)
    assert code == 2 and "--name holds a control character" in error_line(err)
    code, _, err = cli("token", "revoke", " ", "--data-dir", "d", cwd=work)
    assert code == 2 and "give the token's id (tok_…) or name" in error_line(err)


def test_reading_commands_do_not_create_a_journal_at_a_mistyped_data_dir(work: Path) -> None:
    code, out, err = cli("runs", "list", "--json", "--data-dir", "typo", cwd=work)
    assert code == 0 and out.strip() == "[]" and "note: no journal at" in err
    code, _, err = cli("runs", "show", "abc", "--data-dir", "typo", cwd=work)
    assert code == 2 and error_line(err) == ("error: no run `abc`; `overture runs list --data-dir typo` "
                                             "shows the runs")
    code, out, _ = cli("resume", "-c", "catalog.yaml", "--data-dir", "typo", cwd=work)
    assert code == 0 and "no unfinished runs" in out
    assert not (work / "typo").exists()


def test_optimize_with_a_bad_journal_or_options(work: Path) -> None:
    code, _, err = cli("optimize", "train", "--journal", "typo", cwd=work)
    assert code == 2 and error_line(err).startswith("error: no journal at ") and not (work / "typo").exists()
    code, _, err = cli("optimize", "train", "--journal", "wf.yaml", cwd=work)
    assert code == 2 and "cannot open the journal at wf.yaml" in error_line(err) and "--journal" in err
    code, _, err = cli("optimize", "train", "--journal", "nosuchdb://x", cwd=work)
    assert code == 2 and "cannot open the journal at nosuchdb://x" in error_line(err)
    code, _, err = cli("optimize", "train", "--window-s", "-5", cwd=work)
    assert code == 2 and "--window-s must be a number of seconds above 0" in error_line(err)
    code, _, err = cli("optimize", "suggest", "wf.yaml", "--format", "xml", cwd=work)
    assert code == 2 and error_line(err) == "error: --format takes text or json; got `xml`"


def test_demo_with_a_file_as_data_dir(work: Path) -> None:
    code, _, err = cli("demo", "--no-serve", "--data-dir", "wf.yaml", cwd=work)
    assert code == 2 and "--data-dir wf.yaml is a file" in error_line(err)
