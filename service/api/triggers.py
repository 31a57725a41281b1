"""Triggers in the service: the scheduler inside `overture serve`, and `/v1/workflows/{id}/triggers`
to list a workflow's triggers with their next fire times, pause and resume them, and list the
runs each one started.

The live triggers are those of each stored workflow's latest version; a workflow is keyed by its
service id, so two workflows with the same name keep separate fire histories. Fires are recorded
in the runtime's fire store, in the journal's database.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict

from runtime.clock import Clock, SystemClock
from runtime.errors import RunNotFound
from runtime.triggers import (
    CronRule,
    FireRecord,
    FireRefused,
    FireStore,
    ScheduleError,
    Scheduler,
    TriggeredWorkflow,
    TriggerState,
    webhook_trigger_id,
)
from service.api.models import iso
from service.api.runs import input_problems, uncallable, uncallable_problem
from service.api.services import Services, services
from service.auth import Caller, require_token
from service.problems import ApiProblem, ProblemItem
from workflow.document import ScheduleTrigger, WebhookTrigger, Workflow
from workflow.errors import OvertureError

if TYPE_CHECKING:
    from runtime.invokers.uncallable import UncallableCall

log = logging.getLogger("overture.triggers")

router = APIRouter(prefix="/v1/workflows", tags=["triggers"])

NEXT_FIRES = 5


# -- the service's side of the scheduler -------------------------------------------------------------


class TriggerInputsInvalid(OvertureError):
    """A fire's inputs do not fit the workflow's `inputs` schema; nothing was started."""

    def __init__(self, problems: list[ProblemItem]) -> None:
        super().__init__("the inputs do not fit the workflow's `inputs` schema: "
                         + "; ".join(f"{p.location}: {p.message}" for p in problems))
        self.problems = problems


class TriggerUncallable(FireRefused):
    """A fire's workflow calls actions nothing can invoke (the catalog changed since its triggers
    were created or resumed); nothing was started."""

    def __init__(self, calls: list[UncallableCall]) -> None:
        from runtime.invokers.uncallable import cannot_run

        super().__init__(f"{cannot_run(calls, 'workflow')}; add an `invoke:` block to each of these actions "
                         "in its catalog and upload the catalog again (POST /v1/catalogs)")
        self.calls = calls


def refuse_uncallable_triggers(svc: Services, workflow: Workflow, where: str = "document",
                               outcome: str = "nothing was saved") -> None:
    """A 422 locating each call nothing can invoke, when `workflow` has triggers: they would start
    runs that fail at that step (a schedule at every tick), so they are not created or resumed."""
    if workflow.triggers is None or not (workflow.triggers.schedule or workflow.triggers.webhook):
        return
    calls = uncallable(svc, workflow)
    if calls:
        raise uncallable_problem(calls, where, f"its triggers would start runs that fail there; {outcome}")


@dataclass
class ServiceWorkflows:
    """The scheduler's `WorkflowSource`: the latest version of every stored workflow with triggers.
    Parsed documents are cached per (workflow, version), since versions never change."""

    services: Services
    _cache: dict[tuple[str, int], tuple[Workflow | None, float | None]] = field(default_factory=dict)

    def __call__(self) -> list[TriggeredWorkflow]:
        found = []
        for row in self.services.store.list_workflows():
            workflow, since = self._load(row.id, row.latest_version)
            if workflow is not None and workflow.triggers is not None:
                found.append(TriggeredWorkflow(row.id, workflow, live_since=since))
        return found

    def document(self, workflow_id: str, version: int) -> Workflow | None:
        return self._load(workflow_id, version)[0]

    def _load(self, workflow_id: str, version: int) -> tuple[Workflow | None, float | None]:
        key = (workflow_id, version)
        if key not in self._cache:
            row = self.services.store.get_version(workflow_id, version)
            workflow = None
            if row is not None:
                try:
                    workflow = self.services.parsed(row)
                    workflow.version = version
                except OvertureError as exc:  # a stored document the contract no longer accepts
                    log.warning("workflow %s v%d has no live triggers: %s", workflow_id, version, exc)
            self._cache[key] = (workflow, row.created_at if row is not None else None)
        return self._cache[key]

    def find(self, workflow_id: str) -> TriggeredWorkflow | None:
        row = self.services.store.get_workflow(workflow_id)
        workflow = self.document(workflow_id, row.latest_version) if row is not None else None
        return TriggeredWorkflow(workflow_id, workflow) if workflow is not None else None


@dataclass
class ServiceTarget:
    """The scheduler's `RunTarget`: the engine, plus the run link that lists runs per workflow."""

    services: Services

    def run_exists(self, run_id: str) -> bool:
        journal = self.services.journal
        if journal is None:
            return False
        try:
            journal.get_run(run_id)
        except RunNotFound:
            return False
        return True

    def check_inputs(self, workflow: Workflow, inputs: dict[str, Any]) -> None:
        problems = input_problems(workflow.inputs, inputs)
        if problems:
            raise TriggerInputsInvalid(problems)

    async def start(self, target: TriggeredWorkflow, inputs: dict[str, Any], run_id: str) -> None:
        engine = self.services.require_engine()
        self.check_inputs(target.workflow, inputs)
        self.services.sync_engine_catalog()
        calls = uncallable(self.services, target.workflow)
        if calls:
            raise TriggerUncallable(calls)
        await engine.start_run(target.workflow, inputs, run_id=run_id)
        self.link(target, run_id)

    def link(self, target: TriggeredWorkflow, run_id: str) -> None:
        if self.services.store.run_link(run_id) is None:
            self.services.store.link_run(run_id, target.key, target.workflow.version or 1)


