"""`overture triggers`: see when workflows fire, pause and resume their triggers, sign deliveries.

    overture triggers list                       # the service's workflows: next fire times, paused or not
    overture triggers list examples/*.yaml       # documents on disk: their next fire times
    overture triggers pause WORKFLOW_ID [TRIGGER_ID|all]
    overture triggers resume WORKFLOW_ID [TRIGGER_ID|all]
    overture triggers fires WORKFLOW_ID          # the runs each trigger started
    overture triggers sign BODY_FILE --secret-env NAME   # the headers to POST a test delivery

The service's workflows and the fire store are read from the same places `overture serve` uses
(`--data-dir`, `--database-url`, or `$OVERTURE_DATA_DIR`); a running service sees a pause at its
next scheduler pass (at most 30 s).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli_options import Given
from service.cli_service import iso

if TYPE_CHECKING:
    from runtime.triggers import FireStore, TriggeredWorkflow
    from service.settings import ServiceSettings

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default: $OVERTURE_DATA_DIR or ./.overture).")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in the data folder).")
]
TriggerArgument = Annotated[str, typer.Argument(help="A trigger id from `triggers list`, or `all`.")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for tools.")]


def _settings(data_dir: Path | None, database_url: str | None) -> ServiceSettings:
    from service.cli_service import _settings as service_settings
    from service.cli_service import _unopenable

    settings = service_settings(data_dir, database_url)
    try:
        settings.ensure_data_dir()
    except OSError as exc:
        _unopenable(settings, exc)
    return settings


def _service_workflows(settings: ServiceSettings) -> list[TriggeredWorkflow]:
    from service.store import Store

    try:
        store = Store(settings.resolved_database_url())
    except Exception as exc:  # SQLAlchemy and OS errors: the options point somewhere unusable
        from service.cli_service import _unopenable

        _unopenable(settings, exc)
    found = []
    try:
        for row in store.list_workflows():
            version = store.get_version(row.id, row.latest_version)
            if version is None:
                continue
            # imported at the first stored workflow: with none (a new service) the command needs
            # neither the loader nor the contract's pydantic models
            from runtime.triggers import TriggeredWorkflow
            from workflow.errors import OvertureError
            from workflow.loader import workflow_from_data

            try:
                workflow = workflow_from_data(version.document, source=f"{row.id} v{version.version}")
            except OvertureError as exc:
                typer.echo(f"warning: {row.id}: {exc}", err=True)
                continue
            workflow.version = version.version
            if workflow.triggers is not None:
                found.append(TriggeredWorkflow(row.id, workflow))
    finally:
        store.close()
    return found


def _refuse_uncallable(settings: ServiceSettings, target: TriggeredWorkflow) -> None:
    """Exit 2 when the workflow calls actions nothing can invoke, as the service checks it (every
    stored catalog, the newer upload's definition winning; not with workers, whose catalog this
    process cannot see): resumed, its triggers would start runs that fail at those steps."""
    if settings.dispatch == "workers":
        return
    from runtime.invokers.uncallable import cannot_run, uncallable_calls
    from service.api.metrics import Metrics
    from service.api.services import Services
    from service.store import Store

    store = Store(settings.resolved_database_url())
    try:
        catalog = Services(settings=settings, store=store, metrics=Metrics()).merged_catalog()
    finally:
        store.close()
    calls = uncallable_calls(target.workflow, catalog)
    if calls:
        typer.echo(f"error: {target.key}: {cannot_run(calls, 'workflow')}; nothing was resumed. Add an "
                   "`invoke:` block (kind http, python or smtp) to each of these actions in its catalog, "
                   "upload it again (POST /v1/catalogs), then resume", err=True)
        raise typer.Exit(2)


def _file_workflows(files: list[Path]) -> list[TriggeredWorkflow]:
    """The documents, each with triggers checked (the validator's trigger rules; no catalog needed)."""
    from runtime.triggers import TriggeredWorkflow
    from workflow.catalog import Catalog
    from workflow.errors import InvalidWorkflow, Problem
    from workflow.loader import load_workflow
    from workflow.validator import validate

    found = []
    for path in files:
        workflow = load_workflow(path)
        problems = [p for p in validate(workflow, Catalog()).errors if p.location.startswith("triggers")]
        if problems:
            raise InvalidWorkflow([Problem(f"{path}: {p.location}", p.message, p.hint, code=p.code)
                                   for p in problems])
        found.append(TriggeredWorkflow(str(path), workflow))
    return found


def _local(ts: float, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def _rows(targets: list[TriggeredWorkflow], fire_store: FireStore | None, count: int, now: float
          ) -> list[dict[str, Any]]:
    if not targets:  # nothing to describe: spare the planner's wording and the schedules' cron parser
        return []
    from planner.triggers import describe_schedule, describe_webhook
    from runtime.triggers import upcoming, webhook_trigger_id

    rows = []
    for target in targets:
        states = {s.trigger_id: s for s in fire_store.states(target.key)} if fire_store else {}
        try:
            items = upcoming(target, count=count, now=now)
        except ValueError as exc:  # croniter's, for a stored schedule that never fires
            typer.echo(f"warning: {target.key}: its schedule cannot be evaluated ({exc})", err=True)
            items = []
        for item in items:
            paused = bool(states.get(item.trigger_id) and states[item.trigger_id].paused)
            rows.append({"workflow": target.key, "name": target.workflow.name, "trigger": item.trigger_id,
                         "kind": "schedule", "description": describe_schedule(item.trigger),
                         "timezone": item.trigger.timezone, "paused": paused,
                         "next_fires": [] if paused else [iso(t) for t in item.times],
                         "next_local": [] if paused else
                         [_local(t, item.trigger.timezone) for t in item.times]})
        hook = target.workflow.triggers.webhook if target.workflow.triggers else None
        if hook is not None:
            tid = webhook_trigger_id(hook)
            rows.append({"workflow": target.key, "name": target.workflow.name, "trigger": tid,
                         "kind": "webhook",
                         "description": describe_webhook(hook), "path": f"/hooks/{hook.name}",
                         "paused": bool(states.get(tid) and states[tid].paused)})
    return rows


def _open_fire_store(settings: ServiceSettings) -> FireStore:
    from runtime.triggers import FireStore

    try:
        return FireStore.open(settings.resolved_journal_url())
    except Exception as exc:  # SQLAlchemy and OS errors: the options point somewhere unusable
        from service.cli_service import _unopenable

        _unopenable(settings, exc)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Schedules and webhooks: next fire times, pause, resume, fires.",
                      no_args_is_help=True)
    app.add_typer(sub, name="triggers")

    @sub.command("list")
    def list_command(
        files: Annotated[list[Path] | None, typer.Argument(
            help="Workflow documents; without any, the service's stored workflows.")] = None,
        count: Annotated[int, typer.Option("--count", "-n", min=1, max=50,
                                           help="Fire times per schedule.")] = 3,
        as_json: JsonOption = False,
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """Every trigger with its next fire times (in its own time zone), and whether it is paused."""
        now = time.time()
        if files:
            rows = _rows(_file_workflows(files), None, count, now)
        else:
            settings = _settings(data_dir, database_url)
            fire_store = _open_fire_store(settings)
            try:
                rows = _rows(_service_workflows(settings), fire_store, count, now)
            finally:
                fire_store.close()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no workflow has triggers")
            return
        for row in rows:
            state = "  [paused]" if row["paused"] else ""
            typer.echo(f"{row['workflow']}  {row['name']}  {row['trigger']}{state}")
            typer.echo(f"    {row['description']}")
            for when in row.get("next_local", []):
                typer.echo(f"    next: {when}")

    def _pause(workflow_id: str, trigger_id: str, paused: bool, data_dir: Path | None,
               database_url: str | None) -> None:
        settings = _settings(data_dir, database_url)
        targets = {t.key: t for t in _service_workflows(settings)}
        target = targets.get(workflow_id)
        if target is None:
            listing = Given(data_dir, database_url).command("triggers list")
            typer.echo(f"error: no workflow `{workflow_id}` with triggers; `{listing}` shows them", err=True)
            raise typer.Exit(2)
        known = target.trigger_ids()
        if trigger_id != "all" and trigger_id not in known:
            typer.echo(f"error: workflow `{workflow_id}` has no trigger `{trigger_id}`; it has: "
                       + ", ".join(known), err=True)
            raise typer.Exit(2)
        if not paused:
            _refuse_uncallable(settings, target)
        fire_store = _open_fire_store(settings)
        try:
            for tid in known if trigger_id == "all" else [trigger_id]:
                fire_store.set_paused(workflow_id, tid, paused, now=time.time(),
                                      by=os.environ.get("USER") or "cli")
                typer.echo(f"{'paused' if paused else 'resumed'} {workflow_id} {tid}")
        finally:
            fire_store.close()

    @sub.command("pause")
    def pause_command(
        workflow_id: Annotated[str, typer.Argument(help="The service's workflow id (wf_...).")],
        trigger_id: TriggerArgument = "all",
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """Stop a trigger from starting runs (schedules skip their fires; webhooks answer 409)."""
        _pause(workflow_id, trigger_id, True, data_dir, database_url)

    @sub.command("resume")
    def resume_command(
        workflow_id: Annotated[str, typer.Argument(help="The service's workflow id (wf_...).")],
        trigger_id: TriggerArgument = "all",
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """Start a paused trigger again from now (fires that fell in the pause are not caught up).
        Refused while the workflow calls actions nothing can invoke."""
        _pause(workflow_id, trigger_id, False, data_dir, database_url)

    @sub.command("fires")
    def fires_command(
        workflow_id: Annotated[str, typer.Argument(help="The service's workflow id (wf_...).")],
        limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
        as_json: JsonOption = False,
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
    ) -> None:
        """The fires of a workflow's triggers, newest first, with the runs they started."""
        settings = _settings(data_dir, database_url)
        if workflow_id not in {t.key for t in _service_workflows(settings)}:
            listing = Given(data_dir, database_url).command("triggers list")
            typer.echo(f"error: no workflow `{workflow_id}` with triggers; `{listing}` shows them", err=True)
            raise typer.Exit(2)
        fire_store = _open_fire_store(settings)
        try:
            fires = fire_store.fires(workflow_key=workflow_id, limit=limit)
        finally:
            fire_store.close()
        if as_json:
            typer.echo(json.dumps([{**f.__dict__, "scheduled_at": iso(f.scheduled_at),
                                    "created_at": iso(f.created_at), "updated_at": iso(f.updated_at)}
                                   for f in fires], indent=2))
            return
        if not fires:
            typer.echo(f"no fires for {workflow_id}")
        for fire in fires:
            when = iso(fire.scheduled_at) or f"delivery {fire.delivery_id}"
            extra = " (catch-up)" if fire.catch_up else ""
            error = f"  {fire.error}" if fire.error else ""
            typer.echo(f"{when}  {fire.trigger_id}  {fire.state}{extra}  run {fire.run_id or '-'}{error}")

    @sub.command("sign")
    def sign_command(
        body_file: Annotated[Path, typer.Argument(help="The JSON body to deliver (`-` for stdin).")],
        secret_env: Annotated[str, typer.Option("--secret-env", help="Variable holding the secret.")],
        delivery_id: Annotated[str | None,
                               typer.Option("--delivery", help="Delivery id (default: new).")] = None,
    ) -> None:
        """Print the headers that sign a delivery, e.g. for `curl -H ... --data-binary @BODY_FILE`."""
        from runtime.triggers import DELIVERY_HEADER, SIGNATURE_HEADER, sign

        if not secret_env.strip():
            typer.echo("error: --secret-env is empty; name the variable that holds the webhook's secret",
                       err=True)
            raise typer.Exit(2)
        secret = os.environ.get(secret_env)
        if not secret:
            typer.echo(f"error: ${secret_env} is not set", err=True)
            raise typer.Exit(2)
        try:
            body = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()
        except OSError as exc:
            typer.echo(f"error: cannot read {body_file}: {exc.strerror or exc}; give the JSON body's file "
                       "(or `-` for stdin)", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{SIGNATURE_HEADER}: {sign(secret, body, int(time.time()))}")
        typer.echo(f"{DELIVERY_HEADER}: {delivery_id or 'dlv_' + uuid.uuid4().hex}")
