"""Request and response bodies of the API, with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from service.problems import ProblemItem
from workflow.json_values import check_json_values

PlannerName = Literal["offline", "llm", "auto"]

EXAMPLE_CATALOG: dict[str, Any] = {
    "actions": [
        {
            "name": "crm.update_account",
            "description": "Create or update the customer's account record in the CRM.",
            "input": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
            "output": {"type": "object", "properties": {"account_id": {"type": "string"}}},
            "invoke": {"kind": "http", "method": "POST", "url": "http://127.0.0.1:9000/accounts"},
        }
    ]
}

EXAMPLE_WORKFLOW: dict[str, Any] = {
    "name": "onboard-customer",
    "inputs": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
    "steps": [
        {"id": "update_crm", "action": "crm.update_account", "with": {"email": "${{ inputs.email }}"}},
        {"id": "log", "action": "core.log", "needs": ["update_crm"],
         "with": {"message": "account ${{ steps.update_crm.output.account_id }} ready"}},
    ],
}


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 (UTC), the API's one time format."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


MAX_NUMBER = 2**31 - 1
"""The largest version, iteration or event number a request may name; larger ones are refused (422)
before they reach the database, whose integer columns cannot hold them."""


def _plain_json(value: Any) -> Any:
    for problem in check_json_values(value, first=True):  # a validator raises one error, so the first
        context = {"message": problem.message, "hint": problem.hint, "at": list(problem.path)}
        raise PydanticCustomError("json_value", "{message}", context)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]
"""A JSON object of plain JSON data (see `workflow.json_values.check_json_values`), located where it
is not."""
JsonObjects = Annotated[list[dict[str, Any]], AfterValidator(_plain_json)]


class _Model(BaseModel):
    # the docstring under each field becomes its description in the OpenAPI document
    model_config = ConfigDict(use_attribute_docstrings=True)


class _Request(_Model):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# --------------------------------------------------------------------------- catalogs


class CatalogCreate(_Request):
    """Upload a catalog: either `actions` as data, or `content` as YAML or JSON text (a file's text)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "crm", "actions": EXAMPLE_CATALOG["actions"]},
        {"name": "crm",
         "content": "actions:\n  - name: crm.update_account\n    description: Update the CRM\n"},
    ]})

    name: str = Field(min_length=1, max_length=200)
    """A name for people; catalogs are addressed by their id."""
    actions: JsonObjects | None = None
    """The actions, as in a catalog file's `actions:` list."""
    content: str | None = Field(default=None, max_length=5_000_000)
    """The catalog file's text, YAML or JSON (`actions: [...]`)."""
    format: Literal["yaml", "json"] | None = None
    """How to read `content`; by default YAML, which also reads JSON."""

    @field_validator("name")
    @classmethod
    def _not_blank(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("the name is blank; give the catalog a name people can tell apart, e.g. `crm`")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> CatalogCreate:
        if (self.actions is None) == (self.content is None):
            raise ValueError("give exactly one of `actions` (data) or `content` (YAML/JSON text)")
        return self


class OpenAPIImport(_Request):
    """Import an OpenAPI 3 document from a URL or from its text; each operation becomes an action."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "http://127.0.0.1:9100/openapi.yaml", "namespace": "billing"},
    ]})

    url: str | None = Field(default=None, max_length=2000)
    """Where to fetch the document (http or https)."""
    content: str | None = Field(default=None, max_length=10_000_000)
    """The document's text (YAML or JSON), instead of a URL."""
    name: str | None = Field(default=None, max_length=200)
    """The catalog's name; default: the API's title."""
    namespace: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Prefix of the action names (`namespace.operation_id`); default: the API's title in snake_case."""
    base_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    """The API's address, overriding the document's `servers` (needed when they are relative and no
    `url` is given)."""

    @model_validator(mode="after")
    def _one_source(self) -> OpenAPIImport:
        if (self.url is None) == (self.content is None):
            raise ValueError("give exactly one of `url` or `content`")
        return self


class CatalogSummary(_Model):
    """A catalog, without its actions."""

    id: str
    """The catalog's id, e.g. `cat_0f3a…`; `default` for the one `overture serve --catalog` loads."""
    name: str
    """Its name."""
    source: str
    """Where it came from: `upload`, `openapi:<url>` or file paths."""
    action_count: int
    """How many actions it has (core built-ins not counted)."""
    created_at: str | None
    """When it was stored (ISO 8601)."""


class CatalogOut(CatalogSummary):
    """A catalog with its actions."""

    actions: list[dict[str, Any]]
    """The actions, as in a catalog file."""
    warnings: list[ProblemItem] = Field(default_factory=list)
    """What an OpenAPI import skipped, and why."""
    secret_name: str | None = None
    """The secret an imported API's auth header reads (`OVERTURE_SECRET_<NAME>`), if it needs one."""


# --------------------------------------------------------------------------- plans


class PlanCreate(_Request):
    """Plain English in, a draft workflow out."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"request": "Update the CRM account for the customer's email, then log that it is ready.",
         "catalog_id": "default", "planner": "offline"},
    ]})

    request: str = Field(min_length=3, max_length=20_000)
    """What the workflow should do, in plain English."""
    catalog_id: str = "default"
    """The catalog whose actions the plan may use."""
    planner: PlannerName = "auto"
    """`offline` (no network), `llm` (needs an endpoint) or `auto` (the LLM when configured, else offline)."""


class PlanOut(_Model):
    """A draft plan: the document, why it looks the way it does, and what to double-check."""

    id: str
    """The plan's id; accept it with `POST /v1/workflows {plan_id}`."""
    request: str
    """The request it was made from."""
    catalog_id: str
    """The catalog it was planned against."""
    planner: str
    """Which planner wrote it (`offline`, `llm`, ...)."""
    workflow: dict[str, Any]
    """The draft workflow document."""
    explanation: str | None
    """The plan in plain English."""
    warnings: list[str]
    """What the planner was unsure about."""
    valid: bool
    """Whether the document passes validation against the catalog."""
    problems: list[ProblemItem] = Field(default_factory=list)
    """Validation problems and warnings, each with its location."""
    workflow_id: str | None = None
    """The workflow it was accepted as, once it was."""
    created_at: str | None = None
    """When it was planned (ISO 8601)."""


# --------------------------------------------------------------------------- workflows


class WorkflowCreate(_Request):
    """Accept a plan (`plan_id`) or store a document (`document` + `catalog_id`) as a new workflow."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"plan_id": "plan_0f3a9c2b1d4e5f60"},
        {"document": EXAMPLE_WORKFLOW, "catalog_id": "default"},
    ]})

    plan_id: str | None = None
    """A plan from `POST /v1/plans`."""
    document: JsonObject | None = None
    """A workflow document (as JSON)."""
    catalog_id: str | None = None
    """The catalog the document uses (with `document`; a plan brings its own)."""
    name: str | None = Field(default=None, min_length=1, max_length=200)
    """Rename the workflow on the way in."""

    @model_validator(mode="after")
    def _one_source(self) -> WorkflowCreate:
        if (self.plan_id is None) == (self.document is None):
            raise ValueError("give exactly one of `plan_id` or `document`")
        return self


class WorkflowUpdate(_Request):
    """A new version from a whole document."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"document": EXAMPLE_WORKFLOW, "base_version": 1},
    ]})

    document: JsonObject
    """The new document (validated against the workflow's catalog)."""
    base_version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    """The version this edit started from; a 409 when someone saved a newer one meanwhile."""


