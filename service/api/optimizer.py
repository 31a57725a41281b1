"""The optimizer over HTTP: train on the journal, list a workflow's proposals, accept one.

Models and proposals live in the service's data dir (`<data_dir>/models`, `<data_dir>/proposals.json`),
the same layout `overture optimize` uses beside a journal. Training swaps the new models into the
running engine's learned router, so routing improves without a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field

from service.api.models import VersionOut
from service.api.runs import uncallable, uncallable_problem
from service.api.services import Services, services
from service.api.workflows import version_out
from service.problems import ApiProblem, ProblemItem, to_item
from workflow.document import Workflow
from workflow.errors import InvalidWorkflow
from workflow.validator import ensure_valid

router = APIRouter(tags=["optimizer"])


def models_dir(svc: Services) -> Path:
    return svc.settings.data_dir / "models"


def proposals_path(svc: Services) -> Path:
    return svc.settings.data_dir / "proposals.json"


def load_service_router(svc: Services) -> Any:
    """The engine's router per `OVERTURE_ROUTER`: the learned one over the stored models, when
    there are models and the setting is `learned`; else None (the engine's default router)."""
    if svc.settings.router != "learned":
        return None
    from optimizer.router import load_router

    return load_router(str(models_dir(svc)))


class TrainIn(BaseModel):
    incremental: bool = False
    """Continue from the latest stored version with the attempts since."""
    window_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    """Recent-stats window; the engine's `stats_window_s`."""


class TrainOut(BaseModel):
    version: int
    attempts: int
    actions: list[str]
    train_seconds: float
    router: str
    """`learned` when the running engine now routes with these models, else `default`."""


class GainOut(BaseModel):
    metric: str
    before: float
    after: float
    unit: str
    value: float
    relative: float
    text: str


class EvidenceOut(BaseModel):
    runs: int
    attempts: int
    confidence: float


class ProposalOut(BaseModel):
    id: str
    kind: str
    title: str
    summary: list[str]
    gain: GainOut
    side_effects: list[GainOut]
    evidence: EvidenceOut
    diff: str
    status: str
    workflow_version: int | None


class ProposalsOut(BaseModel):
    workflow_id: str
    version: int
    runs: int
    attempts: int
    proposals: list[ProposalOut]


class _Journal:
    """The engine's journal, or one opened for this request when the engine is not running."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.own: Any = None

    def __enter__(self) -> Any:
        if self.svc.journal is not None:
            return self.svc.journal
        from runtime.journal import Journal

        self.own = Journal.open(self.svc.settings.resolved_journal_url())
        return self.own

    def __exit__(self, *_: object) -> None:
        if self.own is not None:
            self.own.close()


@router.post("/v1/optimizer/train", response_model=TrainOut, summary="Train the optimizer's models")
def train_models(body: TrainIn | None = Body(default=None), svc: Services = Depends(services)) -> TrainOut:
    """Fit per-action duration and failure models on the journal's attempts and store a new version;
    the running engine's learned router switches to it."""
    from optimizer.history import load_history
    from optimizer.models import train, update
    from optimizer.router import LearnedRouter
    from optimizer.store import ModelStore

    options = body or TrainIn()
    store = ModelStore(models_dir(svc))
    previous = store.latest() if options.incremental else None
    with _Journal(svc) as journal:
        records = load_history(journal, since=previous.last_started_at if previous is not None else None)
    if previous is None and not records:
        raise ApiProblem(409, "the journal has no finished action attempts yet; run a workflow first",
                         kind="no-history")
    if previous is None:
        models = train(records, version=store.next_version(), window_s=options.window_s)
    else:
        models = update(previous, records)
        models.version = store.next_version()
    store.save(models)
    routing = "default"
    engine = svc.engine
    if engine is not None and svc.settings.router == "learned":
        current = getattr(engine, "router", None)
        if isinstance(current, LearnedRouter):
            current.replace_models(models)
        else:
            # the path a restart takes (`load_service_router`), so the first training's router is
            # set up as every later one is: from the store, with the loaded models out of the
            # collector's reach (`load_router`'s gc.freeze)
            engine.router = load_service_router(svc)
        routing = "learned"
    return TrainOut(version=models.version, attempts=models.n_attempts, actions=sorted(models.actions),
                    train_seconds=models.train_seconds, router=routing)


def _gain(g: Any) -> GainOut:
    return GainOut(metric=g.metric, before=g.before, after=g.after, unit=g.unit, value=g.value,
                   relative=g.relative, text=g.describe())


def _proposal_out(p: Any) -> ProposalOut:
    return ProposalOut(id=p.id, kind=p.kind, title=p.title, summary=list(p.summary), gain=_gain(p.gain),
                       side_effects=[_gain(s) for s in p.side_effects],
                       evidence=EvidenceOut(runs=p.evidence.runs, attempts=p.evidence.attempts,
                                            confidence=p.evidence.confidence),
                       diff=p.diff, status=p.status, workflow_version=p.workflow_version)


def _current(svc: Services, workflow_id: str) -> tuple[Any, Workflow]:
    row = svc.version_row(workflow_id)
    workflow = svc.parsed(row)
    workflow.version = row.version  # stored documents leave numbering to the store
    return row, workflow


@router.get("/v1/workflows/{workflow_id}/proposals", response_model=ProposalsOut,
            summary="Proposed rewrites of a workflow, from its history")
def list_proposals(workflow_id: str, svc: Services = Depends(services)) -> ProposalsOut:
    """Rewrites the optimizer proposes for the latest version (parallelize, fail-fast order,
    retries and timeouts, routing alternatives), each with its predicted gain, evidence and diff.
    Each call replaces the workflow's earlier open proposals."""
    from optimizer.history import load_history
    from optimizer.proposals import ProposalStore
    from optimizer.store import ModelStore
    from optimizer.suggest import suggest

    row, workflow = _current(svc, workflow_id)
    catalog = svc.catalog(svc.workflow_row(workflow_id).catalog_id)
    with _Journal(svc) as journal:
        records = load_history(journal, workflow=workflow.name)
    proposals = []
    if records:
        proposals = suggest(workflow, records, catalog=catalog, models=ModelStore(models_dir(svc)).latest())
    ProposalStore(proposals_path(svc)).replace_open(workflow.name, proposals)
    return ProposalsOut(workflow_id=workflow_id, version=row.version, runs=len({r.run_id for r in records}),
                        attempts=len(records), proposals=[_proposal_out(p) for p in proposals])


def _at_proposal(workflow_id: str, message: str, code: str = "stale") -> ProblemItem:
    return ProblemItem(location="path.proposal_id", message=message, code=code,
                       hint=f"GET /v1/workflows/{workflow_id}/proposals lists the open proposals")


@router.post("/v1/workflows/{workflow_id}/proposals/{proposal_id}/accept", status_code=201,
             response_model=VersionOut, summary="Accept a proposal: a new version of the workflow")
def accept_proposal(workflow_id: str, proposal_id: str, svc: Services = Depends(services)) -> VersionOut:
    """Store the proposal's rewritten document as the next version (validated like a PUT). A 409
    says the proposal was made for an older version; list the proposals again. A 422 locates each
    action of the rewrite the service cannot invoke (as `POST /v1/runs` refuses it); nothing is saved."""
    from optimizer.errors import ProposalNotFound, StaleProposal
    from optimizer.proposals import ProposalStore, accept

    row, workflow = _current(svc, workflow_id)
    store = ProposalStore(proposals_path(svc))
    try:
        proposal = store.get(workflow.name, proposal_id)
        if proposal.status not in ("open", "accepted"):
            raise ApiProblem(409, f"proposal `{proposal_id}` is {proposal.status}; list the proposals again",
                             kind="stale-proposal", problems=[_at_proposal(
                                 workflow_id, f"proposal `{proposal_id}` is {proposal.status}")])
        new = accept(proposal, workflow)
    except ProposalNotFound as exc:
        raise ApiProblem(404, str(exc), kind="proposal-not-found", problems=[_at_proposal(
            workflow_id, f"no open proposal `{proposal_id}` for this workflow", "not_found")]) from None
    except StaleProposal as exc:
        raise ApiProblem(409, str(exc), kind="stale-proposal",
                         problems=[_at_proposal(workflow_id, str(exc))]) from None
    catalog = svc.catalog(svc.workflow_row(workflow_id).catalog_id)
    try:
        valid = ensure_valid(new.to_data(), catalog)
    except InvalidWorkflow as exc:
        raise ApiProblem(422, "the proposed document is not valid against the workflow's catalog",
                         kind="invalid-workflow", problems=[to_item(p, "document") for p in exc.problems]
                         ) from None
    # the rewrite reuses the workflow's actions, but the catalog may have changed since it was saved
    # (a newer upload without an action's `invoke:` block): never store a version no run can make
    calls = uncallable(svc, valid)
    if calls:
        outcome = f"proposal `{proposal.id}` was not accepted; nothing was saved"
        raise uncallable_problem(calls, "document", outcome)
    document = valid.to_data()
    document.pop("version", None)
    saved = svc.store.add_version(workflow_id, document, source="optimizer", note=proposal.id,
                                  expected_latest=row.version)
    if saved is None:
        latest = svc.workflow_row(workflow_id).latest_version
        raise ApiProblem(409, f"version {row.version} is no longer the latest (now {latest}); "
                         "list the proposals again", kind="version-conflict")
    store.set_status(proposal.id, "accepted")
    return version_out(saved)
