"""`overture serve` and `overture token create|list|revoke`."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service.cli_options import Given, fail

if TYPE_CHECKING:  # imported in the commands, so that `overture --help` stays fast
    from service.settings import ServiceSettings
    from service.store import Store

class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


token_app = typer.Typer(help="Manage API tokens (stored hashed; a token is shown once).",
                        no_args_is_help=True)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default: $OVERTURE_DATA_DIR or ./.overture).")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in the data folder).")
]


_OPTIONS = {"data_dir": "--data-dir", "database_url": "--database-url", "catalogs": "--catalog"}


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, the API's time format, by the runtime's light clock module: the
    API's own `iso` would import FastAPI (~0.6 s) into `overture token list`."""
    from runtime.clock import iso_time

    return None if ts is None else iso_time(ts)


def _settings(data_dir: Path | None, database_url: str | None, catalogs: list[str] | None = None
              ) -> ServiceSettings:
    from pydantic import ValidationError

    from service.settings import ServiceSettings

    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    if catalogs:
        overrides["catalogs"] = catalogs
    try:
        return ServiceSettings(**overrides)  # type: ignore[arg-type]  # pydantic-settings takes field names
    except ValidationError as exc:  # an OVERTURE_* variable the settings cannot take
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        where = _OPTIONS.get(field) if field in overrides else f"${'OVERTURE_' + field.upper()}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        fail(f"{where or 'the settings'}: {err['msg']} (found {err.get('input')!r}){more}; "
              "fix or unset it")


def _unopenable(settings: ServiceSettings, exc: Exception) -> NoReturn:
    """A data folder or database URL the service cannot use, as one line naming the option."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if settings.database_url:
        fail(f"cannot open the database at {settings.database_url}: {first}; check --database-url "
              "(e.g. postgresql+psycopg://user@host/db)")
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        first = "it is a file, not a folder"
    fail(f"cannot use {settings.data_dir} as the data folder: {first}; check --data-dir (a folder, "
          "created when missing)")


def _store(data_dir: Path | None, database_url: str | None) -> Store:
    from service.store import Store

    settings = _settings(data_dir, database_url)
    try:
        settings.ensure_data_dir()
        return Store(settings.resolved_database_url())
    except Exception as exc:  # OS and SQLAlchemy errors: the options point somewhere unusable
        _unopenable(settings, exc)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")] = "default",
    role: Annotated[list[str], typer.Option(
        "--role", "-r", help="A role the holder decides approvals as (a plan's `approvers: [manager]`); "
                             "repeat for several. `*` may decide any approval (a local instance's owner).",
    )] = [],  # noqa: B006 - typer reads the default, it is never mutated
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Make an API token and print it once (only its hash is stored)."""
    from service.auth import create_token, role_problem

    if not name.strip():
        typer.echo("error: --name is empty; say what the token is for, e.g. --name ci-bot", err=True)
        raise typer.Exit(2)
    if any(not c.isprintable() for c in name):
        fail("--name holds a control character (a line break, a tab); give one line, e.g. --name ci-bot")
    for problem in filter(None, map(role_problem, role)):
        fail(problem)

    store = _store(data_dir, database_url)
    try:
        token_id, token = create_token(store, name, role)
    finally:
        store.close()
    typer.echo(token)
    as_roles = f" with roles {', '.join(dict.fromkeys(role))}" if role else ""
    typer.echo(f"created token {token_id} ({name}{as_roles}); it is shown only now. "
               "Send it as `Authorization: Bearer <token>`.", err=True)