class WorkflowEdit(_Request):
    """A new version (or a draft) from an instruction in plain English."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"instruction": "retry the CRM update up to 3 times", "save": True},
    ]})

    instruction: str = Field(min_length=3, max_length=10_000)
    """What to change, e.g. "also email the customer when the tenant is ready"."""
    planner: PlannerName = "auto"
    """Which planner interprets the instruction."""
    save: bool = True
    """Save the result as a new version; false returns a draft only."""
    base_version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    """The version to edit (default: the latest); saving refuses with 409 if it is no longer the latest."""


class VersionOut(_Model):
    """One stored version of a workflow."""

    workflow_id: str
    """The workflow's id."""
    version: int
    """Version number, from 1."""
    source: str
    """How it came to be: `plan`, `document` or `instruction`."""
    note: str | None
    """The plan id or the instruction."""
    created_at: str | None
    """When it was saved (ISO 8601)."""
    document: dict[str, Any] | None = None
    """The document (left out of lists)."""


class WorkflowOut(_Model):
    """A workflow and its latest version."""

    id: str
    """The workflow's id, e.g. `wf_0f3a…`."""
    name: str
    """The latest version's `name`."""
    catalog_id: str
    """The catalog it runs against."""
    latest_version: int
    """The newest version number."""
    created_at: str | None
    """When it was created (ISO 8601)."""
    updated_at: str | None
    """When its newest version was saved (ISO 8601)."""
    document: dict[str, Any] | None = None
    """The latest document (left out of lists)."""
    problems: list[ProblemItem] = Field(default_factory=list)
    """Validation warnings of the latest document."""


class EditOut(_Model):
    """The result of an edit by instruction."""

    saved: bool
    """Whether a new version was stored."""
    version: VersionOut | None
    """The new version, when saved."""
    document: dict[str, Any]
    """The edited document."""
    diff: dict[str, Any]
    """What changed, step by step."""
    summary: str | None = None
    """The change in plain English."""
    warnings: list[str] = Field(default_factory=list)
    """What the editor was unsure about."""


# --------------------------------------------------------------------------- runs


