"""`/v1/runs`: start (inputs checked against the workflow's schema), list, show, cancel, approve,
and the run's events as a server-sent-event stream (`id:` = event seq, so `Last-Event-ID` resumes).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runtime.journal_schema import WHOLE_STEP
from service.api.models import (
    ApprovalOut,
    AttemptOut,
    Decision,
    RunCreate,
    RunOut,
    RunSummary,
    StepOut,
    iso,
)
from service.api.services import Services, services
from service.auth import Caller, require_token
from service.problems import ApiProblem, ProblemDetails, ProblemItem
from workflow.loader import format_location

if TYPE_CHECKING:
    from runtime.errors import NotAnApprover
    from runtime.invokers.uncallable import UncallableCall

router = APIRouter(prefix="/v1/runs", tags=["runs"])

MAX_EVENT_SEQ = 2**63 - 1
"""Event sequence numbers are 64-bit database integers."""
_STATES = ("running", "waiting", "compensating", "succeeded", "failed", "cancelled")


def input_problems(schema: dict[str, Any] | None, inputs: dict[str, Any]) -> list[ProblemItem]:
    """Every way `inputs` breaks the workflow's `inputs` schema, located `inputs.<path>`."""
    if not schema:
        return []
    try:
        # formats (`email`, `date`, `uuid`, ...) are checked: a run's inputs are data, not a draft
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(inputs), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:
        return [ProblemItem(location="workflow.inputs", message=f"the workflow's inputs schema is broken: "
                            f"{exc.message}", code="bad_schema")]
    items = []
    for err in errors:
        path = list(err.absolute_path)
        hint = None
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else None
            if missing:
                path.append(missing)
                hint = f"add `{missing}` to the inputs"
        elif err.validator == "additionalProperties":
            hint = "remove it, or add it to the workflow's inputs schema"
        elif err.validator == "format":
            hint = f"give a valid {err.validator_value} (the workflow's inputs schema asks for one)"
        items.append(ProblemItem(location=format_location(path, "inputs"), message=err.message, hint=hint,
                                 code=str(err.validator)))
    return items


def summary(svc: Services, record: Any, workflow_id: str | None = None) -> RunSummary:
    if workflow_id is None:
        link = svc.store.run_link(record.id)
        workflow_id = link.workflow_id if link else None
    return RunSummary(
        id=record.id, workflow_id=workflow_id, workflow_name=record.workflow_name,
        workflow_version=record.workflow_version, state=str(record.state.value),
        created_at=iso(record.created_at), ended_at=iso(record.ended_at), error=record.error,
    )


def _journal(svc: Services) -> Any:
    svc.require_engine()
    return svc.journal


@router.post("", status_code=201, response_model=RunSummary, summary="Start a run")
async def start_run(body: RunCreate, response: Response, svc: Services = Depends(services)) -> RunSummary:
    """Start a run of a workflow version. The inputs are checked against the workflow's `inputs`
    JSON Schema first; a 422 lists every problem (`inputs.email`, ...). The run continues in the
    background: follow it with `GET /v1/runs/{id}` or `GET /v1/runs/{id}/events`."""
    engine = svc.require_engine()
    version = svc.version_row(body.workflow_id, body.version, location="body.workflow_id",
                              version_location="body.version")
    workflow = svc.parsed(version)
    workflow.version = version.version
    svc.sync_engine_catalog()
    _refuse_uncallable(svc, workflow)
    problems = input_problems(workflow.inputs, body.inputs)
    if problems:
        raise ApiProblem(422, f"the inputs have {len(problems)} problem{'s' if len(problems) != 1 else ''}",
                         kind="invalid-inputs", title="The run's inputs are not valid", problems=problems)
    run_id = await engine.start_run(workflow, body.inputs)
    svc.store.link_run(run_id, body.workflow_id, version.version)
    response.headers["Location"] = f"/v1/runs/{run_id}"
    return summary(svc, svc.journal.get_run(run_id), body.workflow_id)


