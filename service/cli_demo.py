"""`overture demo`: plan, run, fail and compensate against local demo services, then serve the UI."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer


def demo(
    no_serve: Annotated[bool, typer.Option(
        "--no-serve", help="Exit after the two runs (for tests and CI).")] = False,
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535, help="Port of the UI and API on 127.0.0.1 (0 = any free port).")] = 8000,
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Where the demo keeps its database and catalog.")] = Path(".overture/demo"),
    failure_rate: Annotated[float, typer.Option(
        "--failure-rate", min=0.0, max=1.0,
        help="Chance (0–1) that any call to a demo service answers 503; the plan gets retries to recover.",
    )] = 0.0,
    fail: Annotated[list[str], typer.Option(
        "--fail", help="Make a demo service fail for good in every run: crm, billing, provisioning or chat "
                       "(repeat for several).",
    )] = [],  # noqa: B006 - typer reads the default, it is never mutated
    latency_scale: Annotated[float, typer.Option(
        "--latency-scale", min=0.0, help="Multiply the services' latencies (tens of ms each); 0 = instant.",
    )] = 1.0,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the injected failures and latencies.")] = None,
) -> None:
    """The main job: plain English → plan → run → failure → compensation, then the UI with that history."""
    from service.cli import fail as fail_with
    from service.demo.runner import DemoOptions, run_demo
    from service.demo.services import SERVICES

    unknown = sorted(set(fail) - set(SERVICES))
    if unknown:
        fail_with(f"--fail takes {', '.join(SERVICES)}; got {', '.join(unknown)}")
    if data_dir.exists() and not data_dir.is_dir():
        fail_with(f"--data-dir {data_dir} is a file; give a folder (it is created when missing)")
    options = DemoOptions(data_dir=data_dir, port=0 if no_serve else port, failure_rate=failure_rate,
                          fail=set(fail), latency_scale=latency_scale, seed=seed, serve=not no_serve)
    try:
        result, session = run_demo(options, typer.echo, keep_open=not no_serve)
    except OSError as exc:
        if "address already in use" in str(exc).lower() or getattr(exc, "errno", None) == 98:
            fail_with(f"port {port} is in use; pass --port with another port (or 0 for any free one)")
        if exc.filename is not None and Path(str(exc.filename)).resolve().is_relative_to(data_dir.resolve()):
            fail_with(f"cannot use --data-dir {data_dir}: {exc.strerror or exc} ({exc.filename})")
        raise
    first, second = result.runs
    compensated = (second.compensation or {}).get("status") == "complete"
    # with --fail the first run is meant to fail too; the point then is that it was undone
    first_ok = first.state == "succeeded" if not fail else (first.compensation or {}).get("status") in (
        "complete", None)
    ok = first_ok and second.state == "failed" and compensated
    typer.echo("")
    if ok and not fail:
        typer.echo("The demo went as planned: the first run succeeded; the second failed and was fully "
                   "compensated.")
    elif ok:
        failing = ", ".join(sorted(fail))
        typer.echo(f"The demo went as planned with {failing} failing: what had been done was undone.")
    else:
        typer.echo("The demo did not go as planned; see the runs above.")
    if no_serve:
        raise typer.Exit(0 if ok else 1)
    typer.echo("")
    typer.echo(f"Overture is serving the UI and API at {result.app_url}/")
    typer.echo(f"  open: {result.app_url}/ui/#token={result.token}")
    typer.echo(f"  API token: {result.token}  (role `*`: it may decide any approval)")
    typer.echo(f"  the compensated run: {result.app_url}/ui/#/runs/{second.id}")
    typer.echo("In the UI: describe a process, check and edit the plan, accept it, run it and watch it live;")
    typer.echo("Runs lists both demo runs with their durations.")
    typer.echo("Press Ctrl+C to stop.")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping")
    finally:
        session.close()


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    # `kill` and service managers send SIGTERM: stop the servers as cleanly as on Ctrl+C
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
