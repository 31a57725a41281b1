"""`overture optimize`: train the models, list proposals for a workflow, accept one.

    overture optimize train [--journal URL] [--incremental]
    overture optimize suggest WORKFLOW_FILE [--catalog CATALOG] [--format json]
    overture optimize accept WORKFLOW_FILE PROPOSAL_ID

History comes from the runtime's journal (default: `$OVERTURE_DATABASE_URL`, else
`$OVERTURE_DATA_DIR/journal.db`); models and proposals are stored in the data dir beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from runtime.journal import Journal

JournalOption = Annotated[
    str | None,
    typer.Option("--journal", "-j", help="Journal database URL or SQLite path (default: the data dir's).",
                 envvar="OVERTURE_JOURNAL_URL"),
]
CatalogOpt = Annotated[
    list[str],
    typer.Option("--catalog", "-c", help="Catalog file or folder (for costs, side effects, alternatives).",
                 envvar="OVERTURE_CATALOG"),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _open(journal: str | None) -> Journal:
    """The journal `--journal` names, or one line saying why it cannot be read."""
    from optimizer.history import open_journal
    from service.cli_run import _missing_journal

    if journal is not None and not journal.strip():
        _fail("--journal is empty; give a journal database URL or SQLite path")
    if journal is not None and "://" not in journal:
        missing = _missing_journal(Path(journal), None)
        if missing is not None:
            _fail(f"no journal at {missing}: nothing has run there; check --journal (runs are kept in "
                  "the --data-dir of `overture run`, as journal.db), or run the workflow first")
    try:
        return open_journal(journal)
    except Exception as exc:  # SQLAlchemy and OS errors: --journal points somewhere unusable
        from workflow.errors import OvertureError

        if isinstance(exc, OvertureError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"cannot open the journal at {journal or 'the default'}: {first}; check --journal "
              "(a journal.db, its folder, or a postgresql+psycopg:// URL)")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Learn from run history; propose and apply rewrites.", no_args_is_help=True)
    app.add_typer(sub, name="optimize")

    @sub.command("train")
    def train_command(
        journal: JournalOption = None,
        incremental: Annotated[bool, typer.Option(help="Continue from the latest model version.")] = False,
        window_s: Annotated[float, typer.Option(help="Recent-stats window; use the engine's.")] = 3600.0,
    ) -> None:
        """Fit duration and failure models per action from the journal; store a new version."""
        from optimizer.history import load_history, require
        from optimizer.models import train, update
        from optimizer.store import ModelStore

        if not (0 < window_s < float("inf")):
            _fail(f"--window-s must be a number of seconds above 0; got {window_s}")
        store = ModelStore()
        j = _open(journal)
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
            _fail(f"--format takes text or json; got `{format}`")
        workflow = load_workflow(workflow_file)
        cat = load_catalog(*catalog) if catalog else None
        models = ModelStore().latest()
        j = _open(journal)
        try:
            records = require(load_history(j, workflow=workflow.name), j.url, workflow.name)
        finally:
            j.close()
        proposals = suggest(workflow, records, catalog=cat, models=models)
        store = ProposalStore()
        store.replace_open(workflow.name, proposals)
        automatic = auto_apply(workflow, proposals)
        if automatic is not None:
            # the workflow opted in (`optimize: {auto: true}`) and the evidence is strong
            save_workflow(accept(automatic, workflow), workflow_file)
            store.set_status(automatic.id, "accepted")
            typer.echo(f"{workflow_file}: applied {automatic.id} ({automatic.kind}) automatically", err=True)
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
            typer.echo(f"\naccept one with: overture optimize accept {workflow_file} PROPOSAL_ID")

    @sub.command("accept")
    def accept_command(
        workflow_file: Annotated[Path, typer.Argument(help="The document the proposal was made for.")],
        proposal_id: Annotated[str, typer.Argument(help="The id `suggest` printed, e.g. pa-1a2b3c4d.")],
    ) -> None:
        """Apply a proposal: rewrite the document (one version up) and mark the proposal accepted."""
        from optimizer.proposals import ProposalStore, accept
        from workflow.loader import load_workflow, save_workflow

        workflow = load_workflow(workflow_file)
        store = ProposalStore()
        proposal = store.get(workflow.name, proposal_id)
        new = accept(proposal, workflow)
        save_workflow(new, workflow_file)
        store.set_status(proposal.id, "accepted")
        typer.echo(f"{workflow_file}: applied {proposal.id} ({proposal.kind}); now version {new.version}")
