"""The workflow document: the typed form of `../shared/spec/workflow-document.md`.

A document is what the planner writes, people edit, the runtime runs and the optimizer rewrites.
The models accept exactly the spec's field names (`with`, `if`, `needs`, ...); Python attribute
names that clash with keywords carry a trailing underscore and an alias.

Range checks that a person can get wrong (retry attempts, timeouts) live here as field
constraints, so a broken document fails with the JSON path of the bad field; the cross-field
checks (references, cycles, the catalog) live in `workflow.validator`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STEP_ID_PATTERN = r"^[A-Za-z0-9_\-]+$"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=False,
        validate_assignment=False,
        ser_json_inf_nan="strings",
    )


class RetryPolicy(_Model):
    """How often and how patiently a step is retried. One frozen, validated type (as Temporal's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 1
    """All attempts, the first included: 1 = no retry, "retry up to 3 times" = 4."""
    initial_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 1.0
    """Delay before the second attempt, in seconds."""
    backoff: Annotated[float, Field(ge=1, le=10)] = 2.0
    """Each further delay is the previous one times this."""
    max_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    """The delay never grows beyond this cap, in seconds."""
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Randomize each delay by up to this fraction (0 = exact delays), to avoid thundering herds."""
    non_retryable: list[str] = Field(default_factory=list)
    """Error types (`ActionError.type`, e.g. `validation`, `http_404`) that end the step at once."""

    @model_validator(mode="after")
    def _cap_not_below_initial(self) -> RetryPolicy:
        if self.max_interval_s < self.initial_interval_s:
            raise ValueError(
                f"max_interval_s ({self.max_interval_s}) is below initial_interval_s "
                f"({self.initial_interval_s}); raise the cap or lower the initial interval"
            )
        return self

    def delay_before(self, attempt: int) -> float:
        """The nominal delay (no jitter) before attempt number `attempt` (2 = the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_interval_s, self.initial_interval_s * self.backoff ** (attempt - 2)))


class Compensation(_Model):
    """The action that undoes a completed step when the run fails (saga semantics)."""

    action: str
    """A catalog action, usually the catalog's `compensation` of the step's action."""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    """Inputs of the undo action; may read `steps.<id>.output` of this step and others."""
    retry: RetryPolicy | None = None
    """Retries of the undo action itself; defaults to a patient policy in the runtime."""


class Step(_Model):
    """One node of the workflow graph."""

    id: str = Field(pattern=STEP_ID_PATTERN, min_length=1, max_length=128)
    """Unique within the document: letters, digits, `_` and `-`."""
    action: str = Field(min_length=1)
    """A catalog action name (`namespace.verb_object`) or a `core.*` built-in."""
    name: str | None = None
    """A human title for displays; the id is used when absent."""
    description: str | None = None
    """Why the step is there, in plain English (the planner puts the request's clause here)."""
    needs: list[str] = Field(default_factory=list)
    """Steps that must finish (succeed or be skipped) before this one starts."""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    """The action's inputs; strings may hold `${{ ... }}` expressions."""
    if_: str | None = Field(default=None, alias="if")
    """The step runs only when this expression holds; otherwise it is skipped (skips don't spread)."""
    for_each: str | list[Any] | None = None
    """An expression yielding a list (or a literal list): the step runs once per item, as `item`."""
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    """With `for_each`: how many items run at once (default: the runtime's limit)."""
    retry: RetryPolicy | None = None
    """Retry policy; absent means one attempt."""
    timeout_s: Annotated[float, Field(gt=0, le=31_536_000)] | None = None
    """Per-attempt time limit in seconds."""
    compensate: Compensation | None = None
    """What undoes this step when the run fails after it completed."""
    alternatives: list[str] = Field(default_factory=list)
    """Other actions with the same capability that the optimizer's router may pick at dispatch."""
    ordered_after: list[str] = Field(default_factory=list)
    """Orderings that matter though no data flows (the optimizer never removes these)."""

    @field_validator("needs", "ordered_after")
    @classmethod
    def _no_duplicate_needs(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for item in value:
            if item not in seen:
                seen.append(item)
        return seen

    @property
    def title(self) -> str:
        return self.name or self.id


class ScheduleTrigger(_Model):
    """Fire a run by cron expression in a time zone."""

    cron: str
    """Five-field cron expression, e.g. `0 9 * * MON-FRI`."""
    timezone: str = "UTC"
    """IANA time zone name, e.g. `Europe/Berlin`."""
    missed: Literal["skip", "catch_up"] = "skip"
    """What to do with fires missed while the scheduler was down: skip them, or run once."""
    business_day: Literal["first", "last"] | None = None
    """Fire only on the month's first (or last) business day, Monday to Friday (holidays are not
    known): plain cron cannot say "the first business day", so the cron's times are kept on that
    day only, e.g. cron `0 9 * * *` with `business_day: first` is 09:00 on the first business day."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Run inputs for each fire."""


class WebhookTrigger(_Model):
    """An HTTP endpoint whose deliveries start runs; the JSON body is the run's inputs."""

    name: str = Field(pattern=STEP_ID_PATTERN)
    """The endpoint's name, e.g. `customer-signed-up`."""
    secret_env: str | None = None
    """Environment variable holding the HMAC secret (the secret itself never sits in a document)."""


class Triggers(_Model):
    schedule: list[ScheduleTrigger] = Field(default_factory=list)
    webhook: WebhookTrigger | None = None


class OptimizeSettings(_Model):
    """Whether the optimizer may apply its rewrites to this workflow without asking."""

    auto: bool = False
    """Apply accepted-kind rewrites automatically when their evidence is strong enough."""


class Workflow(_Model):
    """A workflow document."""

    name: str = Field(min_length=1, max_length=200)
    """A short slug, e.g. `enterprise-onboarding`."""
    description: str | None = None
    """What the workflow is for (the planner puts the original request here)."""
    version: int | None = None
    """Set by the service when a plan is accepted; increases with each edit."""
    triggers: Triggers | None = None
    inputs: dict[str, Any] | None = None
    """JSON Schema (type object) of the run's inputs."""
    steps: list[Step] = Field(min_length=1)
    """The steps; their order in the list is presentation only, `needs` and references decide order."""
    deadline_s: Annotated[float, Field(gt=0)] | None = None
    """Overall time limit for a run, in seconds."""
    optimize: OptimizeSettings | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form annotations (planner name and version, prompt version, ...)."""

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def to_data(self) -> dict[str, Any]:
        """The document as plain data, with the spec's field names and no empty defaults."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
