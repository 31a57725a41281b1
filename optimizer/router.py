"""The learned routing policy: which of a step's candidate actions to call, under current conditions.

A contextual bandit. For each candidate it predicts, from the trained per-action models and the
conditions the runtime hands over (time of day, runs in flight, each action's recent error rate
and latency), the attempt's expected duration and failure probability, and scores

    cost = E[duration] / (1 − P(failure)) + failure_penalty_s × P(failure)

in seconds: the expected time until a successful attempt if failures are retried, plus a charge
for the failures themselves (a step without retries fails its run).

The models are read at the conditions that do not depend on the routing policy (time of day, runs
in flight), with the recent-window features at their training means: a window the policy itself
emptied (traffic moved elsewhere) is outside anything the models saw, and extrapolating into it
made decisions stick. The window's own evidence is folded in explicitly instead: the model's
failure probability and expected duration are a prior worth `prior_calls` observations, the
window's error rate and mean latency are evidence on top of it, so an outage the models never saw,
or a service that slowed down since training, moves traffic within a few calls. Once traffic has
moved, the window of the avoided action empties; the router then remembers the last error rate it
saw, fading with `memory_half_life_s`, so it does not return to a failing service the moment its
window is empty (exploration probes it meanwhile, and fresh calls replace the memory).
(`recent_features=True` reads the models' own recent-window coefficients instead, for comparison.)

Exploration follows the uncertainty (probability matching, as Thompson sampling does, but with
exact propensities): a candidate's log-cost is taken as uncertain by `uncertainty / √(1 + n)`,
where n counts the evidence behind the prediction at this moment — the training attempts at the
same time of day (three-hour bins) plus the calls in the recent window. An alternative other than
the cheapest is called with the probability that its cost is in fact the lower one, Φ(−Δ/σ) on the
log scale, and never less than ε/m; with plenty of evidence that falls to the ε/m floor, at hours
the history never covered it rises towards ½ for close calls. Only plausible candidates (predicted
cost within `explore_within` times the best) are explored; the probability of the choice is
returned as the propensity the journal records, so outcomes can be reweighed off-policy.

A decision is a few dozen float operations: the models' coefficients are copied into plain Python
tuples once per model set (`replace_models`), and no numpy is touched on the routing path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.features import HOUR_CENTERS, HOUR_WIDTH, N_FEATURES
from optimizer.models import ActionModel, ModelSet
from runtime.routing import Conditions, RouteChoice
from workflow.document import Step

DEFAULT_EPSILON = 0.01
DEFAULT_FAILURE_PENALTY_S = 10.0
DEFAULT_PRIOR_CALLS = 10.0
DEFAULT_MEMORY_HALF_LIFE_S = 1800.0
DEFAULT_EXPLORE_WITHIN = 2.0
DEFAULT_UNCERTAINTY = 0.25
"""Spread of one observation's log-cost: one attempt says little about the next one's cost."""

_N_BUMPS = len(HOUR_CENTERS)
_BIN_HOURS = 24.0 / _N_BUMPS
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Score:
    action: str
    expected_duration_s: float
    failure_probability: float
    cost: float
    evidence: float = 0.0
    """Observations behind the prediction at this moment (same-time-of-day training rows + recent calls)."""


def route_cost(expected_duration_s: float, failure_probability: float,
               failure_penalty_s: float = DEFAULT_FAILURE_PENALTY_S) -> float:
    """What the router minimizes (and the benchmark's oracle too), in seconds."""
    p = min(max(failure_probability, 0.0), 0.999)
    return expected_duration_s / (1.0 - p) + failure_penalty_s * p


@dataclass(frozen=True, slots=True)
class _Coefficients:
    """One action's models as plain floats: the routing path's only data."""

    fail_hour: tuple[float, ...]
    fail_rest: tuple[float, float, float, float]  # log_load, recent error, recent log latency, log calls
    fail_bias: float
    lat_hour: tuple[float, ...]
    lat_rest: tuple[float, float, float, float]
    lat_bias: float
    lat_smear: float
    prior_error: float
    prior_latency: float
    rows_by_bin: tuple[float, ...]
    """Training rows per three-hour bin of the day."""
    fail_mean_rest: float
    lat_mean_rest: float
    """The recent-stat features' contribution at their training means."""


def _coefficients(model: ActionModel, prior: tuple[float, float]) -> _Coefficients:
    fc = [float(v) for v in model.fail_coef]
    lc = [float(v) for v in model.lat_coef]
    if len(fc) != N_FEATURES or len(lc) != N_FEATURES:
        raise ValueError(f"model of {model.action} has {len(fc)} features, expected {N_FEATURES}")
    bins = [0.0] * _N_BUMPS
    rows = model.rows_x
    if rows.size:
        # the hour bumps peak at the row's nearest three-hour centre
        for b, count in zip(*_unique(rows[:, :_N_BUMPS].argmax(axis=1)), strict=True):
            bins[int(b)] = float(count)
    means = [float(v) for v in rows[:, _N_BUMPS + 1:].mean(axis=0)] if rows.size else [0.0, 0.0, 0.0]
    fail_mean = sum(w * m for w, m in zip(fc[_N_BUMPS + 1:], means, strict=True))
    lat_mean = sum(w * m for w, m in zip(lc[_N_BUMPS + 1:], means, strict=True))
    return _Coefficients(
        fail_hour=tuple(fc[:_N_BUMPS]), fail_rest=(fc[8], fc[9], fc[10], fc[11]), fail_bias=model.fail_bias,
        lat_hour=tuple(lc[:_N_BUMPS]), lat_rest=(lc[8], lc[9], lc[10], lc[11]), lat_bias=model.lat_bias,
        lat_smear=model.lat_smear, prior_error=prior[0], prior_latency=prior[1], rows_by_bin=tuple(bins),
        fail_mean_rest=fail_mean, lat_mean_rest=lat_mean,
    )


def _unique(values: object) -> tuple[list[int], list[int]]:
    import numpy as np

    uniq, counts = np.unique(np.asarray(values), return_counts=True)
    return [int(u) for u in uniq], [int(c) for c in counts]


def _bumps(now: float) -> tuple[list[float], int]:
    hour = (now % 86_400.0) / 3600.0
    out = []
    for c in HOUR_CENTERS:
        d = abs(hour - c)
        d = min(d, 24.0 - d)
        out.append(math.exp(-0.5 * (d / HOUR_WIDTH) ** 2))
    return out, int(((hour + _BIN_HOURS / 2.0) % 24.0) // _BIN_HOURS)


class LearnedRouter:
    """Implements `runtime.routing.Router` with the trained models."""

    def __init__(
        self,
        models: ModelSet,
        *,
        epsilon: float = DEFAULT_EPSILON,
        failure_penalty_s: float = DEFAULT_FAILURE_PENALTY_S,
        prior_calls: float = DEFAULT_PRIOR_CALLS,
        memory_half_life_s: float = DEFAULT_MEMORY_HALF_LIFE_S,
        explore_within: float = DEFAULT_EXPLORE_WITHIN,
        uncertainty: float = DEFAULT_UNCERTAINTY,
        fuse_latency: bool = True,
        recent_features: bool = False,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be within 0..1, got {epsilon}")
        if uncertainty < 0.0:
            raise ValueError(f"uncertainty must be ≥ 0, got {uncertainty}")
        self.epsilon = epsilon
        self.failure_penalty_s = failure_penalty_s
        self.prior_calls = prior_calls
        self.memory_half_life_s = memory_half_life_s
        self.explore_within = explore_within
        self.uncertainty = uncertainty
        self.fuse_latency = fuse_latency
        self.recent_features = recent_features
        self._memory: dict[str, tuple[float, float, float]] = {}  # action → (time, calls, error rate)
        self._rng = random.Random(seed)
        self._bump_at = math.nan
        self._bump_cache: tuple[list[float], int] = ([], 0)
        self.replace_models(models)

    def replace_models(self, models: ModelSet) -> None:
        """Swap in a newer training without restarting the engine."""
        coefficients = {
            action: _coefficients(model, models.priors.get(action, (model.failure_rate, model.mean_duration)))
            for action, model in models.actions.items()
        }
        self.models = models
        self._coef = coefficients

    def score(self, action: str, conditions: Conditions) -> Score | None:
        """The router's view of one candidate under `conditions` (None: no model of it)."""
        found = self._estimate(action, conditions)
        if found is None:
            return None
        d, p, cost, evidence = found
        return Score(action, d, p, cost, evidence)

    def _estimate(self, action: str, conditions: Conditions) -> tuple[float, float, float, float] | None:
        """(expected duration, failure probability, cost, evidence) of one candidate."""
        c = self._coef.get(action)
        if c is None:
            return None
        now = conditions.now
        if now != self._bump_at:
            self._bump_cache = _bumps(now)
            self._bump_at = now
        bumps, hour_bin = self._bump_cache
        stats = conditions.recent.get(action)
        n = 0
        err = 0.0
        mean = c.prior_latency
        if stats is not None and stats.calls > 0:
            n = stats.calls
            err = stats.error_rate
            if stats.mean_latency_s is not None:
                mean = stats.mean_latency_s
        # the features, as `optimizer.features.feature_vector` computes them
        f_load = math.log1p(max(conditions.runs_in_flight, 0))
        f_err = (err * n + c.prior_error) / (n + 1.0)
        f_lat = math.log1p(max((mean * n + c.prior_latency) / (n + 1.0), 0.0))
        f_calls = math.log1p(n)
        zf, zl = c.fail_bias, c.lat_bias
        for b, wf, wl in zip(bumps, c.fail_hour, c.lat_hour, strict=True):
            zf += b * wf
            zl += b * wl
        r = c.fail_rest
        if self.recent_features:
            zf += r[0] * f_load + r[1] * f_err + r[2] * f_lat + r[3] * f_calls
        else:
            zf += r[0] * f_load + c.fail_mean_rest
        r = c.lat_rest
        if self.recent_features:
            zl += r[0] * f_load + r[1] * f_err + r[2] * f_lat + r[3] * f_calls
        else:
            zl += r[0] * f_load + c.lat_mean_rest
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, zf))))
        calls = float(n)
        if calls > 0:
            self._memory[action] = (now, calls, err)
        elif self.memory_half_life_s > 0 and (seen := self._memory.get(action)) is not None:
            at, seen_calls, err = seen
            calls = seen_calls * 0.5 ** (max(0.0, now - at) / self.memory_half_life_s)
        if calls > 0:
            p = (p * self.prior_calls + err * calls) / (self.prior_calls + calls)
        d = max(0.0, math.expm1(min(zl, 50.0)) * c.lat_smear)
        if n > 0 and self.fuse_latency and stats is not None and stats.mean_latency_s is not None:
            # the window's own mean latency is evidence on top of the model's, as for failures: a
            # service that slowed down since training is seen as slower within a few calls
            d = (d * self.prior_calls + stats.mean_latency_s * n) / (self.prior_calls + n)
        q = min(max(p, 0.0), 0.999)
        cost = d / (1.0 - q) + self.failure_penalty_s * q  # `route_cost`, inlined
        return d, p, cost, c.rows_by_bin[hour_bin] + n

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        options = list(dict.fromkeys(candidates)) or [step.action]
        k = len(options)
        if k == 1:
            return RouteChoice(action=options[0], propensity=1.0)
        estimates = [self._estimate(a, conditions) for a in options]
        # an action never seen yet gets the best known cost and no evidence: it is explored
        best_known = min((e[2] for e in estimates if e is not None), default=0.0)
        costs = [e[2] if e is not None else best_known for e in estimates]
        evidence = [e[3] if e is not None else 0.0 for e in estimates]
        greedy = 0
        for i in range(1, k):
            if costs[i] < costs[greedy]:
                greedy = i
        # explore only among plausible options: probing a service predicted to cost many times the
        # best (one in an outage) teaches little and costs a lot
        best = costs[greedy]
        limit = best * self.explore_within
        eligible = [i for i in range(k) if i != greedy and costs[i] <= limit]
        if not eligible:
            return RouteChoice(action=options[greedy], propensity=1.0)
        m = len(eligible) + 1
        floor = self.epsilon / m
        var_best = 1.0 / (1.0 + evidence[greedy])
        probs = []
        for i in eligible:
            q = floor
            if self.uncertainty > 0.0 and best > 0.0:
                sigma = self.uncertainty * math.sqrt(var_best + 1.0 / (1.0 + evidence[i]))
                gap = math.log(max(costs[i], best) / best)
                # P(this option's cost is below the cheapest's) under a log-normal belief
                q = max(q, 0.5 * math.erfc(gap / (sigma * _SQRT2)))
            probs.append(q)
        total = sum(probs)
        if total > 1.0 - floor:
            # several options each likely as good as the best: share out what is left for them
            scale = (1.0 - floor) / total
            probs = [q * scale for q in probs]
        u = self._rng.random()
        for i, q in zip(eligible, probs, strict=True):
            if u < q:
                return RouteChoice(action=options[i], propensity=q)
            u -= q
        return RouteChoice(action=options[greedy], propensity=1.0 - sum(probs))


def load_router(models_dir: str | None = None, **options: float) -> LearnedRouter | None:
    """The learned router over the latest stored models, or None before the first training: what
    an embedder passes as `Engine(..., router=load_router())`."""
    from optimizer.store import ModelStore

    models = ModelStore(models_dir).latest()
    if models is None:
        return None
    return LearnedRouter(models, **options)  # type: ignore[arg-type]