@dataclass
class Triggers:
    """The app's trigger parts: `app.state.triggers`."""

    store: FireStore
    workflows: ServiceWorkflows
    target: ServiceTarget
    clock: Clock
    secrets: Any = None
    """A `runtime.secrets.SecretStore` for webhook secrets not in the environment."""
    scheduler: Scheduler | None = None

    def webhook_secret(self, trigger: WebhookTrigger) -> str | None:
        """The HMAC secret: the variable named by `secret_env`, else the secret store's entry of
        that name, else the secret store's `WEBHOOK_<NAME>` (`OVERTURE_SECRET_WEBHOOK_<NAME>`)."""
        from runtime.secrets import SecretStore

        store = self.secrets if self.secrets is not None else SecretStore.from_env()
        if trigger.secret_env:
            return os.environ.get(trigger.secret_env) or store.get(trigger.secret_env)
        value: str | None = store.get(default_secret_name(trigger.name))
        return value


def default_secret_name(webhook_name: str) -> str:
    return "WEBHOOK_" + webhook_name.upper().replace("-", "_")


async def start_triggers(app: FastAPI, *, clock: Clock | None = None, secrets: Any = None,
                         run_scheduler: bool = True) -> Triggers:
    """Open the fire store and (with an engine) start the scheduler; called in the app lifespan."""
    svc: Services = app.state.services
    clock = clock or (svc.engine.clock if svc.engine is not None else SystemClock())
    store = FireStore.open(svc.settings.resolved_journal_url())
    triggers = Triggers(store=store, workflows=ServiceWorkflows(svc), target=ServiceTarget(svc), clock=clock,
                        secrets=secrets)
    if run_scheduler and svc.engine is not None:
        triggers.scheduler = Scheduler(store, triggers.workflows, triggers.target, clock=clock)
        triggers.scheduler.start()
    app.state.triggers = triggers
    return triggers


async def stop_triggers(app: FastAPI) -> None:
    triggers: Triggers | None = getattr(app.state, "triggers", None)
    if triggers is None:
        return
    if triggers.scheduler is not None:
        await triggers.scheduler.stop()
    triggers.store.close()
    app.state.triggers = None


def app_triggers(request: Request) -> Triggers:
    """FastAPI dependency: the app's trigger parts (503 before the lifespan started them)."""
    found: Triggers | None = getattr(request.app.state, "triggers", None)
    if found is None:
        raise ApiProblem(503, "triggers are not available: the service has not started them",
                         kind="triggers-unavailable")
    return found