class RunCreate(_Request):
    """Start a run of a workflow version with inputs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"workflow_id": "wf_0f3a9c2b1d4e5f60", "inputs": {"email": "ops@acme.example"}},
    ]})

    workflow_id: str
    """The workflow to run."""
    version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    """Which version (default: the latest)."""
    inputs: JsonObject = Field(default_factory=dict)
    """The run's inputs, checked against the workflow's `inputs` schema."""


class Decision(_Request):
    """Approve or reject a waiting approval step."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"approved": True, "comment": "looks right"},
    ]})

    approved: bool
    """True approves; false rejects (which fails the step)."""
    comment: str | None = Field(default=None, max_length=5_000)
    """Why, for the run's history."""
    by: str | None = Field(default=None, max_length=200)
    """Optional, and only ever the API token's own name (trimmed, case-insensitive): the decider is
    the token, so a `by` naming anyone else is refused (403)."""
    iteration: int | None = Field(default=None, ge=0, le=MAX_NUMBER)
    """For an approval step with `for_each`: which item (default: every pending one)."""


class RunSummary(_Model):
    """A run, without its steps."""

    id: str
    """The run's id."""
    workflow_id: str | None
    """The service workflow it was started from (None for runs started outside the service)."""
    workflow_name: str
    """The document's name."""
    workflow_version: int | None
    """The version that ran."""
    state: str
    """running, waiting, compensating, succeeded, failed or cancelled."""
    created_at: str | None
    """When it started (ISO 8601)."""
    ended_at: str | None
    """When it finished."""
    error: dict[str, Any] | None
    """Why it failed, when it did."""


class AttemptOut(_Model):
    """One attempt of a step (or of its compensation)."""

    attempt: int
    """1 for the first."""
    kind: str
    """`action` or `compensation`."""
    action: str
    """The action actually called."""
    iteration: int | None
    """The for-each item, or None."""
    outcome: str
    """started, succeeded, failed, timeout or interrupted."""
    started_at: str | None
    """When it started."""
    ended_at: str | None
    """When it ended."""
    duration_s: float | None
    """How long it took."""
    error_type: str | None
    """The kind of failure (`http_503`, `timeout`, ...)."""
    error_message: str | None
    """The failure's message (secrets masked)."""


class StepOut(_Model):
    """One step of a run with every attempt."""

    id: str
    """The step id."""
    action: str | None
    """The action it calls."""
    state: str
    """pending, running, retrying, waiting, succeeded, failed, skipped or cancelled."""
    iteration: int | None
    """The for-each item index (None for the step as a whole)."""
    inputs: Any = None
    """The rendered `with`."""
    output: Any = None
    """What the action returned."""
    error: dict[str, Any] | None = None
    """Why it failed."""
    attempts: list[AttemptOut] = Field(default_factory=list)
    """Every attempt, oldest first."""
    started_at: str | None = None
    """When it started."""
    ended_at: str | None = None
    """When it ended."""


class ApprovalOut(_Model):
    """An approval a run asked for."""

    step_id: str
    """The approval step."""
    iteration: int | None
    """The for-each item, or None."""
    prompt: str | None
    """What the approver is asked."""
    approvers: list[str] | None
    """Who may decide, when restricted: API token names or roles (compared trimmed,
    case-insensitively); a token with the role `*` may decide any approval."""
    requested_at: str | None
    """When it was asked for."""
    decided_at: str | None
    """When it was decided."""
    approved: bool | None
    """The decision (None while pending)."""
    decided_by: str | None
    """Who decided."""
    decided_as: str | None = None
    """Which of `approvers` allowed them to: their own name, a role (`manager`), or `*`. None
    when the approval listed nobody, or was decided before this was recorded."""
    comment: str | None
    """Their comment."""


class RunOut(RunSummary):
    """A run with its inputs, every step and attempt, approvals and compensation."""

    inputs: dict[str, Any]
    """The run's inputs (secrets masked)."""
    steps: list[StepOut]
    """Every step of the document, in document order, with its attempts."""
    approvals: list[ApprovalOut]
    """Approvals asked for, pending or decided."""
    compensation: dict[str, Any] | None
    """What was undone after a failure."""
    last_event_seq: int
    """The newest event's sequence number; stream `/events` with `Last-Event-ID` from here."""


class Me(_Model):
    """The caller, as the API token says: who decides approvals made with it."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [
        {"token_id": "tok_3f2a9c1d0b7e4a65", "name": "alice", "roles": ["manager", "finance-leads"]},
    ]})

    token_id: str
    """The token's id (`overture token list`)."""
    name: str
    """The token's name: recorded as `decided_by` on the approvals it decides."""
    roles: list[str]
    """Its roles (`overture token create --role`): an approval whose `approvers` name the token's
    name or one of these (trimmed, case-insensitively) may be decided with it; `*` decides any."""


class Health(_Model):
    """Whether the service can serve."""

    status: Literal["ok", "degraded"]
    """`ok`, or `degraded` when the database or the engine is not available."""
    version: str
    """The service's version."""
    database: bool
    """The database answers."""
    engine: bool
    """The run engine is running."""
