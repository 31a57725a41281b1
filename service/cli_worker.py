"""`overture worker start|submit`: scale out over PostgreSQL (see `runtime.workers`).

    overture worker start  --database-url postgresql+psycopg://… --catalog catalog.yaml   # any machine
    overture worker submit --database-url … --catalog catalog.yaml flow.yaml -i email=a@b.example
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from service.cli_options import Given, fail
from service.cli_run import _catalog, _check_inputs, _check_invokers, parse_inputs

worker_app = typer.Typer(help="Workers that run workflows from a shared PostgreSQL journal.",
                         no_args_is_help=True)

UrlOption = Annotated[str | None, typer.Option(
    "--database-url", envvar="OVERTURE_DATABASE_URL",
    help="PostgreSQL journal shared by the API and every worker (postgresql+psycopg://USER@HOST/DB).")]
CatalogOption = Annotated[list[str], typer.Option(
    "--catalog", "-c", envvar="OVERTURE_CATALOG",
    help="Catalog file or folder with the actions' invoke blocks (repeatable, or comma-separated).")]


def _url(database_url: str | None) -> str:
    if not database_url:
        fail("no journal given; pass --database-url postgresql+psycopg://USER@HOST/DB "
              "(or set OVERTURE_DATABASE_URL)")
    if not database_url.startswith("postgresql"):
        fail(f"workers share a PostgreSQL journal; `{database_url.split(':', 1)[0]}` will not do")
    return database_url


def _paths(catalog: list[str]) -> list[str]:
    return [p for item in catalog for p in item.split(",") if p]


@worker_app.command("start")
def start(
    database_url: UrlOption = None,
    catalog: CatalogOption = [],  # noqa: B006 - typer reads the default, it is never mutated
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Runs driven at once from the queue.")] = 16,
    concurrency: Annotated[int, typer.Option(min=1, help="Action calls in flight at once.")] = 64,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", min=0.5, help="Seconds after its last renewal a dead worker's runs are taken over.")
    ] = 30.0,
    poll_interval: Annotated[float, typer.Option(
        "--poll-interval", min=0.05, help="Seconds between looks for orphaned runs and due timers.")] = 2.0,
    drain_timeout: Annotated[float, typer.Option(
        "--drain-timeout", min=0, help="On SIGTERM, seconds running runs may take to finish.")] = 60.0,
    worker_id: Annotated[str | None, typer.Option(
        "--worker-id", help="Name in the journal (default host:pid).")] = None,
    router: Annotated[str, typer.Option(
        "--router", envvar="OVERTURE_ROUTER",
        help="learned: route steps with alternatives by the optimizer's models once trained "
             "(as `overture serve`); default: always the step's own action.")] = "learned",
    models: Annotated[Path | None, typer.Option(
        "--models", envvar="OVERTURE_MODELS_DIR",
        help="Folder of the trained models (default $OVERTURE_DATA_DIR/models); newer versions "
             "stored there are picked up while the worker runs.")] = None,
    models_poll: Annotated[float, typer.Option(
        "--models-poll", min=0.1, help="Seconds between looks for a newer model version.")] = 30.0,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "info",
) -> None:
    """Run workflows from the queue until SIGTERM/SIGINT, then drain and exit 0."""
    import asyncio

    from runtime.workers import Worker, WorkerOptions
    from runtime.workers.queue import QueueUnavailable

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, logging.getLogger().level))
    url = _url(database_url)
    paths = _paths(catalog)
    if not paths:
        fail("no catalog given; pass --catalog FILE (or set OVERTURE_CATALOG): a worker calls the actions")
    if router not in ("learned", "default"):
        fail(f"--router must be `learned` or `default`, not `{router}`")
    options = WorkerOptions(database_url=url, catalogs=paths, jobs=jobs, concurrency=concurrency,
                            lease_ttl_s=lease_ttl, poll_interval_s=poll_interval,
                            drain_timeout_s=drain_timeout,
                            router="learned" if router == "learned" else "default",
                            models_dir=str(models) if models is not None else None,
                            models_poll_s=models_poll)
    if worker_id:
        options.worker_id = worker_id
    worker = Worker(options, catalog=_catalog(paths))
    try:
        def ready() -> None:
            typer.echo(f"worker {options.worker_id} ready", err=True)

        left = asyncio.run(worker.run(install_signals=True, ready=ready))
    except QueueUnavailable as exc:
        fail(str(exc), code=1)
    typer.echo(f"worker {options.worker_id} stopped after {worker.stats.jobs} job(s); "
               f"{left} run(s) left to other workers", err=True)


@worker_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="Workflow document (YAML or JSON).")],
    database_url: UrlOption = None,
    catalog: CatalogOption = [],  # noqa: B006
    input: Annotated[list[str], typer.Option("--input", "-i", help="Run input key=value (repeatable).")
                     ] = [],  # noqa: B006
    inputs_file: Annotated[Path | None, typer.Option("--inputs-file", help="YAML/JSON inputs.")] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many runs to start.")] = 1,
    wait: Annotated[float | None, typer.Option(
        "--wait", min=0.0,
        help="Wait up to this many seconds until every run has ended or paused for an approval; "
             "prints a summary, and for each paused run the `overture approve` command. Exit 0 when "
             "each run succeeded or waits for an approval; 1 when one failed or was cancelled, or "
             "is still going when the time is up.")
    ] = None,
) -> None:
    """Journal run(s) and queue them for the workers; prints one run id per line."""
    import asyncio

    from runtime.invokers import build_invoker
    from runtime.journal import Journal
    from runtime.secrets import SecretStore
    from runtime.workers import QueueingEngine, RunQueue, ensure_schema
    from runtime.workers.queue import QueueUnavailable
    from workflow.loader import read_data
    from workflow.validator import ensure_valid

    url = _url(database_url)
    data = read_data(file)
    cat = _catalog(_paths(catalog), data)
    workflow = ensure_valid(data, cat)
    _check_invokers(workflow, cat, file)
    inputs = parse_inputs(input, inputs_file)
    _check_inputs(workflow.inputs, inputs)
    try:
        ensure_schema(url)
    except QueueUnavailable as exc:
        fail(str(exc), code=1)
    secrets = SecretStore.from_env()
    journal = Journal.open(url, redact=secrets.redact)

    async def go() -> list[str]:
        engine = QueueingEngine(cat, journal, build_invoker(cat, secrets), secrets=secrets,
                                queue=RunQueue(url), worker_id="submit")
        try:
            return [await engine.start_run(workflow, inputs) for _ in range(count)]
        finally:
            await engine.close()

    try:
        try:
            ids = asyncio.run(go())
        except QueueUnavailable as exc:
            fail(str(exc), code=1)
        for run_id in ids:
            typer.echo(run_id)
        if wait is None:
            return
        end = time.monotonic() + wait
        while True:
            states = {r: journal.get_run(r).state.value for r in ids}
            # a run waiting for an approval waits for a person: that is where `--wait` ends for it
            paused = {r: {a.step_id: a.approvers for a in journal.approvals(r, pending_only=True)}
                      for r, s in states.items() if s == "waiting"}
            settled = {r for r, s in states.items()
                       if s in ("succeeded", "failed", "cancelled") or paused.get(r)}
            if len(settled) == len(ids) or time.monotonic() >= end:
                break
            time.sleep(0.2)
        summary = {s: list(states.values()).count(s) for s in sorted(set(states.values()))}
        typer.echo(json.dumps(summary), err=True)
        given = Given(database_url=database_url, catalog=catalog)
        for run_id, steps in paused.items():
            for step, approvers in sorted(steps.items()):
                # `overture approve` refuses a --by (default $USER) that is not an approver, so the
                # command shown asks for one and names them, as `overture run` does
                typer.echo(f"run {run_id} is waiting for approval of `{step}`: "
                           f"{given.command(f'approve {run_id} {step}', catalog=True)}"
                           + (" --by NAME" if approvers else ""), err=True)
                if approvers:
                    typer.echo(f"  may be decided by: {', '.join(approvers)}", err=True)
        ok = all(s == "succeeded" or paused.get(r) for r, s in states.items())
        if not ok:
            still = [r for r, s in states.items() if r not in settled]
            if still:
                typer.echo(f"{len(still)} run(s) still going after --wait {wait:g}s: "
                           f"`{given.command('runs list')}` follows them", err=True)
            raise typer.Exit(1)
    finally:
        journal.close()


def register(app: typer.Typer) -> None:
    app.add_typer(worker_app, name="worker")
