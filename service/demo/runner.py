"""`overture demo`: the whole product on one machine, against fake but real-over-the-wire services.

1. start the demo services (CRM, billing, provisioning, chat over HTTP; email over a real SMTP
   server) on 127.0.0.1,
2. write a catalog that calls them and start the Overture service on it,
3. plan the onboarding request with the offline planner and accept the plan — all through the
   service's REST API, as the UI would,
4. run it to success, then run it again with billing declining the card, which fails the run and
   undoes provisioning and the CRM update,
5. keep serving the UI with that history (unless `serve=False`) and print its address and a token.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.demo.catalog import DEMO_INPUTS, REQUEST, inputs_for, write_demo_catalog
from service.demo.mail import MailServer
from service.demo.server_thread import ServerThread
from service.demo.services import DemoState, create_services_app
from workflow.errors import OvertureError

FINISHED = {"succeeded", "failed", "cancelled"}
DEMO_RETRY = {"max_attempts": 4, "initial_interval_s": 0.1, "backoff": 2.0, "max_interval_s": 2.0}


class DemoError(OvertureError):
    """The demo could not do what it set out to; the message says which stage and why."""


@dataclass
class DemoOptions:
    data_dir: Path = Path(".overture/demo")
    port: int = 8000
    """Where the UI and API listen (0 picks a free port)."""
    failure_rate: float = 0.0
    """Chance that any call to a demo service answers 503 (the plan is given retries to recover)."""
    fail: set[str] = field(default_factory=set)
    """Services that fail for good in every run (e.g. {"billing"})."""
    latency_scale: float = 1.0
    seed: int | None = None
    serve: bool = True
    request: str = REQUEST
    run_timeout_s: float = 120.0


@dataclass
class RunReport:
    id: str
    state: str
    duration_s: float | None
    steps: dict[str, str]
    compensation: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass
class DemoResult:
    app_url: str
    token: str
    catalog_path: Path
    workflow_id: str
    plan: dict[str, Any]
    runs: list[RunReport]
    state: DemoState
    mail: MailServer


Echo = Callable[[str], None]


def problem_text(problem: Any) -> str:
    """An API problem (RFC 9457, with located `problems`) as one line: the detail, then where and
    how to fix each problem; a problem's message that the detail already says is not repeated."""
    if not isinstance(problem, dict):
        return str(problem)[:300]
    detail = str(problem.get("detail") or problem.get("title") or "")
    items = []
    for item in problem.get("problems") or []:
        if not isinstance(item, dict):
            continue
        location, message, hint = item.get("location"), item.get("message"), item.get("hint")
        text = f"at {location}" if location else ""
        if message and str(message) not in detail:
            text = f"{location}: {message}" if location else str(message)
        if hint:
            text += f"{'; ' if text else ''}hint: {hint}"
        if text:
            items.append(text)
    more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
    return detail + (f" — {'; '.join(items[:5])}{more}" if items else "")


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        try:
            text = problem_text(response.json())
        except ValueError:
            text = response.text[:300]
        raise DemoError(f"{what} failed ({response.status_code}): {text}")
    return response.json()


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    yield json.loads("\n".join(data))
                except ValueError:
                    pass
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class DemoSession:
    """Everything the demo started; `close()` stops it all (services, mail server, app)."""

    def __init__(self, options: DemoOptions, echo: Echo) -> None:
        self.options = options
        self.echo = echo
        self._stack = ExitStack()
        self.state = DemoState(failure_rate=options.failure_rate, failing=set(options.fail),
                               latency_scale=options.latency_scale, seed=options.seed)
        self.mail = MailServer()
        self.services = ServerThread(create_services_app(self.state), name="demo-services")
        self.app_server: ServerThread | None = None
        self.client: httpx.Client | None = None
        self.token = ""
        self._accepted: dict[str, Any] | None = None
        self.saved_version: int | None = None
        """When the folder already had the demo's workflow: the version the new plan became."""

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        from service.app import create_app
        from service.auth import create_token
        from service.settings import ServiceSettings

        self._stack.enter_context(self.mail)
        self._stack.enter_context(self.services)
        data_dir = self.options.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog_path = write_demo_catalog(data_dir / "demo-catalog.yaml", self.services.url,
                                               self.mail.host, self.mail.port)
        settings = ServiceSettings(data_dir=data_dir, catalogs=[str(self.catalog_path)])
        app = create_app(settings)
        # the sign-in token is the local owner's: role `*` decides any approval a plan asks for
        # (a `manager`, `finance-leads`, ...), so the demo's plans can be approved in its UI
        _, self.token = create_token(app.state.services.store, "overture demo", roles=["*"])
        self.app_server = ServerThread(app, port=self.options.port, name="overture-app")
        self._stack.enter_context(self.app_server)
        self.client = self._stack.enter_context(httpx.Client(
            base_url=self.app_server.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0))

    def close(self) -> None:
        self._stack.close()

    @property
    def app_url(self) -> str:
        assert self.app_server is not None
        return self.app_server.url

    # -- the story --------------------------------------------------------------------------------

    def plan_and_accept(self) -> tuple[dict[str, Any], str]:
        assert self.client is not None
        plan = _check(self.client.post("/v1/plans", json={
            "request": self.options.request, "catalog_id": "default", "planner": "offline"}), "planning")
        if not plan.get("valid"):
            problems = "; ".join(f"{p['location']}: {p['message']}" for p in plan.get("problems", []))
            raise DemoError(f"the offline planner's draft is not valid: {problems}")
        existing = self._workflow_named(str(plan["workflow"].get("name", "")))
        if existing is None:
            workflow = _check(self.client.post("/v1/workflows", json={"plan_id": plan["id"]}),
                              "accepting the plan")
        else:
            # a demo ran in this folder before: its workflow (and webhook name) is there; the new
            # plan becomes that workflow's next version instead of a second workflow
            version = _check(self.client.put(f"/v1/workflows/{existing['id']}", json={
                "document": plan["workflow"], "base_version": existing["latest_version"]}),
                "saving the plan as a new version of workflow " + str(existing["id"]))
            self.saved_version = int(version["version"])
            workflow = _check(self.client.get(f"/v1/workflows/{existing['id']}"), "reading the workflow")
        self._accepted = workflow
        return plan, str(workflow["id"])

    def add_retries(self) -> None:
        """With a failure rate set, give the accepted workflow's service calls retries (a version up)."""
        if self.options.failure_rate > 0 and self._accepted is not None:
            self._add_retries(self._accepted)

    def _workflow_named(self, name: str) -> dict[str, Any] | None:
        """The newest workflow of this name on the demo's catalog, if a demo made one before."""
        assert self.client is not None
        found = [w for w in _check(self.client.get("/v1/workflows"), "listing the workflows")
                 if w.get("name") == name and w.get("catalog_id") == "default"]
        found.sort(key=lambda w: str(w.get("updated_at") or ""))
        return found[-1] if found else None

    def _add_retries(self, workflow: dict[str, Any]) -> None:
        """With a failure rate set, give every service call retries so transient 503s recover."""
        assert self.client is not None
        document = workflow["document"]
        changed = [s["id"] for s in document["steps"]
                   if not str(s["action"]).startswith("core.") and "retry" not in s]
        for step in document["steps"]:
            if step["id"] in changed:
                step["retry"] = dict(DEMO_RETRY)
        if changed:
            version = _check(self.client.put(f"/v1/workflows/{workflow['id']}", json={
                "document": document, "base_version": workflow["latest_version"]}), "saving the retries")
            self.echo(f"  retries added to {', '.join(changed)} (failure rate "
                      f"{self.options.failure_rate:.0%}) → version {version['version']}")

    def workflow_inputs(self, workflow_id: str) -> dict[str, Any] | None:
        assert self.client is not None
        workflow = _check(self.client.get(f"/v1/workflows/{workflow_id}"), "reading the workflow")
        schema = (workflow.get("document") or {}).get("inputs")
        return schema if isinstance(schema, dict) else None

    def run(self, workflow_id: str, inputs: dict[str, Any]) -> RunReport:
        """Start a run and follow its events until it finishes, echoing each step as it ends."""
        assert self.client is not None
        run = _check(self.client.post("/v1/runs", json={"workflow_id": workflow_id, "inputs": inputs}),
                     "starting the run")
        run_id = str(run["id"])
        deadline = time.monotonic() + self.options.run_timeout_s
        with self.client.stream("GET", f"/v1/runs/{run_id}/events",
                                headers={"Accept": "text/event-stream"},
                                timeout=httpx.Timeout(10.0, read=self.options.run_timeout_s)) as stream:
            if stream.status_code >= 400:
                stream.read()
                _check(stream, "following the run")
            for event in _sse(stream.iter_lines()):
                self._echo_event(event)
                if event.get("type") == "run.finished" or time.monotonic() > deadline:
                    break
        detail = _check(self.client.get(f"/v1/runs/{run_id}"), "reading the run")
        while detail["state"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.1)
            detail = _check(self.client.get(f"/v1/runs/{run_id}"), "reading the run")
        start, end = _seconds(detail.get("created_at")), _seconds(detail.get("ended_at"))
        return RunReport(
            id=run_id, state=detail["state"],
            duration_s=(end - start) if start is not None and end is not None else None,
            steps={s["id"]: s["state"] for s in detail["steps"] if s.get("iteration") is None},
            compensation=detail.get("compensation"), error=detail.get("error"),
        )

    def _echo_event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        step = event.get("step_id")
        data = event.get("data") or {}
        raw_error = data.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        marks = {
            "step.succeeded": "✓", "step.failed": "✗", "step.retrying": "↻", "step.skipped": "–",
            "compensation.step_undone": "↶", "compensation.step_failed": "!", "compensation.started": "↶",
        }
        if kind not in marks:
            return
        if kind == "compensation.started":
            self.echo("    ↶ the run failed: undoing completed steps")
            return
        text = f"    {marks[kind]} {step}"
        if kind == "step.retrying":
            text += f" (retrying: {error.get('message') or error.get('type') or 'transient error'})"
        elif kind == "step.failed":
            text += f": {error.get('message') or error.get('type') or 'failed'}"
        elif kind == "compensation.step_undone":
            text += " undone"
        self.echo(text)