def uncallable(svc: Services, workflow: Any) -> list[UncallableCall]:
    """Each call of `workflow` the service's invoker cannot make (an action with no `invoke:` block
    and no invoker registered for it), against every catalog's actions as the engine sees them.
    Empty when this process cannot tell: no engine, an embedder's own invoker, or workers (their
    catalog)."""
    from runtime.invokers.uncallable import missing_invokers, uncallable_calls

    if svc.engine is None or svc.settings.dispatch == "workers":
        return []
    svc.sync_engine_catalog()  # first: the invoker tells what it misses from its current catalog
    missing = missing_invokers(svc.invoker)
    return [] if missing is None else uncallable_calls(workflow, svc.engine.catalog, missing)


def uncallable_problem(calls: list[UncallableCall], where: str = "workflow",
                       outcome: str = "nothing was recorded") -> ApiProblem:
    """The 422 locating each of `calls` (at `where`.steps[i].action), as `POST /v1/runs`, trigger
    creation and resumption, and webhook deliveries answer it; `outcome` says what did not happen."""
    from runtime.invokers.uncallable import cannot_run

    items = [ProblemItem(
        location=f"{where}.{call.location}", code="no_invoker", message=call.message,
        hint=(f"add an `invoke:` block (kind http, python or smtp) to `{call.action}` in its catalog and "
              "upload the catalog again (POST /v1/catalogs; the newer upload's definition wins)"),
    ) for call in calls]
    return ApiProblem(422, f"{cannot_run(calls)}; {outcome}", kind="uncallable-actions",
                      title="The workflow calls actions that cannot be invoked", problems=items)


def _refuse_uncallable(svc: Services, workflow: Any) -> None:
    """A 422 before anything is recorded, as `overture run` refuses it."""
    calls = uncallable(svc, workflow)
    if calls:
        raise uncallable_problem(calls)


@router.get("", response_model=list[RunSummary], summary="List runs, newest first")
def list_runs(
    state: str | None = Query(default=None, description="Only runs in this state.",
                              pattern="^(" + "|".join(_STATES) + ")$"),
    workflow_id: str | None = Query(default=None, description="Only runs of this workflow."),
    limit: int = Query(default=50, ge=1, le=500, description="At most this many."),
    svc: Services = Depends(services),
) -> list[RunSummary]:
    journal = _journal(svc)
    from runtime.records import RunState

    wanted = RunState(state) if state else None
    if workflow_id is not None:
        svc.workflow_row(workflow_id, "query.workflow_id")
        records: list[Any] = []
        for run_id in svc.store.run_ids_of(workflow_id):
            record = journal.get_run(run_id)
            if wanted is None or record.state == wanted:
                records.append(record)
        records.sort(key=lambda r: r.created_at, reverse=True)
        records = records[:limit]
    else:
        records = journal.list_runs(state=wanted, limit=limit)
    return [summary(svc, r, workflow_id) for r in records]


