"""The learned routing policy: which of a step's candidate actions to call, under current conditions.

A contextual bandit. For each candidate it predicts, from the trained per-action models and the
conditions the runtime hands over (time of day, runs in flight, each action's recent error rate
and latency), the attempt's expected duration and failure probability, and scores

    cost = E[duration] / (1 − P(failure)) + failure_penalty_s × P(failure)

in seconds: the expected time until a successful attempt if failures are retried, plus a charge
for the failures themselves (a step without retries fails its run).

The models are read at the conditions that do not depend on the routing policy (time of day, runs
in flight), and are fitted on those alone (`ActionModel.route_*`): a window the policy itself
emptied (traffic moved elsewhere) is outside anything the models saw, and extrapolating into it
made decisions stick; and a fit that also saw the window's stats gave them part of the time of
day's effect (a daily peak shows in the window too), so read without them the peak came out flat.
(Models trained before the routing fits existed are read with the recent-window features at their
training means.) The window's own evidence is folded in explicitly instead: the model's
failure probability and expected duration are a prior worth `prior_calls` observations, the
window's error rate and mean latency are evidence on top of it, so a service that slowed down
since training moves traffic within a few calls. The failure probability is worth more where the
model rests on more: as many observations as its training attempts at the same time of day
(three-hour bins, as for exploration below), but never more than the window's own calls, so a
window of a few calls (a couple of the service's usual failures) no longer swings a well-supported
rate, while a full window still has as much say as the past. Once traffic has moved, the window of the avoided
action empties; the router then remembers the last error rate it saw, fading with
`memory_half_life_s`, so it does not return to a failing service the moment its window is empty.
(`recent_features=True` reads the models' own recent-window coefficients instead, for comparison.)

An hour-long window is slow to notice an outage: its first failures are outnumbered by the hour's
successes. So the router also keeps, per action, a belief about the service's *state*: normal (its
failure rate is the model's and window's) or degraded, at one of three levels (failing 1/6, 1/2 or
5/6 of the way from that rate to always; the midpoints of thirds of a uniform belief, an outage's
rate not being known up front). It is a hidden Markov filter over the action's attempts one by one
(`ActionStats.newest_*`, the newest few finished, in order): between two attempts the state is kept
with probability exp(−gap / `outage_mean_s`) and otherwise drawn afresh from the prior (degraded
with probability `change_prior`); each outcome then reweighs the states by its likelihood in them.
Each attempt is taken in once, when the router first sees it, so the belief keeps what attempts
long gone from the window showed, and it is carried forward to the moment of the decision by the
same transition (with no news it drifts back to the prior, as outages end). Order matters where
aggregates lose it: failures in a row after a long healthy run weigh more than the same failures
spread among successes, and one lucky success in the middle of an outage lowers the suspicion by
the likelihood ratio of one success, instead of diluting an average. The router then weighs the
states' costs, not their rates: cost is convex in the failure rate, so a 20% chance of an outage
costs more than a failure rate 20% of the way to one.

Once traffic has moved off an action its window stops being news: only old attempts leave it, its
successes expire while the failures that moved traffic stay newest, and its error rate would climb
with nothing new to say. So the window's error rate is read only when a newer attempt arrived;
otherwise the last one read, with its weight fading with `memory_half_life_s`, stands for it, and
only for the share of it the filter puts down to the normal state (its probability of normal): the
failures it puts down to a degraded spell are already its evidence, and counted twice (in the
normal rate and in the suspicion) they kept traffic away from a recovered service, or from one a
single unlucky failure had put under suspicion, long after the suspicion itself had faded.

Exploration follows the uncertainty (probability matching, as Thompson sampling does, but with
exact propensities): a candidate's log-cost is taken as uncertain by `uncertainty / √(1 + n)`,
where n counts the evidence behind the prediction at this moment — the training attempts at the
same time of day (three-hour bins) plus the calls in the recent window. An alternative other than
the cheapest is called with the probability that its cost is in fact the lower one, Φ(−Δ/σ) on the
log scale, and never less than ε/m; with plenty of evidence that falls to the ε/m floor, at hours
the history never covered it rises towards ½ for close calls. Only plausible candidates (predicted
cost within `explore_within` times the best) are explored; the probability of the choice is
returned as the propensity the journal records, so outcomes can be reweighed off-policy.

A decision is a few dozen float operations on plain Python numbers: per action, the models'
time-of-day terms are tabulated once per model set (`replace_models`, one entry per minute of the
day, read by linear interpolation), the other coefficients copied into floats, and no numpy is
touched on the routing path. Allocation is kept to a few objects per decision, and
`freeze_gc=True` (what `load_router` does) moves everything alive once the models are loaded out of
the cyclic collector's reach, so a full collection never has to walk the models or the process's
start-up objects in the middle of a decision.
"""