# -- the API -----------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class ScheduleOut(_Out):
    id: str
    """Stable id of this schedule (a hash of cron, time zone and business day)."""
    kind: str = "schedule"
    cron: str
    timezone: str
    business_day: str | None
    missed: str
    """What happens to fires missed while the service was down: `skip`, or `catch_up` (once)."""
    inputs: dict[str, Any]
    description: str
    """In plain English, e.g. "every Monday at 09:00 (Europe/Berlin)"."""
    paused: bool
    paused_at: str | None
    paused_by: str | None
    """Who paused it: a token's name, the CLI's user, or `overture: the workflow cannot run` when a
    fire found actions nothing can invoke (that fire's `error` locates them)."""
    next_fires: list[str]
    """The next fire times (ISO 8601, UTC); empty while paused."""


class WebhookOut(_Out):
    id: str
    kind: str = "webhook"
    name: str
    path: str
    """Where deliveries are POSTed, signed with `Overture-Signature` and named by `Overture-Delivery`."""
    secret_env: str | None
    secret_configured: bool
    """Whether the service has the webhook's secret (deliveries are refused until it does)."""
    description: str
    paused: bool
    paused_at: str | None


class TriggersOut(_Out):
    workflow_id: str
    workflow_name: str
    version: int
    schedules: list[ScheduleOut]
    webhook: WebhookOut | None
    description: str
    """All of the workflow's triggers in one sentence ("" when it has none)."""


class FireOut(_Out):
    id: str
    """The fire's deterministic id, which is also the id of the run it started."""
    trigger_id: str
    kind: str
    scheduled_at: str | None
    delivery_id: str | None
    catch_up: bool
    """Whether this fire caught up a time missed while the service was down."""
    state: str
    """`started`, `failed` (`error` says why), or `claimed` (being started)."""
    run_id: str | None
    run_state: str | None
    error: str | None
    created_at: str | None


def _state_map(triggers: Triggers, workflow_id: str) -> dict[str, TriggerState]:
    return {s.trigger_id: s for s in triggers.store.states(workflow_id)}


def schedule_out(trigger_id: str, trigger: ScheduleTrigger, state: TriggerState | None, now: float
                 ) -> ScheduleOut:
    from planner.triggers import describe_schedule

    paused = bool(state and state.paused)
    try:
        times = [] if paused else CronRule.of(trigger).next_after(now, NEXT_FIRES)
    except (ScheduleError, ValueError):  # ValueError: croniter's, for a schedule that never fires
        times = []
    return ScheduleOut(id=trigger_id, cron=trigger.cron, timezone=trigger.timezone,
                       business_day=trigger.business_day, missed=trigger.missed, inputs=trigger.inputs,
                       description=describe_schedule(trigger), paused=paused,
                       paused_at=iso(state.paused_at) if state else None,
                       paused_by=state.paused_by if state else None,
                       next_fires=[iso(t) or "" for t in times])


def triggers_out(triggers: Triggers, target: TriggeredWorkflow) -> TriggersOut:
    from planner.triggers import describe_triggers, describe_webhook

    states = _state_map(triggers, target.key)
    now = triggers.clock.now()
    schedules = [schedule_out(tid, trigger, states.get(tid), now) for tid, trigger in target.schedules()]
    webhook = None
    hook = target.workflow.triggers.webhook if target.workflow.triggers else None
    if hook is not None:
        state = states.get(webhook_trigger_id(hook))
        webhook = WebhookOut(id=webhook_trigger_id(hook), name=hook.name, path=f"/hooks/{hook.name}",
                             secret_env=hook.secret_env,
                             secret_configured=bool(triggers.webhook_secret(hook)),
                             description=describe_webhook(hook), paused=bool(state and state.paused),
                             paused_at=iso(state.paused_at) if state else None)
    return TriggersOut(workflow_id=target.key, workflow_name=target.workflow.name,
                       version=target.workflow.version or 1, schedules=schedules, webhook=webhook,
                       description=describe_triggers(target.workflow.triggers))


def fire_out(svc: Services, fire: FireRecord) -> FireOut:
    run_state = None
    if fire.run_id and svc.journal is not None:
        try:
            run_state = str(svc.journal.get_run(fire.run_id).state.value)
        except RunNotFound:
            run_state = None
    return FireOut(id=fire.id, trigger_id=fire.trigger_id, kind=fire.kind,
                   scheduled_at=iso(fire.scheduled_at),
                   delivery_id=fire.delivery_id, catch_up=fire.catch_up, state=fire.state, run_id=fire.run_id,
                   run_state=run_state, error=fire.error, created_at=iso(fire.created_at))