@router.get("/{run_id}", response_model=RunOut, summary="Show a run with every step and attempt")
def get_run(run_id: str, svc: Services = Depends(services)) -> RunOut:
    journal = _journal(svc)
    record = journal.get_run(run_id)  # RunNotFound → 404 problem
    results = journal.step_results(run_id)
    attempts = journal.attempts(run_id=run_id)
    by_step: dict[str, list[AttemptOut]] = {}
    for a in attempts:
        by_step.setdefault(a.step_id, []).append(AttemptOut(
            attempt=a.attempt, kind=a.kind, action=a.action,
            iteration=None if a.iteration < 0 else a.iteration, outcome=a.outcome,
            started_at=iso(a.started_at), ended_at=iso(a.ended_at), duration_s=a.duration_s,
            error_type=a.error_type, error_message=a.error_message,
        ))
    steps: list[StepOut] = []
    documented = [s.get("id") for s in record.document.get("steps", []) if isinstance(s, dict)]
    actions = {s.get("id"): s.get("action") for s in record.document.get("steps", []) if isinstance(s, dict)}
    for step_id in documented:
        row = results.get((step_id, WHOLE_STEP))
        steps.append(StepOut(
            id=str(step_id), action=(row.action if row and row.action else actions.get(step_id)),
            state=str(row.state.value) if row else "pending", iteration=None,
            inputs=row.inputs if row else None, output=row.output if row else None,
            error=row.error if row else None, attempts=by_step.get(str(step_id), []),
            started_at=iso(row.started_at) if row else None, ended_at=iso(row.ended_at) if row else None,
        ))
    # for-each items, after their step's summary row
    for (step_id, iteration), row in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if iteration == WHOLE_STEP:
            continue
        steps.append(StepOut(id=step_id, action=row.action, state=str(row.state.value), iteration=iteration,
                             inputs=row.inputs, output=row.output, error=row.error,
                             started_at=iso(row.started_at), ended_at=iso(row.ended_at)))
    approvals = [ApprovalOut(
        step_id=a.step_id, iteration=None if a.iteration < 0 else a.iteration, prompt=a.prompt,
        approvers=a.approvers, requested_at=iso(a.requested_at), decided_at=iso(a.decided_at),
        approved=a.approved, decided_by=a.decided_by, decided_as=a.decided_as, comment=a.comment,
    ) for a in journal.approvals(run_id)]
    last = journal.events_since(run_id, 0)
    base = summary(svc, record)
    return RunOut(**base.model_dump(), inputs=record.inputs, steps=steps, approvals=approvals,
                  compensation=record.compensation, last_event_seq=last[-1].seq if last else 0)


@router.post("/{run_id}/cancel", status_code=202, response_model=RunSummary, summary="Cancel a run")
async def cancel_run(run_id: str, svc: Services = Depends(services),
                     caller: Caller = Depends(require_token)) -> RunSummary:
    """Nothing new starts, in-flight calls finish, completed steps are undone (their compensations).
    409 when the run has already finished."""
    engine = svc.require_engine()
    await engine.cancel(run_id, by=caller.name)
    return summary(svc, svc.journal.get_run(run_id))


_FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {
    "model": ProblemDetails, "content": {"application/problem+json": {}},
    "description": "The caller may not decide this approval (neither the token's name nor a role of it "
                   "is among its `approvers`, or `by` names someone other than the token).",
}}


@router.post("/{run_id}/approvals/{step_id}", response_model=RunSummary,
             summary="Approve or reject an approval step", responses=_FORBIDDEN)
async def decide(run_id: str, step_id: str, body: Decision, svc: Services = Depends(services),
                 caller: Caller = Depends(require_token)) -> RunSummary:
    """Decide a waiting `core.approval` step; a rejection fails the step. 409 when the step is not
    waiting for a decision.

    The decider is the API token's name, and `decided_by` records it. A `by` naming anyone else is
    a 403. When the step lists `approvers`, only a token whose name or one of whose roles
    (`overture token create --role manager`) is among them may decide, or one with the role `*`
    (compared trimmed and case-insensitively); anyone else gets a 403 naming the approvers and the
    token's name and roles, and the approval stays pending. `GET /v1/me` shows the token's.

    The answer is the run once the decision took effect: `running` when the run went on (or
    `succeeded`, `failed`, `waiting` for a next approval, … when it got that far already). With
    `OVERTURE_DISPATCH=workers`, a run no worker has picked up within a few seconds is answered
    as it is then (`waiting`, its decision recorded); `GET /v1/runs/{run_id}` follows it."""
    from runtime.builtins import person_key
    from runtime.errors import InvalidRunState, NotAnApprover
    from runtime.records import RunState

    engine = svc.require_engine()
    journal = svc.journal
    before = journal.get_run(run_id)  # RunNotFound → 404 problem
    if body.by is not None and person_key(body.by) != person_key(caller.name):
        raise _someone_else(body.by, caller.name)
    seen = journal.events_since(run_id, 0)
    last_seq = seen[-1].seq if seen else 0
    try:
        await engine.approve(run_id, step_id, body.approved, caller.name, body.comment,
                             iteration=body.iteration, roles=caller.roles)
    except InvalidRunState as exc:
        if exc.step_id is None:
            raise  # the run itself has finished: located at path.run_id by the problem handler
        raise _not_waiting(svc, run_id, step_id, body.iteration, str(exc)) from None
    except NotAnApprover as exc:
        raise _not_an_approver(exc, caller, body.iteration) from None
    if before.state == RunState.WAITING:
        await _until_resumed(journal, run_id, last_seq, DECISION_SETTLE_S)
    return summary(svc, journal.get_run(run_id))