def run_demo(options: DemoOptions, echo: Echo = print, *,
             keep_open: bool = False) -> tuple[DemoResult, DemoSession]:
    """Do the whole story; the session stays open when `keep_open` (the caller serves, then closes)."""
    session = DemoSession(options, echo)
    try:
        session.start()
        echo(f"Demo services on {session.services.url} (CRM, billing, provisioning, chat), "
             f"SMTP on {session.mail.host}:{session.mail.port}")
        echo(f"Catalog written to {session.catalog_path}")
        echo("")
        echo(f"Planning (offline): “{options.request}”")
        plan, workflow_id = session.plan_and_accept()
        if plan.get("explanation"):
            for line in str(plan["explanation"]).splitlines():
                echo(f"  {line}")
        else:
            echo(f"  {len(plan['workflow']['steps'])} steps: "
                 + ", ".join(s["id"] for s in plan["workflow"]["steps"]))
        if session.saved_version is not None:
            echo(f"  saved as version {session.saved_version} of workflow {workflow_id} "
                 "(made by an earlier demo in this folder)")
        else:
            echo(f"  accepted as workflow {workflow_id}")
        session.add_retries()
        echo("")
        runs = []
        echo("Run 1 — a new enterprise customer signs up:")
        schema = session.workflow_inputs(workflow_id)
        runs.append(session.run(workflow_id, inputs_for(schema, DEMO_INPUTS)))
        _echo_outcome(echo, runs[-1])
        echo("")
        echo("Run 2 — the same, but billing declines the payment method:")
        session.state.set_failing(set(options.fail) | {"billing"})
        second = {**DEMO_INPUTS, "company": "Globex Industrial", "email": "admin@globex.example"}
        runs.append(session.run(workflow_id, inputs_for(schema, second)))
        session.state.set_failing(options.fail)
        _echo_outcome(echo, runs[-1])
        undo_calls = Counter(f"{c.service}.{c.operation}" for c in session.state.calls if c.is_undo)
        if undo_calls:
            listed = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in undo_calls.items())
            echo(f"  undo calls the demo services received: {listed}")
        echo(f"  emails received by the SMTP server so far: {len(session.mail.inbox)}")
        result = DemoResult(app_url=session.app_url, token=session.token, catalog_path=session.catalog_path,
                            workflow_id=workflow_id, plan=plan, runs=runs, state=session.state,
                            mail=session.mail)
    except BaseException:
        session.close()
        raise
    if not keep_open:
        session.close()
    return result, session


def _echo_outcome(echo: Echo, run: RunReport) -> None:
    took = f" in {run.duration_s:.2f}s" if run.duration_s is not None else ""
    echo(f"  → run {run.id} {run.state}{took}")
    if run.compensation:
        undone = [u if isinstance(u, str) else u.get("step", "?") for u in run.compensation.get("undone", [])]
        echo(f"  → compensation {run.compensation.get('status')}: undid {', '.join(undone) or 'nothing'}")
