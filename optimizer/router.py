"""The learned routing policy: which of a step's candidate actions to call, under current conditions.

A contextual bandit. For each candidate it predicts, from the trained per-action models and the
conditions the runtime hands over (time of day, runs in flight, each action's recent error rate
and latency), the attempt's expected duration and failure probability, and scores

    cost = E[duration] / (1 − P(failure)) + failure_penalty_s × P(failure)

in seconds: the expected time until a successful attempt if failures are retried, plus a charge
for the failures themselves (a step without retries fails its run).

The model's failure probability is a prior worth `prior_calls` observations; the recent window's
own error rate is evidence on top of it, so an outage the models never saw still moves traffic
within a few failed calls. Once traffic has moved, the window of the avoided action
empties; the router then remembers the last evidence it saw, fading with `memory_half_life_s`,
so it does not return to a failing service the moment its window is empty (exploration probes
it meanwhile, and fresh calls replace the memory).

It calls the cheapest with probability 1 − ε + ε/m and each other plausible candidate (predicted
cost within `explore_within` times the best; m of them, the cheapest included) with ε/m, and
returns that probability as the propensity the journal records, so outcomes can later be
reweighed off-policy. Evaluation is plain numpy on the model coefficients: a decision takes
microseconds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.features import Recent, feature_vector
from optimizer.models import ModelSet
from runtime.routing import Conditions, RouteChoice
from workflow.document import Step

DEFAULT_EPSILON = 0.05
DEFAULT_FAILURE_PENALTY_S = 10.0
DEFAULT_PRIOR_CALLS = 10.0
DEFAULT_MEMORY_HALF_LIFE_S = 1800.0
DEFAULT_EXPLORE_WITHIN = 2.0


@dataclass(frozen=True)
class Score:
    action: str
    expected_duration_s: float
    failure_probability: float
    cost: float


def route_cost(expected_duration_s: float, failure_probability: float,
               failure_penalty_s: float = DEFAULT_FAILURE_PENALTY_S) -> float:
    """What the router minimizes (and the benchmark's oracle too), in seconds."""
    p = min(max(failure_probability, 0.0), 0.999)
    return expected_duration_s / (1.0 - p) + failure_penalty_s * p


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
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be within 0..1, got {epsilon}")
        self.models = models
        self.epsilon = epsilon
        self.failure_penalty_s = failure_penalty_s
        self.prior_calls = prior_calls
        self.memory_half_life_s = memory_half_life_s
        self.explore_within = explore_within
        self._memory: dict[str, tuple[float, float, float]] = {}  # action → (time, calls, error rate)
        self._rng = random.Random(seed)

    def replace_models(self, models: ModelSet) -> None:
        """Swap in a newer training without restarting the engine."""
        self.models = models

    def score(self, action: str, conditions: Conditions) -> Score | None:
        model = self.models.actions.get(action)
        if model is None:
            return None
        stats = conditions.recent.get(action)
        recent = Recent() if stats is None else Recent(stats.calls, stats.error_rate, stats.mean_latency_s)
        prior = self.models.priors.get(action, (model.failure_rate, model.mean_duration))
        x = feature_vector(conditions.now, conditions.runs_in_flight, recent, prior)
        p = model.failure_probability(x)
        calls, err = float(recent.calls), recent.error_rate
        if calls > 0:
            self._memory[action] = (conditions.now, calls, err)
        elif self.memory_half_life_s > 0 and (seen := self._memory.get(action)) is not None:
            at, seen_calls, err = seen
            calls = seen_calls * 0.5 ** (max(0.0, conditions.now - at) / self.memory_half_life_s)
        if calls > 0:
            p = (p * self.prior_calls + err * calls) / (self.prior_calls + calls)
        d = model.expected_duration(x)
        return Score(action, d, p, route_cost(d, p, self.failure_penalty_s))

    def choose(self, step: Step, candidates: Sequence[str], conditions: Conditions) -> RouteChoice:
        options = list(dict.fromkeys(candidates)) or [step.action]
        k = len(options)
        if k == 1:
            return RouteChoice(action=options[0], propensity=1.0)
        scores = [self.score(a, conditions) for a in options]
        known = [s for s in scores if s is not None]
        # an action never seen yet gets the best known cost: exploration and ties decide for it
        best_known = min((s.cost for s in known), default=0.0)
        costs = [s.cost if s is not None else best_known for s in scores]
        greedy = min(range(k), key=lambda i: (costs[i], i))
        # explore only among plausible options: probing a service predicted to cost many times the
        # best (one in an outage) teaches little and costs a lot
        limit = costs[greedy] * self.explore_within
        eligible = [i for i in range(k) if costs[i] <= limit]
        m = len(eligible)
        if m == 1:
            return RouteChoice(action=options[greedy], propensity=1.0)
        pick = eligible[self._rng.randrange(m)] if self._rng.random() < self.epsilon else greedy
        share = self.epsilon / m
        propensity = (1.0 - self.epsilon + share) if pick == greedy else share
        return RouteChoice(action=options[pick], propensity=propensity)


def load_router(models_dir: str | None = None, **options: float) -> LearnedRouter | None:
    """The learned router over the latest stored models, or None before the first training: what
    an embedder passes as `Engine(..., router=load_router())`."""
    from optimizer.store import ModelStore

    models = ModelStore(models_dir).latest()
    if models is None:
        return None
    return LearnedRouter(models, **options)  # type: ignore[arg-type]
