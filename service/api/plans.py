"""`/v1/plans`: plain English → a draft workflow with its explanation and warnings."""

from __future__ import annotations

import importlib
import time
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.models import JsonObject, PlanCreate, PlannerName, PlanOut, iso
from service.api.services import Services, deleted_catalog, services
from service.problems import ApiProblem, ProblemItem, status_of, to_item
from service.store import PlanRow, new_id
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import DocumentError, OvertureError
from workflow.validator import validate

router = APIRouter(prefix="/v1/plans", tags=["plans"])


def explain(workflow: Workflow, catalog: Catalog, result: Any = None) -> str | None:
    """The planner's own explanation, else `planner.explain.explain` when that module is there."""
    text = getattr(result, "explanation", None)
    if isinstance(text, str) and text:
        return text
    try:
        module = importlib.import_module("planner.explain")
    except ModuleNotFoundError:
        return None
    explained = module.explain(workflow, catalog)
    return explained if isinstance(explained, str) else str(explained)


def plan_out(row: PlanRow, catalog: Catalog | None = None) -> PlanOut:
    problems = []
    if catalog is not None:
        problems = [to_item(p) for p in validate(row.document, catalog).problems]
    return PlanOut(id=row.id, request=row.request, catalog_id=row.catalog_id, planner=row.planner,
                   workflow=row.document, explanation=row.explanation, warnings=list(row.warnings),
                   valid=row.valid, problems=problems, workflow_id=row.workflow_id,
                   created_at=iso(row.created_at))


def make_planner(mode: str, catalog: Catalog) -> Any:
    try:
        select = importlib.import_module("planner.select")
    except ModuleNotFoundError as exc:
        raise ApiProblem(503, f"the planner is not available ({exc})", kind="planner-unavailable") from None
    return select.make_planner(mode, catalog)


@router.post("", status_code=201, response_model=PlanOut, summary="Plan a workflow from plain English")
def create_plan(body: PlanCreate, response: Response, svc: Services = Depends(services)) -> PlanOut:
    """Turn a request into a draft workflow. The draft is stored (not yet a workflow): accept it with
    `POST /v1/workflows {"plan_id": ...}`. `planner: llm` answers 503 when no LLM is configured."""
    catalog = svc.catalog(body.catalog_id, "body.catalog_id")
    try:
        result = make_planner(body.planner, catalog).plan(body.request)
    except OvertureError as exc:
        if "not available" in str(exc) and type(exc) is OvertureError:
            # the planner module itself is missing (an install problem), not a bad request
            raise ApiProblem(503, str(exc), kind="planner-unavailable") from None
        status, kind = status_of(exc)
        if status != 422:
            raise
        # the request itself could not be planned: locate it, so a client can mark the field
        raise ApiProblem(422, str(exc), kind=kind, problems=[ProblemItem(
            location="body.request", message=str(exc), code=kind.replace("-", "_"),
            hint=getattr(exc, "hint", None) or "name the actions to use, as the catalog words them "
                 f"(GET /v1/catalogs/{body.catalog_id} lists them)")]) from None
    workflow: Workflow = result.workflow
    report = validate(workflow, catalog)
    row = PlanRow(
        id=new_id("plan"), request=body.request, catalog_id=body.catalog_id,
        planner=str(getattr(result, "planner", body.planner)), document=workflow.to_data(),
        explanation=explain(workflow, catalog, result), warnings=[str(w) for w in result.warnings],
        valid=report.ok, created_at=time.time(),
    )
    svc.store.add_plan(row)
    response.headers["Location"] = f"/v1/plans/{row.id}"
    return plan_out(row, catalog)


@router.get("/{plan_id}", response_model=PlanOut, summary="Show a plan")
def get_plan(plan_id: str, svc: Services = Depends(services)) -> PlanOut:
    row = svc.plan_row(plan_id)
    if svc.store.get_catalog(row.catalog_id) is None:  # still readable; it cannot be accepted
        out = plan_out(row)
        out.problems = [ProblemItem(
            location="catalog_id", message=deleted_catalog(row), code="catalog_deleted",
            hint="plan the request again against a catalog that exists (POST /v1/plans)")]
        return out
    return plan_out(row, svc.catalog(row.catalog_id))


# --------------------------------------------------------------------------- edit a draft (for the UI)


class PlanEdit(BaseModel):
    """Change a draft plan by an instruction in plain English, before it is accepted."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"instruction": "retry the provisioning up to 3 times"},
    ]})

    instruction: str = Field(min_length=3, max_length=10_000)
    """What to change, e.g. "remove the approval step"."""
    document: JsonObject | None = None
    """The draft as edited so far (e.g. in the UI's forms); default: the plan's own document."""
    planner: PlannerName = "auto"
    """Which planner interprets the instruction."""


class PlanEditOut(PlanOut):
    """The edited draft, stored as a new plan, with what changed."""

    summary: str | None = None
    """The change in plain English."""
    diff: dict[str, Any] = Field(default_factory=dict)
    """What changed, step by step (as the workflow diff)."""


@router.post("/{plan_id}/edits", status_code=201, response_model=PlanEditOut,
             summary="Edit a draft plan by instruction")
def edit_plan(plan_id: str, body: PlanEdit, response: Response, svc: Services = Depends(services)
              ) -> PlanEditOut:
    """Apply an instruction to a draft (or to `document`, the draft as edited so far) and store the
    result as a new plan to check and accept; the original plan is left as it was."""
    from service.api.workflows import _diff, _run_editor
    from workflow.loader import workflow_from_data

    row = svc.plan_row(plan_id)
    catalog = svc.plan_catalog(row, "path.plan_id")
    try:
        before = workflow_from_data(body.document if body.document is not None else row.document,
                                    source="document")
    except DocumentError as exc:  # located in the request, where the draft came from
        raise ApiProblem(422, str(exc), kind="invalid-document", title="The document could not be read",
                         problems=[to_item(p, "body.document") for p in exc.problems]) from None
    edited, summary, warnings = _run_editor(before, body.instruction, catalog, body.planner)
    edited_row = PlanRow(
        id=new_id("plan"), request=row.request, catalog_id=row.catalog_id, planner=row.planner,
        document=edited.to_data(), explanation=explain(edited, catalog), warnings=warnings,
        valid=validate(edited, catalog).ok, created_at=time.time(),
    )
    svc.store.add_plan(edited_row)
    response.headers["Location"] = f"/v1/plans/{edited_row.id}"
    return PlanEditOut(**plan_out(edited_row, catalog).model_dump(), summary=summary,
                       diff=_diff(before, edited))