from __future__ import annotations

import gc
import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.features import HOUR_CENTERS, HOUR_WIDTH, N_FEATURES
from optimizer.models import ActionModel, ModelSet
from optimizer.outage import DEFAULT_CHANGE_PRIOR, DEFAULT_OUTAGE_MEAN_S, LEVELS
from runtime.routing import ActionStats, Conditions, RouteChoice
from workflow.document import Step

DEFAULT_EPSILON = 0.01
DEFAULT_FAILURE_PENALTY_S = 10.0
DEFAULT_PRIOR_CALLS = 10.0
DEFAULT_MEMORY_HALF_LIFE_S = 3600.0
DEFAULT_EXPLORE_WITHIN = 2.0
DEFAULT_UNCERTAINTY = 0.25
"""Spread of one observation's log-cost: one attempt says little about the next one's cost."""
_LEVELS = LEVELS

_N_BUMPS = len(HOUR_CENTERS)
_BIN_HOURS = 24.0 / _N_BUMPS
_SQRT2 = math.sqrt(2.0)
_STEPS_PER_HOUR = 60
_DAY_STEPS = 24 * _STEPS_PER_HOUR


@dataclass(frozen=True)
class Score:
    action: str
    expected_duration_s: float
    failure_probability: float
    cost: float
    evidence: float = 0.0
    """Observations behind the prediction at this moment (same-time-of-day training rows + recent calls)."""
    change_probability: float = 0.0
    """Probability that the action is degraded (an outage) rather than as the model and window say."""


def route_cost(expected_duration_s: float, failure_probability: float,
               failure_penalty_s: float = DEFAULT_FAILURE_PENALTY_S) -> float:
    """What the router minimizes (and the benchmark's oracle too), in seconds."""
    p = min(max(failure_probability, 0.0), 0.999)
    return expected_duration_s / (1.0 - p) + failure_penalty_s * p


def _hour_table(weights: Sequence[float]) -> array[float]:
    """Σ bump_i(hour) × weights_i at every minute of the day, plus the wrap-around entry."""
    import numpy as np

    hour = np.arange(_DAY_STEPS + 1, dtype=np.float64) / _STEPS_PER_HOUR
    d = np.abs(hour[:, None] - np.asarray(HOUR_CENTERS)[None, :])
    d = np.minimum(d, 24.0 - d)
    z = np.exp(-0.5 * (d / HOUR_WIDTH) ** 2) @ np.asarray(weights, dtype=np.float64)
    return array("d", z.astype(np.float64).tobytes())


@dataclass(frozen=True, slots=True)
class _Coefficients:
    """One action's models as plain floats: the routing path's only data."""

    fail_hours: array[float]
    lat_hours: array[float]
    """The time-of-day terms per minute of the day (`_hour_table`)."""
    fail_rest: tuple[float, float, float, float]  # log_load, recent error, recent log latency, log calls
    fail_bias: float
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


