"""`overture optimize`: train the models, list proposals for a workflow, accept one.

    overture optimize train [--data-dir DIR | --database-url URL] [--incremental]
    overture optimize suggest WORKFLOW_FILE [--catalog CATALOG] [--format json] [--data-dir DIR]
    overture optimize accept WORKFLOW_FILE PROPOSAL_ID [--catalog CATALOG] [--data-dir DIR]

Like every other command: history comes from the runtime's journal, `--database-url`
(`$OVERTURE_DATABASE_URL`) when given, else `<data dir>/journal.db`; the data dir is `--data-dir`
(`$OVERTURE_DATA_DIR`, default `./.overture`) and holds the models (`models/`) and the proposals
(`proposals.json`) whichever database the journal is in. `--journal` (`$OVERTURE_JOURNAL_URL`), a
journal URL or SQLite path, still works as a hidden alias that wins over both for the journal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli_options import Given, fail

if TYPE_CHECKING:
    from runtime.journal import Journal

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="OVERTURE_DATA_DIR",
                 help="Data folder: the journal (journal.db, unless --database-url), the models and the "
                      "proposals; default $OVERTURE_DATA_DIR or ./.overture."),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="OVERTURE_DATABASE_URL",
                 help="Journal database URL, e.g. postgresql+psycopg://user@host/db (models and proposals "
                      "stay in the data folder)."),
]
JournalOption = Annotated[
    str | None,
    typer.Option("--journal", "-j", hidden=True, envvar="OVERTURE_JOURNAL_URL",
                 help="Journal URL or SQLite path; an older spelling of --database-url / --data-dir."),
]
CatalogOpt = Annotated[
    list[str],
    typer.Option("--catalog", "-c", help="Catalog file or folder (for costs, side effects, alternatives).",
                 envvar="OVERTURE_CATALOG"),
]


def _data_dir(data_dir: Path | None) -> Path:
    from optimizer.store import data_dir as default_data_dir

    return data_dir if data_dir is not None else default_data_dir()


def _open(journal: str | None, database_url: str | None = None, data_dir: Path | None = None) -> Journal:
    """The journal `--journal`, else `--database-url`, else `--data-dir` names, or one line saying
    why it cannot be read (naming the option to fix)."""
    from optimizer.history import open_journal
    from service.cli_run import _missing_journal

    if journal is not None and not journal.strip():
        fail("--journal is empty; give a journal database URL or SQLite path")
    if database_url is not None and not database_url.strip():
        fail("--database-url is empty; give a journal database URL, e.g. postgresql+psycopg://user@host/db")
    option, target = (("--journal", journal) if journal is not None else
                      ("--database-url", database_url) if database_url else
                      ("--data-dir", str(_data_dir(data_dir))))
    assert target is not None
    if "://" not in target:
        missing = _missing_journal(Path(target), None)
        if missing is not None:
            fail(f"no journal at {missing}: nothing has run there; check {option} (runs are kept in "
                  "the --data-dir of `overture run`, as journal.db), or run the workflow first")
    try:
        return open_journal(target)
    except Exception as exc:  # SQLAlchemy and OS errors: the option points somewhere unusable
        from workflow.errors import OvertureError

        if isinstance(exc, OvertureError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"cannot open the journal at {target}: {first}; check {option} "
              "(a journal.db, its folder, or a postgresql+psycopg:// URL)")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Learn from run history; propose and apply rewrites.", no_args_is_help=True)
    app.add_typer(sub, name="optimize")

    @sub.command("train")
    def train_command(
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
        journal: JournalOption = None,
        incremental: Annotated[bool, typer.Option(help="Continue from the latest model version.")] = False,
        window_s: Annotated[float, typer.Option(help="Recent-stats window; use the engine's.")] = 3600.0,
    ) -> None:
        """Fit duration and failure models per action from the journal; store a new version."""
        from optimizer.history import load_history, require
        from optimizer.models import train, update
        from optimizer.store import ModelStore

        if not (0 < window_s < float("inf")):
            fail(f"--window-s must be a number of seconds above 0; got {window_s}")
        store = ModelStore(_data_dir(data_dir) / "models")
        j = _open(journal, database_url, data_dir)
        try:
            previous = store.latest() if incremental else None
            since = previous.last_started_at if previous is not None else None
            records = load_history(j, since=since)
            if previous is None:
                models = train(require(records, j.url), version=store.next_version(), window_s=window_s)
            else:
                models = update(previous, records)
                models.version = store.next_version()
        finally:
            j.close()
        path = store.save(models)
        typer.echo(f"trained v{models.version} on {models.n_attempts} attempts of {len(models.actions)} "
                   f"actions in {models.train_seconds:.2f}s → {path}")

    @sub.command("suggest")
    def suggest_command(
        workflow_file: Annotated[Path, typer.Argument(help="The workflow document (YAML or JSON).")],
        catalog: CatalogOpt = [],  # noqa: B006 - typer reads the default, it is never mutated
        data_dir: DataDirOption = None,
        database_url: DatabaseOption = None,
        journal: JournalOption = None,
        format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    ) -> None:
        """Propose rewrites for a workflow from its history, with predicted gains and diffs."""
        from optimizer.history import load_history, require
        from optimizer.predict import predict_run_duration
        from optimizer.proposals import ProposalStore, accept
        from optimizer.store import ModelStore
        from optimizer.suggest import auto_apply, suggest
        from workflow.loader import load_catalog, load_workflow, save_workflow

        if format not in ("text", "json"):
            fail(f"--format takes text or json; got `{format}`")
        workflow = load_workflow(workflow_file)
        cat = load_catalog(*catalog) if catalog else None
        models = ModelStore(_data_dir(data_dir) / "models").latest()
        j = _open(journal, database_url, data_dir)
        try:
            records = require(load_history(j, workflow=workflow.name), j.url, workflow.name)
        finally:
            j.close()
        proposals = suggest(workflow, records, catalog=cat, models=models)
        store = ProposalStore(_data_dir(data_dir) / "proposals.json")
        store.replace_open(workflow.name, proposals)
        automatic = auto_apply(workflow, proposals)
        if automatic is not None:
            # the workflow opted in (`optimize: {auto: true}`) and the evidence is strong; with a
            # catalog, only a rewrite it can invoke (as `accept --catalog` checks)
            from runtime.invokers.uncallable import cannot_run, uncallable_calls

            applied = accept(automatic, workflow)
            calls = uncallable_calls(applied, cat) if cat is not None else []
            if calls:
                note = f"{automatic.id} was not applied automatically: {cannot_run(calls)}"
            else:
                save_workflow(applied, workflow_file)
                store.set_status(automatic.id, "accepted")
                note = f"applied {automatic.id} ({automatic.kind}) automatically"
            typer.echo(f"{workflow_file}: {note}", err=True)
        forecast = predict_run_duration(workflow, models) if models is not None else None
        if format == "json":
            typer.echo(json.dumps({
                "workflow": workflow.name,
                "predicted_duration_s": None if forecast is None else
                {"p50": forecast.p50_s, "p90": forecast.p90_s},
                "proposals": [p.model_dump(mode="json") for p in proposals],
            }, indent=2))
            return
        runs = len({r.run_id for r in records})
        typer.echo(f"{workflow.name}: {runs} runs, {len(records)} attempts")
        if forecast is not None:
            typer.echo(f"predicted run duration: p50 {forecast.p50_s:.1f}s, p90 {forecast.p90_s:.1f}s")
        if not proposals:
            typer.echo("no proposals: history shows nothing to gain")
        for p in proposals:
            ev = p.evidence
            typer.echo(f"\n[{p.id}] {p.title}")
            typer.echo(f"  gain: {p.gain.describe()}")
            for side in p.side_effects:
                typer.echo(f"  also: {side.describe()}")
            typer.echo(f"  evidence: {ev.runs} runs, {ev.attempts} attempts, confidence {ev.confidence:.0%}")
            for line in p.summary:
                typer.echo(f"  - {line}")
            typer.echo("  " + p.diff.replace("\n", "\n  ").rstrip())
        if proposals:
            given = Given(data_dir=data_dir)
            typer.echo(f"\naccept one with: {given.command(f'optimize accept {workflow_file} PROPOSAL_ID')}")

    @sub.command("accept")
    def accept_command(
        workflow_file: Annotated[Path, typer.Argument(help="The document the proposal was made for.")],
        proposal_id: Annotated[str, typer.Argument(help="The id `suggest` printed, e.g. pa-1a2b3c4d.")],
        data_dir: DataDirOption = None,
        database_url: Annotated[str | None, typer.Option(
            "--database-url", envvar="OVERTURE_DATABASE_URL",
            help="Accepted like the other commands; proposals are kept in the data folder.")] = None,
        catalog: Annotated[list[str], typer.Option(
            "--catalog", "-c", envvar="OVERTURE_CATALOG",
            help="Catalog file or folder: the rewrite must call only actions it can invoke (as "
                 "`overture run` checks), else the file is left as it is.")] = [],  # noqa: B006
    ) -> None:
        """Apply a proposal: rewrite the document (one version up) and mark the proposal accepted.
        With --catalog, a rewrite calling an action with no `invoke:` block there is refused."""
        from optimizer.proposals import ProposalStore, accept
        from workflow.loader import load_workflow, save_workflow

        workflow = load_workflow(workflow_file)
        from optimizer.errors import ProposalNotFound

        store = ProposalStore(_data_dir(data_dir) / "proposals.json")
        try:
            proposal = store.get(workflow.name, proposal_id)
        except ProposalNotFound:
            suggest = Given(data_dir=data_dir).command(f"optimize suggest {workflow_file}")
            fail(f"no proposal `{proposal_id}` for workflow `{workflow.name}` in {store.path}; "
                  f"`{suggest}` lists the current ones")
        new = accept(proposal, workflow)
        if catalog:
            # rewrites reuse the workflow's actions, but the catalog may have changed since
            from service.cli import catalog_for
            from service.cli_run import _check_invokers

            outcome = f"proposal `{proposal.id}` was not applied; the file is unchanged"
            _check_invokers(new, catalog_for(catalog), workflow_file, outcome)
        save_workflow(new, workflow_file)
        store.set_status(proposal.id, "accepted")
        typer.echo(f"{workflow_file}: applied {proposal.id} ({proposal.kind}); now version {new.version}")
