"""`overture run`, `runs list|show`, `approve`, `cancel`, `resume`: the runtime from the shell.

Each command opens the journal (`--data-dir`, default `$OVERTURE_DATA_DIR` or `./.overture`; or
`--database-url` / `$OVERTURE_DATABASE_URL`), drives runs in this process until they finish or
pause (on an approval, or a timer further away than `--follow-timers`), and exits. A paused run
continues with `overture approve` or `overture resume`.

Exit codes: 0 succeeded (or paused; for `cancel`, cancelled), 1 failed or cancelled, 2 usage and input
errors (unknown run or step, bad inputs, a journal that cannot be opened).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from service.cli_options import Given, fail

if TYPE_CHECKING:
    from runtime.engine import Engine, RunResult
    from runtime.journal import Journal
    from runtime.journal_memory import AnyJournal
    from workflow.catalog import Catalog
    from workflow.document import Workflow

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Journal folder (journal.db); default $OVERTURE_DATA_DIR or ./.overture.",
        envvar="OVERTURE_DATA_DIR",
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Journal database URL, e.g. postgresql+psycopg://user@host/db.",
        envvar="OVERTURE_DATABASE_URL",
    ),
]
CatalogOption = Annotated[
    list[str],
    typer.Option("--catalog", "-c", help="Catalog file or folder (repeatable).", envvar="OVERTURE_CATALOG"),
]
FollowOption = Annotated[
    float,
    typer.Option(
        "--follow-timers", min=0.0, help="Wait in this process for timers due within this many seconds."
    ),
]
WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Show live progress.")]


def _open_journal(data_dir: Path | None, database_url: str | None) -> Journal:
    from runtime.journal import Journal
    from runtime.secrets import SecretStore

    where = database_url or str(data_dir or "./.overture")
    try:
        return Journal.open(database_url or data_dir, redact=SecretStore.from_env().redact)
    except Exception as exc:  # SQLAlchemy and OS errors: a bad --data-dir / --database-url is input
        from workflow.errors import OvertureError

        if isinstance(exc, OvertureError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        option = "--database-url" if database_url else "--data-dir"
        fail(f"cannot open the journal at {where}: {first}; check {option} "
              "(a folder for SQLite, or a reachable postgresql+psycopg:// URL)")


def _missing_journal(data_dir: Path | None, database_url: str | None) -> Path | None:
    """The SQLite journal file `--data-dir` names, when it does not exist: the commands that only
    read or change existing runs say so instead of creating an empty journal (and its folder) at a
    mistyped path."""
    target = data_dir or Path(".overture")
    if database_url or "://" in str(target):
        return None
    path = Path(target)
    if path.is_dir() or not path.suffix:  # as `Journal.open` reads it
        path = path / "journal.db"
    return None if path.exists() else path


def _no_run(run_id: str, given: Given) -> NoReturn:
    fail(f"no run `{run_id}`; `{given.command('runs list')}` shows the runs")


def _catalog(paths: list[str], document: Any = None) -> Catalog:
    """The catalog `--catalog` names; without one, the `core.*` built-ins when `document` (a
    workflow document's data) calls nothing else."""
    from service.cli import catalog_for

    return catalog_for(paths, document)


def _check_invokers(
    workflow: Workflow, catalog: Catalog, file: Path | str, outcome: str = "nothing was recorded"
) -> None:
    """Refuse (one line, exit 2) a workflow with steps whose actions cannot be called, before
    anything is done with it: `overture run` (nothing recorded), `optimize accept` (file unchanged)."""
    from runtime.invokers.uncallable import cannot_run, uncallable_calls

    calls = uncallable_calls(workflow, catalog)
    if calls:
        # the sentence the API answers for the same workflow (`uncallable_problem`'s detail)
        fail(f"{file}: {cannot_run(calls)}; {outcome}. Add an `invoke:` block (kind http, "
             "python or smtp) to each of these actions in the catalog (README: \"Action invokers\"), "
             "or pass --catalog with one that has them")


def parse_inputs(pairs: list[str], inputs_file: Path | None) -> dict[str, Any]:
    """`--inputs-file` (YAML/JSON object), then each `key=value`; a value that parses as JSON
    (`150`, `true`, `[1,2]`) keeps its type, anything else is a string."""
    from workflow.json_values import check_json_values
    from workflow.loader import read_data

    inputs: dict[str, Any] = {}
    if inputs_file is not None:
        data = read_data(inputs_file)
        if not isinstance(data, dict):
            fail(f"{inputs_file}: expected a mapping of input names to values")
        inputs.update(data)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--input `{pair}`: expected key=value")
        try:
            value: Any = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            value = text  # NaN and Infinity included: kept as the text, which a number schema refuses
        for problem in check_json_values(value, first=True):  # 1e999 parses as infinity
            fail(f"--input `{pair}`: {problem.message}; {problem.hint}")
        inputs[key.strip()] = value
    return inputs


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_inputs(schema: dict[str, Any] | None, inputs: dict[str, Any]) -> None:
    if not schema:
        return
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)  # as the API
    errors = sorted(checker.iter_errors(inputs), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path) or "(inputs)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        fail(f"input {where}: {errors[0].message}{more}")