def _coefficients(model: ActionModel, prior: tuple[float, float], *,
                  recent_features: bool = False) -> _Coefficients:
    route_fail = getattr(model, "route_fail_coef", None)
    route_lat = getattr(model, "route_lat_coef", None)
    if recent_features or route_fail is None or route_lat is None:
        fail_coef, fail_bias = model.fail_coef, model.fail_bias
        lat_coef, lat_bias, lat_smear = model.lat_coef, model.lat_bias, model.lat_smear
    else:
        # fitted on time of day and load alone: the window's evidence is the router's to fold in
        fail_coef, fail_bias = route_fail, model.route_fail_bias
        lat_coef, lat_bias, lat_smear = route_lat, model.route_lat_bias, model.route_lat_smear
    fc = [float(v) for v in fail_coef]
    lc = [float(v) for v in lat_coef]
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
        fail_hours=_hour_table(fc[:_N_BUMPS]), lat_hours=_hour_table(lc[:_N_BUMPS]),
        fail_rest=(fc[8], fc[9], fc[10], fc[11]), fail_bias=fail_bias,
        lat_rest=(lc[8], lc[9], lc[10], lc[11]), lat_bias=lat_bias,
        lat_smear=lat_smear, prior_error=prior[0], prior_latency=prior[1], rows_by_bin=tuple(bins),
        fail_mean_rest=fail_mean, lat_mean_rest=lat_mean,
    )


def _unique(values: object) -> tuple[list[int], list[int]]:
    import numpy as np

    uniq, counts = np.unique(np.asarray(values), return_counts=True)
    return [int(u) for u in uniq], [int(c) for c in counts]