def _target(svc: Services, triggers: Triggers, workflow_id: str) -> TriggeredWorkflow:
    svc.workflow_row(workflow_id)  # 404 for an unknown workflow
    found = triggers.workflows.find(workflow_id)
    if found is None:
        raise ApiProblem(404, f"workflow `{workflow_id}` has no readable latest version",
                         kind="workflow-not-found")
    return found


@router.get("/{workflow_id}/triggers", response_model=TriggersOut, summary="A workflow's triggers")
def list_triggers(workflow_id: str, svc: Services = Depends(services),
                  triggers: Triggers = Depends(app_triggers)) -> TriggersOut:
    """The latest version's schedules (with their next fire times) and webhook, each with its
    id for pausing, and whether it is paused."""
    return triggers_out(triggers, _target(svc, triggers, workflow_id))


def _set_paused(workflow_id: str, trigger_id: str, paused: bool, svc: Services, triggers: Triggers,
                caller: Caller) -> TriggersOut:
    target = _target(svc, triggers, workflow_id)
    known = target.trigger_ids()
    if not known:  # `all` of nothing would answer 200 and change nothing
        message = f"workflow `{workflow_id}` has no triggers"
        raise ApiProblem(404, message, kind="trigger-not-found", problems=[ProblemItem(
            location="path.workflow_id", message=message, code="not_found",
            hint="add `triggers:` (a schedule or a webhook) to the workflow's document first")])
    if trigger_id not in known and trigger_id != "all":
        message = (f"workflow `{workflow_id}` has no trigger `{trigger_id}`; it has: "
                   + (", ".join(known) or "none"))
        raise ApiProblem(404, message, kind="trigger-not-found", problems=[ProblemItem(
            location="path.trigger_id", message=message, code="not_found",
            hint=f"GET /v1/workflows/{workflow_id}/triggers lists the trigger ids (or use `all`)")])
    if not paused:
        refuse_uncallable_triggers(svc, target.workflow, "workflow", "nothing was resumed")
    for tid in known if trigger_id == "all" else [trigger_id]:
        triggers.store.set_paused(workflow_id, tid, paused, now=triggers.clock.now(),
                                  by=getattr(caller, "name", None))
    if triggers.scheduler is not None:
        triggers.scheduler.poke()
    return triggers_out(triggers, target)


@router.post("/{workflow_id}/triggers/{trigger_id}/pause", response_model=TriggersOut,
             summary="Pause a trigger (`all` pauses every trigger of the workflow)")
def pause_trigger(workflow_id: str, trigger_id: str, svc: Services = Depends(services),
                  triggers: Triggers = Depends(app_triggers), caller: Caller = Depends(require_token)
                  ) -> TriggersOut:
    """A paused schedule does not fire; a paused webhook answers 409 and starts nothing."""
    return _set_paused(workflow_id, trigger_id, True, svc, triggers, caller)


@router.post("/{workflow_id}/triggers/{trigger_id}/resume", response_model=TriggersOut,
             summary="Resume a trigger (`all` resumes every trigger of the workflow)")
def resume_trigger(workflow_id: str, trigger_id: str, svc: Services = Depends(services),
                   triggers: Triggers = Depends(app_triggers), caller: Caller = Depends(require_token)
                   ) -> TriggersOut:
    """Fires that fell in the pause are not caught up; the schedule continues from now. A workflow
    that calls actions nothing can invoke is refused (422, located at each step's action)."""
    return _set_paused(workflow_id, trigger_id, False, svc, triggers, caller)


@router.get("/{workflow_id}/fires", response_model=list[FireOut],
            summary="The runs a workflow's triggers started, newest first")
def list_fires(workflow_id: str,
               trigger_id: str | None = Query(default=None, description="Only this trigger."),
               limit: int = Query(default=50, ge=1, le=500), svc: Services = Depends(services),
               triggers: Triggers = Depends(app_triggers)) -> list[FireOut]:
    svc.workflow_row(workflow_id)
    return [fire_out(svc, f) for f in triggers.store.fires(workflow_key=workflow_id, trigger_id=trigger_id,
                                                           limit=limit)]
