"""Prometheus metrics: requests by route template, runs started/finished by state, steps by outcome.

Each app has its own registry, so several apps in one process (tests, the demo) never share or
clash. Request metrics are labelled by the route's template (`/v1/runs/{run_id}`), never the raw
path, so the number of series stays bounded; unmatched paths share one `<unmatched>` label.
Run and step counts come from the journal's events, so they count runs however they were started.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# journal event type → (metric, label) for the run and step counters
_STEP_OUTCOMES = {
    "step.succeeded": "succeeded", "step.failed": "failed", "step.skipped": "skipped",
    "step.cancelled": "cancelled", "step.retrying": "retrying",
}


class Metrics:
    """The app's metrics and their registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "overture_http_requests", "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "overture_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )
        self.runs_started = Counter("overture_runs_started", "Runs started.", registry=self.registry)
        self.runs_finished = Counter("overture_runs_finished", "Runs finished, by final state.",
                                     ["state"], registry=self.registry)
        self.steps = Counter("overture_steps", "Step outcomes (a retry counts as `retrying`).",
                             ["outcome"], registry=self.registry)
        self.event_streams = Gauge("overture_event_streams", "Open server-sent-event streams.",
                                   registry=self.registry)

    def on_event(self, event: Any) -> None:
        """A journal listener: count runs and steps from the events the engine writes."""
        kind = getattr(event, "type", "")
        if kind == "run.started":
            self.runs_started.inc()
        elif kind == "run.finished":
            data = getattr(event, "data", None) or {}
            self.runs_finished.labels(str(data.get("state", "unknown"))).inc()
        elif kind in _STEP_OUTCOMES:
            self.steps.labels(_STEP_OUTCOMES[kind]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request and labels it with the route template the router matched."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "<unmatched>"
            if not isinstance(template, str):
                template = "<unmatched>"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