@token_app.command("list")
def token_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """List tokens (id, name, roles, prefix, created, last used, revoked); never the tokens themselves."""
    if format not in ("text", "json"):
        typer.echo(f"error: --format takes text or json; got `{format}`", err=True)
        raise typer.Exit(2)
    store = _store(data_dir, database_url)
    try:
        rows = store.list_tokens()
    finally:
        store.close()
    data = [{"id": r.id, "name": r.name, "roles": r.roles or [], "prefix": r.prefix + "…",
             "created_at": iso(r.created_at), "last_used_at": iso(r.last_used_at),
             "revoked_at": iso(r.revoked_at)} for r in rows]
    if format == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    if not data:
        typer.echo(f"no tokens; make one with `{Given(data_dir, database_url).command('token create')} "
                   "--name NAME`")
    for item in data:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else "active"
        roles = f"roles {','.join(item['roles'])}" if item["roles"] else "no roles"
        typer.echo(f"{item['id']}  {item['name']:<20} {roles:<20} {item['prefix']:<12} "
                   f"created {item['created_at']}  last used {item['last_used_at'] or 'never'}  {state}")


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="The token's id (tok_…) or name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a token by id, or every active token with that name. Exit 1 when none matched."""
    if not token.strip():
        fail(f"give the token's id (tok_…) or name; `{Given(data_dir, database_url).command('token list')}` "
              "shows them")
    store = _store(data_dir, database_url)
    try:
        revoked = store.revoke_token(token)
    finally:
        store.close()
    if not revoked:
        listing = Given(data_dir, database_url).command("token list")
        typer.echo(f"error: no active token with id or name `{token}`; `{listing}` shows them", err=True)
        raise typer.Exit(1)
    for row in revoked:
        typer.echo(f"revoked {row.id} ({row.name})")


def _check_port(host: str, port: int) -> None:
    """Fail with one line, before any start-up work, when the address cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        typer.echo(f"error: --host `{host}` does not resolve ({exc.strerror}); use e.g. 127.0.0.1", err=True)
        raise typer.Exit(2) from None
    if port == 0:
        return  # any free port: nothing to check beyond the host
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
            typer.echo(f"error: port {port} on {host} {reason}; pass --port with another port "
                       "(or 0 for any free one)", err=True)
            raise typer.Exit(2) from None


def _shown(url: str) -> str:
    """A database URL with its password masked, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show only its scheme
        return url.split("://", 1)[0] + "://…"


def _where(settings: ServiceSettings) -> str:
    """Where the service keeps what: the journal and its tables, and what the data folder holds."""
    if not settings.database_url and not settings.journal_url:
        return f"data: {settings.data_dir} (journal.db, overture.db, models, proposals)"
    database, journal = settings.resolved_database_url(), settings.resolved_journal_url()
    if database == journal:
        places = [f"journal and service tables: {_shown(journal)}"]
    else:
        places = [f"journal: {_shown(journal)}", f"service tables: {_shown(database)}"]
    kept = ["models", "proposals"]
    for name, url in (("overture.db", database), ("journal.db", journal)):
        if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).parent.resolve() == \
                settings.data_dir.resolve():
            kept.insert(0, name)
    return "; ".join([*places, f"data folder {settings.data_dir}: {', '.join(kept)}"])


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="Port to listen on (0 = any free port).")] = 8000,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    catalog: Annotated[list[str] | None, typer.Option(
        "--catalog", "-c", envvar="OVERTURE_CATALOG",
        help="Catalog file or folder served as catalog `default` (repeatable, or comma-separated).")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn log level.")] = LogLevel.info,
) -> None:
    """Serve the REST API (and the web UI) with uvicorn; runs resume on start and stop cleanly."""
    import uvicorn

    from service.app import create_app

    _check_port(host, port)
    from workflow.errors import OvertureError

    settings = _settings(data_dir, database_url, catalog)
    try:
        app = create_app(settings)
    except OvertureError:
        raise  # a catalog that cannot be read: one line from `main`
    except Exception as exc:  # OS and SQLAlchemy errors: the options point somewhere unusable
        _unopenable(settings, exc)
    typer.echo(f"serving on http://{host}:{port}  (docs: /docs, health: /health; {_where(settings)})",
               err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level.value, proxy_headers=False)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.command("serve")(serve)
