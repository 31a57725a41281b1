"""`/v1/workflows`: accept a plan, edit by document or by instruction, versions and their diffs."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response

from service.api.models import (
    MAX_NUMBER,
    EditOut,
    VersionOut,
    WorkflowCreate,
    WorkflowEdit,
    WorkflowOut,
    WorkflowUpdate,
    iso,
)
from service.api.services import Services, services
from service.api.triggers import refuse_uncallable_triggers
from service.problems import ApiProblem, ProblemItem, status_of, to_item
from service.store import WorkflowRow, WorkflowVersionRow
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import InvalidWorkflow, OvertureError
from workflow.validator import ensure_valid, validate

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


def version_out(row: WorkflowVersionRow, *, with_document: bool = True) -> VersionOut:
    return VersionOut(workflow_id=row.workflow_id, version=row.version, source=row.source, note=row.note,
                      created_at=iso(row.created_at), document=row.document if with_document else None)


def workflow_out(row: WorkflowRow, version: WorkflowVersionRow | None = None,
                 catalog: Catalog | None = None) -> WorkflowOut:
    problems = []
    if version is not None and catalog is not None:
        problems = [to_item(p) for p in validate(version.document, catalog).problems]
    return WorkflowOut(id=row.id, name=row.name, catalog_id=row.catalog_id, latest_version=row.latest_version,
                       created_at=iso(row.created_at), updated_at=iso(row.updated_at),
                       document=version.document if version is not None else None, problems=problems)


def _stored(workflow: Workflow) -> dict[str, Any]:
    data = workflow.to_data()
    data.pop("version", None)  # the store numbers versions itself
    return data


@router.post("", status_code=201, response_model=WorkflowOut, summary="Accept a plan or store a document")
def create_workflow(body: WorkflowCreate, response: Response, svc: Services = Depends(services)
                    ) -> WorkflowOut:
    """Version 1 of a new workflow, from a plan (`plan_id`) or a document (`document` + `catalog_id`).
    The document is validated against the catalog; a 422 lists every problem with its location."""
    if body.plan_id is not None:
        plan = svc.plan_row(body.plan_id, "body.plan_id")
        if body.catalog_id is not None and body.catalog_id != plan.catalog_id:
            message = (f"plan `{plan.id}` was made for catalog `{plan.catalog_id}`, not `{body.catalog_id}`; "
                       "a plan brings its own catalog")
            raise ApiProblem(422, message, kind="invalid-request", title="The request is not valid",
                             problems=[ProblemItem(location="body.catalog_id", message=message,
                                                   code="conflict", hint="leave `catalog_id` out, or plan "
                                                   f"again against catalog `{body.catalog_id}`")])
        catalog_id, document, source, note = plan.catalog_id, dict(plan.document), "plan", plan.id
        catalog = svc.plan_catalog(plan, "body.plan_id")
    else:
        catalog_id = body.catalog_id or "default"
        document, source, note = dict(body.document or {}), "document", None
        catalog = svc.catalog(catalog_id, "body.catalog_id")
    if body.name:
        document["name"] = body.name
    workflow = _validated(document, catalog, "document")
    _check_webhook_name(svc, workflow, None)
    refuse_uncallable_triggers(svc, workflow)
    row, version = svc.store.create_workflow(workflow.name, catalog_id, _stored(workflow), source=source,
                                             note=note, plan_id=body.plan_id)
    response.headers["Location"] = f"/v1/workflows/{row.id}"
    return workflow_out(row, version, catalog)


def _validated(document: dict[str, Any], catalog: Catalog, prefix: str) -> Workflow:
    try:
        return ensure_valid(document, catalog)
    except InvalidWorkflow as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        raise ApiProblem(422, f"the workflow has {len(errors)} problem{'s' if len(errors) != 1 else ''}",
                         kind="invalid-workflow", title="The workflow is not valid",
                         problems=[to_item(p, prefix) for p in exc.problems]) from None


def _check_webhook_name(svc: Services, workflow: Workflow, own_id: str | None) -> None:
    """A 409 when another workflow's latest version already has a webhook of this name: both
    would then answer every delivery with 409 (`/hooks/{name}` cannot tell them apart)."""
    hook = workflow.triggers.webhook if workflow.triggers else None
    if hook is None:
        return
    for row in svc.store.list_workflows():
        if row.id == own_id:
            continue
        version = svc.store.get_version(row.id, row.latest_version)
        triggers = version.document.get("triggers") if version is not None else None
        webhook = triggers.get("webhook") if isinstance(triggers, dict) else None
        if isinstance(webhook, dict) and webhook.get("name") == hook.name:
            message = f"workflow `{row.id}` ({row.name}) already has a webhook named `{hook.name}`"
            raise ApiProblem(409, f"{message}; webhook names are unique (`/hooks/{hook.name}`)",
                             kind="webhook-name-taken", problems=[ProblemItem(
                                 location="document.triggers.webhook.name", message=message,
                                 code="webhook_name_taken",
                                 hint=f"give this workflow's webhook another name, e.g. `{hook.name}-2`")])


@router.get("", response_model=list[WorkflowOut], summary="List workflows")
def list_workflows(svc: Services = Depends(services)) -> list[WorkflowOut]:
    return [workflow_out(row) for row in svc.store.list_workflows()]


@router.get("/{workflow_id}", response_model=WorkflowOut, summary="Show a workflow's latest version")
def get_workflow(workflow_id: str, svc: Services = Depends(services)) -> WorkflowOut:
    row = svc.workflow_row(workflow_id)
    version = svc.version_row(workflow_id)
    return workflow_out(row, version, svc.catalog(row.catalog_id))


@router.put("/{workflow_id}", response_model=VersionOut, summary="Save a new version from a document")
def update_workflow(workflow_id: str, body: WorkflowUpdate, svc: Services = Depends(services)
                    ) -> VersionOut:
    """Validate the document and store it as the next version. With `base_version`, a 409 tells you
    someone saved a newer version since (nothing is overwritten)."""
    row = svc.workflow_row(workflow_id)
    workflow = _validated(body.document, svc.catalog(row.catalog_id), "document")
    _check_webhook_name(svc, workflow, workflow_id)
    refuse_uncallable_triggers(svc, workflow)
    return version_out(_append(svc, workflow_id, workflow, "document", None, body.base_version))


def _append(svc: Services, workflow_id: str, workflow: Workflow, source: str, note: str | None,
            base_version: int | None) -> WorkflowVersionRow:
    saved = svc.store.add_version(workflow_id, _stored(workflow), source=source, note=note,
                                  expected_latest=base_version)
    if saved is None:
        latest = svc.workflow_row(workflow_id).latest_version
        message = f"version {base_version} is no longer the latest (now {latest})"
        hint = "reload, reapply your change and save again"
        raise ApiProblem(409, f"{message}; {hint}", kind="version-conflict", problems=[ProblemItem(
            location="body.base_version", message=message, hint=hint, code="version_conflict")])
    return saved


@router.post("/{workflow_id}/edits", response_model=EditOut, summary="Edit by instruction")
def edit_workflow(workflow_id: str, body: WorkflowEdit, response: Response,
                  svc: Services = Depends(services)) -> EditOut:
    """Apply a plain-English instruction to a version (default: the latest). With `save: true` the
    result is validated and stored as a new version (201); with `save: false` it is a draft (200)."""
    row = svc.workflow_row(workflow_id)
    catalog = svc.catalog(row.catalog_id)
    base = svc.version_row(workflow_id, body.base_version, version_location="body.base_version")
    before = svc.parsed(base)
    edited, summary, warnings = _run_editor(before, body.instruction, catalog, body.planner)
    diff = _diff(before, edited)
    if not body.save:
        return EditOut(saved=False, version=None, document=edited.to_data(), diff=diff, summary=summary,
                       warnings=warnings)
    workflow = _validated(edited.to_data(), catalog, "document")
    _check_webhook_name(svc, workflow, workflow_id)
    refuse_uncallable_triggers(svc, workflow)
    saved = _append(svc, workflow_id, workflow, "instruction", body.instruction,
                    body.base_version if body.base_version is not None else base.version)
    response.status_code = 201
    return EditOut(saved=True, version=version_out(saved), document=saved.document, diff=diff,
                   summary=summary, warnings=warnings)


def _run_editor(workflow: Workflow, instruction: str, catalog: Catalog, mode: str
                ) -> tuple[Workflow, str | None, list[str]]:
    try:
        module = importlib.import_module("planner.edit")
    except ModuleNotFoundError:
        raise ApiProblem(503, "editing by instruction is not available (planner.edit is missing)",
                         kind="editor-unavailable") from None
    try:
        result = module.edit_workflow(workflow, instruction, catalog, mode=mode)
    except OvertureError as exc:
        status, kind = status_of(exc)
        if status != 422:
            raise  # an LLM that is not configured or not reachable: 503 from the problem handler
        # the instruction itself could not be applied: locate it, so a client can mark the field
        raise ApiProblem(422, str(exc), kind=kind, problems=[ProblemItem(
            location="body.instruction", message=str(exc), code=kind.replace("-", "_"),
            hint=getattr(exc, "hint", None) or "name the step and the change, using the catalog's "
                 "words for actions, e.g. \"retry the CRM update up to 3 times\"")]) from None
    edited: Workflow = result.workflow
    summary = "; ".join(str(c) for c in result.changes) or None
    return edited, summary, [str(w) for w in result.warnings]


def _diff(before: Workflow, after: Workflow) -> dict[str, Any]:
    from planner.edit_diff import diff_workflows

    result = diff_workflows(before, after)
    return {**result.to_data(), "text": result.render()}


@router.get("/{workflow_id}/versions", response_model=list[VersionOut], summary="List versions")
def list_versions(workflow_id: str, svc: Services = Depends(services)) -> list[VersionOut]:
    svc.workflow_row(workflow_id)
    return [version_out(v, with_document=False) for v in svc.store.list_versions(workflow_id)]


@router.get("/{workflow_id}/versions/{version}", response_model=VersionOut, summary="Show one version")
def get_version(workflow_id: str, version: int = Path(ge=1, le=MAX_NUMBER, description="From 1."),
                svc: Services = Depends(services)) -> VersionOut:
    return version_out(svc.version_row(workflow_id, version))


@router.get("/{workflow_id}/diff", summary="Diff two versions")
def diff_versions(
    workflow_id: str,
    from_: int = Query(alias="from", ge=1, le=MAX_NUMBER, description="The older version."),
    to: int | None = Query(default=None, ge=1, le=MAX_NUMBER,
                           description="The newer version (default: the latest)."),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Steps added, removed and changed field by field, and dependency edges added and removed;
    `text` renders the same for people."""
    old = svc.parsed(svc.version_row(workflow_id, from_, version_location="query.from"))
    new_row = svc.version_row(workflow_id, to, version_location="query.to")
    return {"workflow_id": workflow_id, "from": from_, "to": new_row.version,
            **_diff(old, svc.parsed(new_row))}