def _engine(catalog: Catalog, journal: Journal) -> tuple[Engine, Any]:
    from runtime.engine import Engine
    from runtime.invokers import build_invoker
    from runtime.secrets import SecretStore

    secrets = SecretStore.from_env()
    invoker = build_invoker(catalog, secrets)
    return Engine(catalog, journal, invoker, secrets=secrets), invoker


async def _drive(engine: Engine, run_id: str, follow_timers: float, watch: bool) -> RunResult:
    if not watch:
        return await engine.run_until_settled(run_id, follow_timers_s=follow_timers)
    import asyncio

    from rich.live import Live

    view = _RunView(engine.journal, run_id)
    with Live(view.render(), refresh_per_second=8, transient=False) as live:
        task = asyncio.ensure_future(engine.run_until_settled(run_id, follow_timers_s=follow_timers))

        async def follow() -> None:
            async for event in engine.events(run_id):
                view.add(event)
                live.update(view.render())

        follower = asyncio.ensure_future(follow())
        try:
            result = await task
        finally:
            follower.cancel()
        view.refresh()
        live.update(view.render())
    if not live.console.is_terminal:
        typer.echo("")  # a non-terminal Live leaves its last line open; the summary starts afresh
    return result


def _print_outcome(result: RunResult, journal: Journal, given: Given) -> int:
    from rich.console import Console

    console = Console()
    state = result.state.value
    color = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(state, "cyan")
    console.print(f"run [bold]{result.run_id}[/bold]: [{color}]{state}[/{color}]")
    if result.error:
        where = f" in step `{result.error['step']}`" if result.error.get("step") else ""
        console.print(f"  error{where}: {result.error.get('message')}", markup=False)
    if result.compensation:
        comp = result.compensation
        undone = ", ".join(comp.get("undone", []))
        console.print(f"  compensation {comp.get('status')}: "
                      + (f"undone {undone}" if undone else "nothing to undo"), markup=False)
        for item in comp.get("left", []):
            console.print(f"  left undone: {item['step']}: {item['reason']}", markup=False)
    if state == "waiting":
        for approval in journal.approvals(result.run_id, pending_only=True):
            console.print(f"  waiting for approval of `{approval.step_id}`: {approval.prompt}", markup=False)
            if approval.approvers:
                console.print(f"    may be decided by: {', '.join(approval.approvers)}", markup=False)
            console.print(
                "    " + given.command(f"approve {result.run_id} {approval.step_id}", catalog=True)
                + (" --by NAME" if approval.approvers else "") + " [--reject] [--comment TEXT]",
                markup=False,
                soft_wrap=True,
            )
        timers = [t for t in journal.timers(result.run_id).values() if not t.fired and t.kind == "wait"]
        if timers:
            from runtime.clock import iso_time

            console.print(
                f"  waiting until {iso_time(min(t.wake_at for t in timers))}; "
                f"`{given.command('resume', catalog=True)}` continues it then",
                markup=False,
            )
    return 1 if state in ("failed", "cancelled") else 0