DECISION_SETTLE_S = 5.0
"""How long an approval's answer waits for the run to leave `waiting` (the driver picks it up in
milliseconds; a queue with no worker listening may take longer)."""


async def _until_resumed(journal: Any, run_id: str, after_seq: int, timeout_s: float) -> None:
    """Return once the run resumed or finished after event `after_seq` (or `timeout_s` passed)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    delay = 0.005
    while True:
        if any(e.type in ("run.resumed", "run.finished") for e in journal.events_since(run_id, after_seq)):
            return
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def _someone_else(by: str, name: str) -> ApiProblem:
    """A 403 for a `by` that names someone other than the token: the decider is who authenticated."""
    message = (f"`by` is `{by}`, but this request is made with the token `{name}`: with a token, the decider "
               "is the token's name")
    return ApiProblem(403, f"{message}; nothing was recorded", kind="not-the-decider",
                      title="A decision is recorded under the caller's own name",
                      problems=[ProblemItem(location="body.by", message=message, code="not_the_caller",
                                            hint=f"leave `by` out (the decision is recorded as `{name}`), or "
                                                 f"decide with a token named `{by.strip()}` "
                                                 f"(`overture token create --name {by.strip()}`)")])


def _not_an_approver(exc: NotAnApprover, caller: Caller, iteration: int | None) -> ApiProblem:
    """A 403 naming who may decide and who the caller is (name and roles), and how to get a token
    that may; the approval is still pending."""
    listed = ", ".join(f"`{a}`" for a in exc.approvers)
    item = f" (iteration {exc.iteration})" if exc.iteration is not None else ""
    roles = ", ".join(f"`{r}`" for r in caller.roles)
    message = (f"step `{exc.step_id}`{item} may be decided only by {listed} (a token's name or role); "
               f"this token is `{exc.who}` with " + (f"the roles {roles}" if roles else "no roles"))
    example = shlex.quote(exc.approvers[0])
    location = "body.iteration" if iteration is not None else "path.step_id"
    return ApiProblem(403, f"{message}; the approval is still pending", kind="not-an-approver",
                      title="Not one of this approval's approvers",
                      problems=[ProblemItem(location=location, message=message, code="not_an_approver",
                                            hint=f"decide with a token whose name or a role is one of the "
                                                 f"approvers (compared trimmed, case-insensitively), e.g. "
                                                 f"`overture token create --name NAME --role {example}`")])


def _not_waiting(svc: Services, run_id: str, step_id: str, iteration: int | None, detail: str) -> ApiProblem:
    """A 409 located at the step (or the iteration), naming the steps that are waiting for a decision."""
    waiting: list[str] = []
    for approval in svc.journal.approvals(run_id, pending_only=True):
        name = approval.step_id
        if approval.iteration >= 0:
            name = f"{approval.step_id} (iteration {approval.iteration})"
        if name not in waiting:
            waiting.append(name)
    listed = ", ".join(f"`{w}`" for w in waiting)
    message = f"step `{step_id}` is not waiting for an approval" + (
        f" (waiting: {listed})" if waiting else "; no step of this run is waiting for one")
    hint = (f"approve one of the waiting steps: {listed}" if waiting
            else f"GET /v1/runs/{run_id} shows the run's approvals")
    waiting_steps = {w.split(" ")[0] for w in waiting}
    location = "body.iteration" if iteration is not None and step_id in waiting_steps else "path.step_id"
    return ApiProblem(409, f"{detail}; " + (f"waiting for approval: {listed}" if waiting
                                            else "no step is waiting for approval"),
                      kind="invalid-run-state",
                      problems=[ProblemItem(location=location, message=message, hint=hint,
                                            code="not_waiting")])


def _sse(event: Any) -> str:
    data = json.dumps(event.to_data(), separators=(",", ":"), default=str)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"


@router.get(
    "/{run_id}/events", summary="Stream a run's events (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"example": (
        'id: 42\nevent: step.succeeded\ndata: {"seq":42,"run_id":"…","type":"step.succeeded",…}\n\n')}},
        "description": "One SSE message per journal event; the stream ends after `run.finished`."}},
)
async def stream_events(
    run_id: str,
    request: Request,
    after: int | None = Query(default=None, ge=0, le=MAX_EVENT_SEQ,
                              description="Send events with a seq above this."),
    last_event_id: str | None = Header(default=None, description="Resume after this event (set by "
                                       "EventSource when it reconnects)."),
    svc: Services = Depends(services),
) -> Response:
    """`id:` is the event's sequence number, `event:` its type, `data:` the event as JSON. Replays
    what the journal has after `Last-Event-ID` (or `after`), then follows live until the run
    finishes. With `Accept: application/json` (and no `text/event-stream`) the events so far come
    back as one JSON list instead."""
    journal = _journal(svc)
    journal.get_run(run_id)  # 404 before the stream starts
    since = after or 0
    if last_event_id:
        try:
            resume = int(last_event_id.strip())
        except ValueError:
            raise ApiProblem(400, "Last-Event-ID must be an event sequence number", kind="bad-last-event-id",
                             problems=[ProblemItem(location="header.Last-Event-ID",
                                                   message=f"not a number: {last_event_id[:40]!r}")],
                             ) from None
        if resume > MAX_EVENT_SEQ:
            raise ApiProblem(400, "Last-Event-ID is larger than any event sequence number",
                             kind="bad-last-event-id", problems=[ProblemItem(
                                 location="header.Last-Event-ID",
                                 message=f"{last_event_id[:40]} is above {MAX_EVENT_SEQ}",
                                 hint="send the `id:` of the last event received")])
        since = max(since, resume)
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/event-stream" not in accept:
        return JSONResponse([e.to_data() for e in journal.events_since(run_id, since)])
    return StreamingResponse(
        _follow(svc, journal, run_id, since), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow(svc: Services, journal: Any, run_id: str, since: int) -> AsyncIterator[str]:
    wake = svc.hub.subscribe(run_id)
    svc.metrics.event_streams.inc()
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    try:
        yield "retry: 2000\n\n"
        while True:
            wake.clear()  # before reading, so an event committed during the read still wakes us
            finished = False
            for event in journal.events_since(run_id, since, limit=500):
                since = event.seq
                yield _sse(event)
                last_sent = loop.time()
                finished = finished or event.type == "run.finished"
            if finished:
                return
            if journal.get_run(run_id).state.finished and not journal.events_since(run_id, since, limit=1):
                return  # finished before this stream started and every event was sent
            try:
                # the poll catches events written by another process (a CLI run on the same journal)
                await asyncio.wait_for(wake.wait(), timeout=svc.settings.sse_poll_s)
            except TimeoutError:
                pass
            if loop.time() - last_sent >= svc.settings.sse_keepalive_s:
                yield ": keep-alive\n\n"
                last_sent = loop.time()
    finally:
        svc.hub.unsubscribe(run_id, wake)
        svc.metrics.event_streams.dec()
