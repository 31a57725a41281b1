"""`POST /hooks/{name}`: a signed delivery starts a run of the workflow whose webhook has that name.

Authenticated by the signature, not by a bearer token (the sender is another system):

    Overture-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
    Overture-Delivery:  <the sender's unique id of this delivery>

The secret is read from the variable named by the trigger's `secret_env` (or the secrets file
under that name), else from `OVERTURE_SECRET_WEBHOOK_<NAME>`; the service keeps no copy, so
rotating it is changing the variable. Order of checks, each answered before anything starts:
known webhook (404) → secret configured (503) → signature and its age (401) → delivery id (400)
→ paused (409) → a delivery seen before (200, the same run id, nothing new) → JSON object body
matching the workflow's `inputs` (422 listing every problem, nothing recorded) → start (202 with
the run id). A workflow that calls actions nothing can invoke (its catalog changed since the
webhook was created) gets a 422 locating each such step's action, and the delivery is recorded
once as a failed fire; the sender's retry with the same delivery id starts the run once fixed.

The run's id is a hash of webhook name and delivery id, so a delivery retried after a crash or a
timeout finds its run instead of starting a second one.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from runtime.triggers import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    NewFire,
    SignatureError,
    TriggeredWorkflow,
    delivery_fire_id,
    verify,
    webhook_trigger_id,
)
from service.api.runs import uncallable_problem
from service.api.services import Services, services
from service.api.triggers import (
    TriggerInputsInvalid,
    Triggers,
    TriggerUncallable,
    app_triggers,
    default_secret_name,
)
from service.problems import ApiProblem, ProblemItem
from workflow.json_values import check_json_values
from workflow.loader import format_location

router = APIRouter(tags=["webhooks"])

MAX_DELIVERY_ID = 200


class DeliveryOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    run_id: str
    """The run this delivery started (or started before, for a repeated delivery)."""
    workflow_id: str
    webhook: str
    delivery_id: str
    duplicate: bool
    """True when this delivery id was seen before: nothing new was started."""


def _hooked(triggers: Triggers, name: str) -> TriggeredWorkflow:
    matches = [t for t in triggers.workflows()
               if t.workflow.triggers and t.workflow.triggers.webhook
               and t.workflow.triggers.webhook.name == name]
    if not matches:
        raise ApiProblem(404, f"no workflow has a webhook named `{name}`", kind="webhook-not-found")
    if len(matches) > 1:
        ids = ", ".join(t.key for t in matches)
        raise ApiProblem(409, f"more than one workflow has a webhook named `{name}` ({ids}); rename one",
                         kind="webhook-ambiguous")
    return matches[0]


def _body_inputs(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(422, f"the body is not JSON: {exc}", kind="invalid-inputs",
                         title="The delivery's body is not valid",
                         problems=[ProblemItem(location="body", message=f"not JSON: {exc}", code="json")]
                         ) from exc
    if not isinstance(data, dict):
        found = type(data).__name__ if data is not None else "nothing"
        raise ApiProblem(422, f"the body must be a JSON object (the run's inputs), found {found}",
                         kind="invalid-inputs", title="The delivery's body is not valid",
                         problems=[ProblemItem(location="body", message="expected a JSON object",
                                               code="type")])
    for problem in check_json_values(data, first=True):
        location = format_location(problem.path, "body")
        raise ApiProblem(422, f"{location}: {problem.message}", kind="invalid-inputs",
                         title="The delivery's body is not valid",
                         problems=[ProblemItem(location=location, message=problem.message,
                                               hint=problem.hint, code="json_value")])
    return data


@router.post("/hooks/{name}", status_code=202, response_model=DeliveryOut,
             summary="Deliver a webhook event (signed; starts a run)",
             responses={200: {"model": DeliveryOut, "description": "A repeated delivery: its first run."}})
async def deliver(name: str, request: Request, response: Response, svc: Services = Depends(services),
                  triggers: Triggers = Depends(app_triggers)) -> DeliveryOut:
    """Start a run of the workflow whose webhook is `name`, with the JSON body as its inputs.
    Needs `Overture-Signature` and `Overture-Delivery` (see the module's description)."""
    target = _hooked(triggers, name)
    hook = target.workflow.triggers.webhook if target.workflow.triggers else None
    assert hook is not None
    secret = triggers.webhook_secret(hook)
    if not secret:
        where = hook.secret_env or f"OVERTURE_SECRET_{default_secret_name(hook.name)}"
        raise ApiProblem(503, f"webhook `{name}` has no secret configured; set {where}",
                         kind="webhook-not-configured")
    body = await request.body()
    try:
        verify(secret, body, request.headers.get(SIGNATURE_HEADER), now=triggers.clock.now())
    except SignatureError as exc:
        raise ApiProblem(401, str(exc), kind=f"webhook-signature-{exc.reason}",
                         title="The delivery's signature is not valid") from exc
    delivery_id = (request.headers.get(DELIVERY_HEADER) or "").strip()
    if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID:
        raise ApiProblem(400, f"`{DELIVERY_HEADER}` must carry the delivery's unique id "
                         f"(1-{MAX_DELIVERY_ID} characters); it is how repeated deliveries are recognized",
                         kind="webhook-delivery-id")
    trigger_id = webhook_trigger_id(hook)
    state = triggers.store.state(target.key, trigger_id)
    if state is not None and state.paused:
        raise ApiProblem(409, f"webhook `{name}` is paused; resume it with "
                         f"POST /v1/workflows/{target.key}/triggers/{trigger_id}/resume",
                         kind="trigger-paused")

    fire_id = delivery_fire_id(name, delivery_id)
    result = DeliveryOut(run_id=fire_id, workflow_id=target.key, webhook=name, delivery_id=delivery_id,
                         duplicate=True)
    if triggers.target.run_exists(fire_id):  # seen before: the same answer, nothing started
        triggers.target.link(target, fire_id)
        triggers.store.mark_started(fire_id, fire_id, now=triggers.clock.now())
        response.status_code = 200
        response.headers["Location"] = f"/v1/runs/{fire_id}"
        return result

    inputs = _body_inputs(body)
    try:
        triggers.target.check_inputs(target.workflow, inputs)
    except TriggerInputsInvalid as exc:
        count = len(exc.problems)
        raise ApiProblem(422, f"the body has {count} problem{'s' if count != 1 else ''} against the "
                         "workflow's inputs; nothing was started", kind="invalid-inputs",
                         title="The delivery's body is not valid", problems=exc.problems) from exc
    svc.require_engine()
    triggers.store.ensure_state(target.key, trigger_id, cursor=None, now=triggers.clock.now())
    # claimed before the start: a crash in between leaves a claim that the sender's retry (same
    # delivery id) completes, since the run id is fixed by the delivery id
    triggers.store.claim(target.key, target.workflow.name, trigger_id,
                         [NewFire(fire_id, "webhook", delivery_id=delivery_id)], now=triggers.clock.now())
    try:
        await triggers.target.start(target, inputs, fire_id)
    except TriggerUncallable as exc:
        triggers.store.mark_failed(fire_id, str(exc), now=triggers.clock.now())
        raise uncallable_problem(exc.calls, outcome="nothing was started; the delivery is recorded as a "
                                 "failed fire, and resending it (same delivery id) starts the run once "
                                 "fixed") from None
    except Exception:
        if not triggers.target.run_exists(fire_id):  # a concurrent identical delivery won the race
            triggers.store.mark_failed(fire_id, "the run could not be started", now=triggers.clock.now())
            raise
        result.duplicate = True
        response.status_code = 200
    else:
        result.duplicate = False
    triggers.store.mark_started(fire_id, fire_id, now=triggers.clock.now())
    response.headers["Location"] = f"/v1/runs/{fire_id}"
    return result