def register(app: typer.Typer) -> None:
    runs_app = typer.Typer(help="Inspect runs in the journal.", no_args_is_help=True)
    app.add_typer(runs_app, name="runs")

    @app.command()
    def run(
        file: Annotated[Path, typer.Argument(help="Workflow document (YAML or JSON).")],
        catalog: CatalogOption = [],  # noqa: B006 - typer reads the default, it is never mutated
        input: Annotated[
            list[str], typer.Option("--input", "-i", help="Run input key=value (repeatable).")
        ] = [],  # noqa: B006
        inputs_file: Annotated[Path | None, typer.Option("--inputs-file", help="YAML/JSON inputs.")] = None,
        watch: WatchOption = False,
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
        follow_timers: FollowOption = 60.0,
        deadline: Annotated[
            float | None, typer.Option("--deadline", min=0.001, help="Overall time limit, seconds (> 0).")
        ] = None,
    ) -> None:
        """Run a workflow to its end (or its next pause) and print a summary."""
        import asyncio

        from workflow.loader import read_data
        from workflow.validator import ensure_valid

        data = read_data(file)
        cat = _catalog(catalog, data)
        workflow = ensure_valid(data, cat)
        _check_invokers(workflow, cat, file)
        inputs = parse_inputs(input, inputs_file)
        _check_inputs(workflow.inputs, inputs)
        given = Given(data_dir, database_url, catalog)
        journal = _open_journal(data_dir, database_url)

        async def go() -> int:
            engine, invoker = _engine(cat, journal)
            try:
                run_id = await engine.start_run(workflow, inputs, deadline_s=deadline)
                if not watch:
                    typer.echo(f"started run {run_id}", err=True)
                result = await _drive(engine, run_id, follow_timers, watch)
            finally:
                await engine.close()
                if hasattr(invoker, "aclose"):
                    await invoker.aclose()
            return _print_outcome(result, journal, given)

        try:
            code = asyncio.run(go())
        finally:
            journal.close()
        raise typer.Exit(code)

    @runs_app.command("list")
    def runs_list(
        state: Annotated[str | None, typer.Option("--state", help="Only runs in this state.")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="JSON for tools.")] = False,
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """List runs, newest first."""
        from runtime.records import RunState

        try:
            wanted = RunState(state) if state else None
        except ValueError:
            fail(f"unknown state `{state}`; one of: {', '.join(s.value for s in RunState)}")
        missing = _missing_journal(data_dir, database_url)
        records = []
        if missing is not None:
            typer.echo(f"note: no journal at {missing}: no run was started with this --data-dir", err=True)
        else:
            journal = _open_journal(data_dir, database_url)
            try:
                records = journal.list_runs(state=wanted, limit=limit)
            finally:
                journal.close()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "workflow": r.workflow_name,
                            "version": r.workflow_version,
                            "state": r.state.value,
                            "created_at": r.created_at,
                            "ended_at": r.ended_at,
                            "error": r.error,
                        }
                        for r in records
                    ],
                    indent=2,
                )
            )
            return
        from rich.console import Console

        # run ids are 32 characters and get copied into other commands: leave them room on one line
        Console(width=max(120, Console().width)).print(_runs_table(records))

    @runs_app.command("show")
    def runs_show(
        run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
        as_json: Annotated[bool, typer.Option("--json", help="JSON for tools.")] = False,
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """Steps, attempts, durations, errors and the compensation summary of one run."""
        from runtime.errors import RunNotFound
        from runtime.report import run_data

        given = Given(data_dir, database_url)
        if not run_id.strip():
            fail(f"give a run id (or a unique prefix); `{given.command('runs list')}` shows the runs")
        if _missing_journal(data_dir, database_url) is not None:
            _no_run(run_id, given)
        journal = _open_journal(data_dir, database_url)
        try:
            try:
                record = journal.find_run(run_id)
            except RunNotFound:
                _no_run(run_id, given)
            if as_json:
                typer.echo(json.dumps(run_data(journal, record.id), indent=2, default=str))
            else:
                _show_run(run_data(journal, record.id))
        finally:
            journal.close()

    @app.command()
    def approve(
        run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
        step: Annotated[str, typer.Argument(help="The waiting core.approval step.")],
        reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
        comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
        by: Annotated[
            str | None,
            typer.Option(
                "--by",
                help="Who decides (default: $USER); one of the step's approvers when it lists them "
                "(trimmed, case-insensitive).",
            ),
        ] = None,
        catalog: CatalogOption = [],  # noqa: B006
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
        follow_timers: FollowOption = 60.0,
    ) -> None:
        """Approve (or --reject) a waiting step; with --catalog the run then continues here.

        Without API tokens nothing proves who runs this: `--by` is bookkeeping, checked against
        the step's `approvers`, not a security boundary (the API's tokens are)."""
        import getpass

        from runtime.errors import NotAnApprover

        who = by.strip() if by is not None else getpass.getuser()
        if by is not None and not who:
            fail("--by is empty; name who decides, e.g. --by ann")

        async def decide(engine: Engine, rid: str, drive: bool) -> None:
            try:
                await engine.approve(rid, step, not reject, who, comment, drive=drive)
            except NotAnApprover as exc:
                listed = ", ".join(exc.approvers)
                source = "--by" if by is not None else "$USER, as no --by was given"
                item = f" (item {exc.iteration})" if exc.iteration is not None else ""
                fail(f"step `{step}`{item} of run {rid} may be decided only by {listed} (names compare "
                     f"trimmed, case-insensitively), and the decider is `{who}` ({source}); the run is "
                     "still waiting. Pass --by with one of them")

        _decide(run_id, catalog, data_dir, database_url, follow_timers, decide, approval_step=step)

    @app.command()
    def cancel(
        run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
        catalog: CatalogOption = [],  # noqa: B006
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """Cancel a run; with --catalog its completed steps are undone here and now."""
        import getpass

        who = getpass.getuser()
        _decide(
            run_id,
            catalog,
            data_dir,
            database_url,
            0.0,
            lambda engine, rid, drive: engine.cancel(rid, by=who, drive=drive),
            cancelling=True,
        )

    @app.command()
    def resume(
        catalog: CatalogOption = [],  # noqa: B006
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
        follow_timers: FollowOption = 60.0,
    ) -> None:
        """Resume the unfinished runs in the journal; run each to its end or next pause. Without
        --catalog when each of them calls only `core.*` actions."""
        import asyncio

        from runtime.errors import InvalidRunState
        from service.cli import core_only
        from workflow.catalog import Catalog

        cat = _catalog(catalog) if catalog else None
        given = Given(data_dir, database_url, catalog)
        missing = _missing_journal(data_dir, database_url)
        if missing is not None:
            typer.echo("no unfinished runs")
            typer.echo(f"note: no journal at {missing}: no run was started with this --data-dir", err=True)
            raise typer.Exit(0)
        journal = _open_journal(data_dir, database_url)
        if cat is None:
            # the runs' actions are called here: only runs of core.* built-ins go on without a catalog
            needing = next((r for r in journal.unfinished_runs() if not core_only(r.document)), None)
            if needing is not None:
                journal.close()
                fail(f"no catalog given: run {needing.id} ({needing.workflow_name}) calls actions that "
                      "are not core.*; pass --catalog FILE (or set OVERTURE_CATALOG)")
            cat = Catalog()

        async def go() -> int:
            engine, invoker = _engine(cat, journal)
            code = 0
            try:
                ids = [r.id for r in journal.unfinished_runs()]
                if not ids:
                    typer.echo("no unfinished runs")
                for run_id in ids:
                    # each run on its own: a document the catalog no longer fits fails that run only
                    try:
                        result = await engine.run_until_settled(run_id, follow_timers_s=follow_timers)
                    except InvalidRunState as exc:  # another process (the service) drives it
                        typer.echo(f"skipped: {exc}")
                        continue
                    code = max(code, _print_outcome(result, journal, given))
            finally:
                await engine.close()
                if hasattr(invoker, "aclose"):
                    await invoker.aclose()
            return code

        try:
            code = asyncio.run(go())
        finally:
            journal.close()
        raise typer.Exit(code)


def _decide(
    run_id: str,
    catalog: list[str],
    data_dir: Path | None,
    database_url: str | None,
    follow_timers: float,
    action: Any,
    *,
    approval_step: str | None = None,
    cancelling: bool = False,
) -> None:
    import asyncio

    from runtime.errors import RunNotFound
    from service.cli import core_only

    given = Given(data_dir, database_url, catalog)
    if not run_id.strip():
        fail(f"give a run id (or a unique prefix); `{given.command('runs list')}` shows the runs")
    if _missing_journal(data_dir, database_url) is not None:
        _no_run(run_id, given)
    journal = _open_journal(data_dir, database_url)
    try:
        try:
            record = journal.find_run(run_id)
        except RunNotFound:
            _no_run(run_id, given)
        if record.state.finished:
            fail(f"run {record.id} has ended, already {record.state.value}; "
                  f"there is nothing to {'cancel' if cancelling else 'approve'}")
        if approval_step is not None:
            pending = [a.step_id for a in journal.approvals(record.id, pending_only=True)]
            if approval_step not in pending:
                waiting = (f"waiting for approval: {', '.join(f'`{s}`' for s in pending)}" if pending
                           else "no step of it is waiting for an approval")
                fail(f"step `{approval_step}` of run {record.id} is not waiting for an approval; {waiting}")
        # a run that calls only `core.*` actions needs no catalog to go on
        cat = _catalog(catalog, record.document) if catalog or core_only(record.document) else None

        async def go() -> int:
            from workflow.catalog import Catalog

            engine, invoker = _engine(cat or Catalog(), journal)
            try:
                if cat is None:
                    # record the decision only; driving the run needs the catalog's invoke details
                    await action(engine, record.id, False)
                    typer.echo(f"recorded for run {record.id}; "
                               f"`{given.command('resume')} --catalog CATALOG` continues it")
                    return 0
                await action(engine, record.id, True)
                result = await engine.run_until_settled(record.id, follow_timers_s=follow_timers)
            finally:
                await engine.close()
                if hasattr(invoker, "aclose"):
                    await invoker.aclose()
            outcome = _print_outcome(result, journal, given)
            # the cancellation asked for is what happened: that is success for `overture cancel`
            return 0 if cancelling and result.state.value == "cancelled" else outcome

        code = asyncio.run(go())
    finally:
        journal.close()
    raise typer.Exit(code)


# -- rendering ---------------------------------------------------------------------------------

_COLORS = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "retrying": "magenta",
    "waiting": "blue",
    "compensating": "magenta",
    "pending": "dim",
    "undone": "yellow",
}


def _state(text: str) -> str:
    color = _COLORS.get(text, "white")
    return f"[{color}]{text}[/{color}]"


def _t(text: str | None) -> str:
    """ISO time to the second, for tables."""
    return text[:19].replace("T", " ") if text else ""


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _runs_table(records: list[Any]) -> Any:
    from rich.table import Table

    from runtime.clock import iso_time

    table = Table(title=f"{len(records)} run{'s' if len(records) != 1 else ''}")
    for column in ("run", "workflow", "state", "started", "took", "error"):
        # ids and times are copied into other commands: never fold them over two lines
        table.add_column(column, overflow="fold", no_wrap=column == "run")
    for r in records:
        took = _secs(r.ended_at - r.created_at) if r.ended_at else ""
        error = (r.error or {}).get("message", "")
        version = f" v{r.workflow_version}" if r.workflow_version else ""
        table.add_row(
            r.id,
            f"{r.workflow_name}{version}",
            _state(r.state.value),
            _t(iso_time(r.created_at)),
            took,
            error,
        )
    return table


def _decided_as_other(approval: dict[str, Any]) -> bool:
    """Whether the approver that allowed a decision is worth naming: a role or `*`, not the
    decider's own name again (the web UI's history line says the same)."""
    as_ = approval.get("as")
    return bool(as_) and str(as_).strip().casefold() != str(approval["by"] or "").strip().casefold()


def _show_run(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"run [bold]{data['id']}[/bold] of {data['workflow']}: {_state(data['state'])}"
        f"  started {_t(data['created_at'])}"
        + (f", took {_secs(data['duration_s'])}" if data["duration_s"] is not None else "")
    )
    if data["error"]:
        console.print(f"  error: {data['error'].get('message')}", markup=False)
    steps = Table(title="steps")
    for column in ("step", "state", "attempts", "took", "error / undo"):
        steps.add_column(column, overflow="fold")
    for step in data["steps"]:
        notes = (step["error"] or {}).get("message", "") if step["error"] else ""
        for undo in step.get("undo", []):
            notes += f"{'; ' if notes else ''}undo {undo['action']}: {undo['state']}"
        state = _state(step["state"])
        if step.get("items"):
            done = sum(1 for s in step["items"].values() if s == "succeeded")
            state += f" ({done}/{len(step['items'])} items)"
        steps.add_row(step["id"], state, str(step["attempts"]), _secs(step["duration_s"]), notes)
    console.print(steps)
    attempts = Table(title="attempts")
    for column in ("step", "#", "kind", "action", "outcome", "started", "took", "error"):
        attempts.add_column(column, overflow="fold")
    for a in data["attempts"]:
        label = a["step"] if a["iteration"] is None else f"{a['step']}[{a['iteration']}]"
        error = f"{a['error_type']}: {a['error']}" if a["error_type"] else ""
        attempts.add_row(
            label,
            str(a["attempt"]),
            a["kind"],
            a["action"],
            _state(a["outcome"]),
            _t(a["started_at"]),
            _secs(a["duration_s"]),
            error,
        )
    console.print(attempts)
    for approval in data["approvals"]:
        if approval["decided_at"] is None:
            item = f" (item {approval['iteration']})" if approval["iteration"] is not None else ""
            console.print(
                f"  waiting for approval of `{approval['step']}`{item}: {approval['prompt']}", markup=False
            )
            if approval["approvers"]:
                console.print(f"    may be decided by: {', '.join(approval['approvers'])}", markup=False)
        else:
            verdict = "approved" if approval["approved"] else "rejected"
            note = f" ({approval['comment']})" if approval["comment"] else ""
            item = f" (item {approval['iteration']})" if approval["iteration"] is not None else ""
            by = approval["by"] + (f" (as {approval['as']})" if _decided_as_other(approval) else "")
            console.print(f"  {approval['step']}{item}: {verdict} by {by}{note}", markup=False)
    if data["compensation"]:
        comp = data["compensation"]
        console.print(
            f"  compensation {comp['status']}: undone {', '.join(comp['undone']) or 'nothing'}", markup=False
        )
        for item in comp["left"]:
            console.print(f"  left undone: {item['step']}: {item['reason']}", markup=False)


class _RunView:
    """The live table of `overture run --watch`: one row per step, updated from events."""

    def __init__(self, journal: AnyJournal, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self.lines: list[str] = []
        self.refresh()

    def refresh(self) -> None:
        from runtime.report import run_data

        self.data = run_data(self.journal, self.run_id)

    def add(self, event: Any) -> None:
        label = event.step_id or ""
        if event.iteration is not None:
            label += f"[{event.iteration}]"
        detail = ""
        if event.type == "log":
            detail = str(event.data.get("message", ""))
        elif "error" in event.data and isinstance(event.data["error"], dict):
            detail = str(event.data["error"].get("message", ""))
        self.lines = [*self.lines, f"{event.type} {label} {detail}".rstrip()][-8:]
        self.refresh()

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"run {self.run_id} of {self.data['workflow']}: {_state(self.data['state'])}")
        for column in ("step", "state", "attempts", "took"):
            table.add_column(column)
        for step in self.data["steps"]:
            state = _state(step["state"])
            if step.get("items"):
                done = sum(1 for s in step["items"].values() if s == "succeeded")
                state += f" {done}/{len(step['items'])}"
            table.add_row(step["id"], state, str(step["attempts"]), _secs(step["duration_s"]))
        return Group(table, *self.lines)