class _Memory:
    """What the router last saw of one action, kept in place so a decision allocates no new entry.

    `b0..b3` is the filter's belief (normal, then the three degraded levels) just after the attempt
    that started at `state_at`, the newest one it has taken in."""

    __slots__ = (
        "b0", "b1", "b2", "b3", "state_at", "window_at", "window_calls", "window_error", "window_newest",
    )

    def __init__(self, change_prior: float) -> None:
        self.window_at = self.state_at = self.window_newest = -math.inf
        self.window_calls = self.window_error = 0.0
        self.b0 = 1.0 - change_prior
        self.b1 = self.b2 = self.b3 = change_prior / 3.0


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
        change_prior: float = DEFAULT_CHANGE_PRIOR,
        outage_mean_s: float = DEFAULT_OUTAGE_MEAN_S,
        fuse_latency: bool = True,
        recent_features: bool = False,
        freeze_gc: bool = False,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be within 0..1, got {epsilon}")
        if uncertainty < 0.0:
            raise ValueError(f"uncertainty must be ≥ 0, got {uncertainty}")
        if not 0.0 <= change_prior < 1.0:
            raise ValueError(f"change_prior must be within 0..1, got {change_prior}")
        if outage_mean_s <= 0.0:
            raise ValueError(f"outage_mean_s must be > 0, got {outage_mean_s}")
        self.epsilon = epsilon
        self.failure_penalty_s = failure_penalty_s
        self.prior_calls = prior_calls
        self.memory_half_life_s = memory_half_life_s
        self.explore_within = explore_within
        self.uncertainty = uncertainty
        self.change_prior = change_prior
        self.outage_mean_s = outage_mean_s
        self.fuse_latency = fuse_latency
        self.recent_features = recent_features
        self.freeze_gc = freeze_gc
        self._memory: dict[str, _Memory] = {}
        self._certain_choices: dict[str, RouteChoice] = {}
        self._rng = random.Random(seed)
        self.replace_models(models)

    def replace_models(self, models: ModelSet) -> None:
        """Swap in a newer training without restarting the engine."""
        coefficients = {
            action: _coefficients(model, models.priors.get(action, (model.failure_rate, model.mean_duration)),
                                  recent_features=self.recent_features)
            for action, model in models.actions.items()
        }
        self.models = models
        self._coef = coefficients
        self._memory = {**{a: _Memory(self.change_prior) for a in coefficients}, **self._memory}
        if self.freeze_gc:
            # everything alive now (the models, their training rows, the process's start-up objects)
            # lives as long as the process: a full collection need not walk it during a decision
            gc.freeze()

    def score(self, action: str, conditions: Conditions) -> Score | None:
        """The router's view of one candidate under `conditions` (None: no model of it)."""
        c = self._coef.get(action)
        if c is None:
            return None
        d, p, cost, evidence, change = self._estimate(c, action, conditions, _load_term(conditions))
        return Score(action, d, p, cost, evidence, change)

    def _estimate(self, c: _Coefficients, action: str, conditions: Conditions,
                  f_load: float) -> tuple[float, float, float, float, float]:
        """(expected duration, failure probability, cost, evidence, change probability) of one candidate."""
        now = conditions.now
        # the time-of-day terms, read off the per-minute tables
        pos = (now % 86_400.0) / 3600.0 * _STEPS_PER_HOUR
        k = int(pos)
        frac = pos - k
        hours = c.fail_hours
        zf = c.fail_bias + hours[k] + (hours[k + 1] - hours[k]) * frac
        hours = c.lat_hours
        zl = c.lat_bias + hours[k] + (hours[k + 1] - hours[k]) * frac
        hour_bin = int(((pos / _STEPS_PER_HOUR + _BIN_HOURS / 2.0) % 24.0) // _BIN_HOURS)

        stats: ActionStats | None = conditions.recent.get(action)
        n = 0
        err = 0.0
        if stats is not None and stats.calls > 0:
            n = stats.calls
            err = stats.error_rate
        r = c.fail_rest
        q = c.lat_rest
        if self.recent_features:
            # the features, as `optimizer.features.feature_vector` computes them
            mean = stats.mean_latency_s if stats is not None and n and stats.mean_latency_s is not None \
                else c.prior_latency
            f_err = (err * n + c.prior_error) / (n + 1.0)
            f_lat = math.log1p(max((mean * n + c.prior_latency) / (n + 1.0), 0.0))
            f_calls = math.log1p(n)
            zf += r[0] * f_load + r[1] * f_err + r[2] * f_lat + r[3] * f_calls
            zl += q[0] * f_load + q[1] * f_err + q[2] * f_lat + q[3] * f_calls
        else:
            zf += r[0] * f_load + c.fail_mean_rest
            zl += q[0] * f_load + c.lat_mean_rest
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, zf))))

        memory = self._memory.get(action)
        if memory is None:
            memory = self._memory[action] = _Memory(self.change_prior)
        half_life = self.memory_half_life_s
        calls = float(n)
        latest_at = stats.latest_started_at if stats is not None else None
        if n > 0 and (latest_at is None or latest_at > memory.window_newest or memory.window_calls <= 0.0):
            memory.window_at, memory.window_calls, memory.window_error = now, calls, err
            if latest_at is not None:
                memory.window_newest = latest_at
        elif half_life > 0.0 and memory.window_calls > 0.0:
            # nothing newer than what the window last showed: only old attempts left it. Once
            # traffic has moved away its successes expire while the failures that moved it stay
            # newest, and the window's own error rate climbs on no news; the last rate seen with
            # news, fading, does not
            err = memory.window_error
            calls = memory.window_calls * 0.5 ** (max(0.0, now - memory.window_at) / half_life)
            # and only as far as those failures are the normal state's: the ones the filter puts down
            # to a degraded spell are its evidence already (counted twice they kept traffic away
            # from a recovered service, or from one a single unlucky failure put under suspicion)
            calls *= memory.b0
        if calls > 0.0:
            # the model's rate is worth the attempts behind it at this time of day, at least
            # `prior_calls` and at most as many as the window's own: a window of a few calls moves a
            # well-supported rate less, and a full one still has as much say as the past
            weight = max(self.prior_calls, min(c.rows_by_bin[hour_bin], calls))
            p = (p * weight + err * calls) / (weight + calls)
        if stats is not None and stats.newest_started_at and stats.newest_started_at[0] > memory.state_at:
            self._filter(memory, stats.newest_started_at, stats.newest_failed, p)

        d = max(0.0, math.expm1(min(zl, 50.0)) * c.lat_smear)
        if n > 0 and self.fuse_latency and stats is not None and stats.mean_latency_s is not None:
            # the window's own mean latency is evidence on top of the model's, as for failures: a
            # service that slowed down since training is seen as slower within a few calls
            d = (d * self.prior_calls + stats.mean_latency_s * n) / (self.prior_calls + n)

        # carried forward from the newest attempt to now: with no news the belief drifts back to the
        # prior, at the rate outages end
        keep = math.exp(-(now - memory.state_at) / self.outage_mean_s) if now > memory.state_at else 1.0
        prior_d = self.change_prior / 3.0
        b1 = memory.b1 * keep + prior_d * (1.0 - keep)
        b2 = memory.b2 * keep + prior_d * (1.0 - keep)
        b3 = memory.b3 * keep + prior_d * (1.0 - keep)
        change = b1 + b2 + b3

        penalty = self.failure_penalty_s
        f = min(max(p, 0.0), 0.999)
        cost = d / (1.0 - f) + penalty * f  # `route_cost`, inlined
        if change > 1e-9:
            # each state's cost weighed by its probability: cost is convex in the failure rate, so a
            # 20% chance of an outage costs more than a failure rate 20% of the way to one
            room = 1.0 - f
            f1 = f + room * _LEVELS[0]
            f2 = f + room * _LEVELS[1]
            f3 = min(f + room * _LEVELS[2], 0.999)
            cost = (1.0 - change) * cost + b1 * (d / (1.0 - f1) + penalty * f1) \
                + b2 * (d / (1.0 - f2) + penalty * f2) + b3 * (d / (1.0 - f3) + penalty * f3)
            p = (1.0 - change) * p + b1 * f1 + b2 * f2 + b3 * f3
        return d, p, cost, c.rows_by_bin[hour_bin] + n, change

    def _filter(self, memory: _Memory, started_at: Sequence[float], failures: Sequence[bool],
                p: float) -> None:
        """Take the attempts that started after `memory.state_at` into the belief, oldest first, with
        `p` as the normal state's failure rate. Between two attempts the state is kept with
        probability exp(−gap / outage_mean_s) and otherwise drawn afresh from the prior; each outcome
        then weighs the states by its likelihood in them. Each attempt is taken in once, so the
        belief carries what attempts that have since left `newest` showed."""
        b0, b1, b2, b3 = memory.b0, memory.b1, memory.b2, memory.b3
        at = memory.state_at
        tau = self.outage_mean_s
        prior_n = 1.0 - self.change_prior
        prior_d = self.change_prior / 3.0
        f0 = min(max(p, 1e-4), 0.999)
        q = 1.0 - f0
        f1, f2, f3 = f0 + q * _LEVELS[0], f0 + q * _LEVELS[1], f0 + q * _LEVELS[2]
        for i in range(min(len(started_at), len(failures)) - 1, -1, -1):
            started = started_at[i]
            if started <= at:
                continue
            keep = math.exp(-(started - at) / tau)
            b0 = b0 * keep + prior_n * (1.0 - keep)
            b1 = b1 * keep + prior_d * (1.0 - keep)
            b2 = b2 * keep + prior_d * (1.0 - keep)
            b3 = b3 * keep + prior_d * (1.0 - keep)
            if failures[i]:
                b0, b1, b2, b3 = b0 * f0, b1 * f1, b2 * f2, b3 * f3
            else:
                b0, b1, b2, b3 = b0 * (1.0 - f0), b1 * (1.0 - f1), b2 * (1.0 - f2), b3 * (1.0 - f3)
            total = b0 + b1 + b2 + b3
            b0, b1, b2, b3 = b0 / total, b1 / total, b2 / total, b3 / total
            at = started
        memory.b0, memory.b1, memory.b2, memory.b3, memory.state_at = b0, b1, b2, b3, at

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        if len(candidates) == 2 and candidates[0] != candidates[1]:
            first, second = candidates
            c1, c2 = self._coef.get(first), self._coef.get(second)
            if c1 is not None and c2 is not None:
                return self._choose_two(first, c1, second, c2, conditions)
            options: Sequence[str] = candidates
        else:
            options = list(dict.fromkeys(candidates)) or [step.action]
        k = len(options)
        if k == 1:
            return RouteChoice(action=options[0], propensity=1.0)
        f_load = _load_term(conditions)
        costs = [0.0] * k
        evidence = [0.0] * k
        known = [False] * k
        best_known = math.inf
        coef = self._coef
        for i, action in enumerate(options):
            c = coef.get(action)
            if c is not None:
                _, _, cost, ev, _ = self._estimate(c, action, conditions, f_load)
                costs[i], evidence[i], known[i] = cost, ev, True
                if cost < best_known:
                    best_known = cost
        # an action never seen yet gets the best known cost and no evidence: it is explored
        if best_known == math.inf:
            best_known = 0.0
        greedy = -1
        for i in range(k):
            if not known[i]:
                costs[i] = best_known
            if greedy < 0 or costs[i] < costs[greedy]:
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
            total = sum(probs)
        u = self._rng.random()
        for i, q in zip(eligible, probs, strict=True):
            if u < q:
                return RouteChoice(action=options[i], propensity=q)
            u -= q
        return RouteChoice(action=options[greedy], propensity=1.0 - total)

    def _choose_two(self, a: str, ca: _Coefficients, b: str, cb: _Coefficients,
                    conditions: Conditions) -> RouteChoice:
        """`choose` between two modelled candidates, the common case, without the general path's
        lists: the same decision and propensities."""
        f_load = _load_term(conditions)
        _, _, cost_a, ev_a, _ = self._estimate(ca, a, conditions, f_load)
        _, _, cost_b, ev_b, _ = self._estimate(cb, b, conditions, f_load)
        if cost_b < cost_a:
            a, b, cost_a, cost_b, ev_a, ev_b = b, a, cost_b, cost_a, ev_b, ev_a
        # a is the greedy choice; b is explored only if plausible (see `choose`)
        if cost_b > cost_a * self.explore_within:
            return self._certain(a)
        q = self.epsilon / 2.0
        if self.uncertainty > 0.0 and cost_a > 0.0:
            sigma = self.uncertainty * math.sqrt(1.0 / (1.0 + ev_a) + 1.0 / (1.0 + ev_b))
            q = max(q, 0.5 * math.erfc(math.log(cost_b / cost_a) / (sigma * _SQRT2)))
            q = min(q, 1.0 - self.epsilon / 2.0)
        if self._rng.random() < q:
            return RouteChoice(action=b, propensity=q)
        return RouteChoice(action=a, propensity=1.0 - q)

    def _certain(self, action: str) -> RouteChoice:
        # the same immutable answer each time: a greedy decision allocates nothing
        choice = self._certain_choices.get(action)
        if choice is None:
            choice = self._certain_choices[action] = RouteChoice(action=action, propensity=1.0)
        return choice


def _load_term(conditions: Conditions) -> float:
    return math.log1p(max(conditions.runs_in_flight, 0))


def load_router(
    models_dir: str | None = None, *, freeze_gc: bool = True, **options: float
) -> LearnedRouter | None:
    """The learned router over the latest stored models, or None before the first training: what
    an embedder passes as `Engine(..., router=load_router())`. `freeze_gc`: see `LearnedRouter`."""
    from optimizer.store import ModelStore

    models = ModelStore(models_dir).latest()
    if models is None:
        return None
    return LearnedRouter(models, freeze_gc=freeze_gc, **options)  # type: ignore[arg-type]
