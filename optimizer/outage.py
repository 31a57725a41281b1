"""The outage filter: a belief about whether a service is in its normal state or degraded.

A hidden Markov filter over an action's attempts one by one: normal (failing at the rate the model
and window say) or degraded, at one of three levels (failing 1/6, 1/2 or 5/6 of the way from that
rate to always; the midpoints of thirds of a uniform belief, an outage's rate not being known up
front). Between two attempts the state is kept with probability exp(−gap / outage_mean_s) and
otherwise drawn afresh from the prior (degraded with probability `change_prior`); each outcome then
reweighs the states by its likelihood in them.

The router runs it live, attempt by attempt as they finish (`optimizer.router`); training runs it
over the history, to tell the attempts an outage made from the service's usual behaviour
(`normal_share`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_CHANGE_PRIOR = 0.02
"""Prior probability that a service is degraded (an outage) rather than as the model and window say."""
DEFAULT_OUTAGE_MEAN_S = 3600.0
"""How long a degraded spell lasts on average: how fast a verdict fades without news."""
LEVELS = (1.0 / 6.0, 0.5, 5.0 / 6.0)
"""Degraded failure rates, as the share of the way from the normal rate to always failing."""

Belief = tuple[float, float, float, float]
"""P(normal), then P(degraded) at each of the `LEVELS`."""


def prior_belief(change_prior: float = DEFAULT_CHANGE_PRIOR) -> Belief:
    d = change_prior / 3.0
    return 1.0 - change_prior, d, d, d


def advance(belief: Belief, gap_s: float, failed: bool, normal_rate: float, *,
            outage_mean_s: float = DEFAULT_OUTAGE_MEAN_S,
            change_prior: float = DEFAULT_CHANGE_PRIOR) -> Belief:
    """The belief after `gap_s` more seconds and one more attempt's outcome, the normal state
    failing at `normal_rate`."""
    b0, b1, b2, b3 = belief
    keep = math.exp(-gap_s / outage_mean_s) if gap_s > 0.0 else 1.0
    prior_d = change_prior / 3.0
    b0 = b0 * keep + (1.0 - change_prior) * (1.0 - keep)
    b1 = b1 * keep + prior_d * (1.0 - keep)
    b2 = b2 * keep + prior_d * (1.0 - keep)
    b3 = b3 * keep + prior_d * (1.0 - keep)
    f0 = min(max(normal_rate, 1e-4), 0.999)
    q = 1.0 - f0
    f1, f2, f3 = f0 + q * LEVELS[0], f0 + q * LEVELS[1], f0 + q * LEVELS[2]
    if failed:
        b0, b1, b2, b3 = b0 * f0, b1 * f1, b2 * f2, b3 * f3
    else:
        b0, b1, b2, b3 = b0 * (1.0 - f0), b1 * (1.0 - f1), b2 * (1.0 - f2), b3 * (1.0 - f3)
    total = b0 + b1 + b2 + b3
    return b0 / total, b1 / total, b2 / total, b3 / total


def normal_share(started_at: Sequence[float], failed: Sequence[bool], normal_rate: Sequence[float], *,
                 outage_mean_s: float = DEFAULT_OUTAGE_MEAN_S,
                 change_prior: float = DEFAULT_CHANGE_PRIOR) -> list[float]:
    """Per attempt (in the order given), the filter's probability that the service was in its normal
    state, having seen that attempt's outcome and every earlier one (by start time). The attempts an
    outage made come out low: weighed by it, a fit learns the service's usual behaviour rather than
    an outage's, which a time-of-day model would otherwise read as a feature of that hour."""
    order = sorted(range(len(started_at)), key=started_at.__getitem__)
    out = [1.0] * len(order)
    belief = prior_belief(change_prior)
    at: float | None = None
    for i in order:
        t = float(started_at[i])
        belief = advance(belief, 0.0 if at is None else t - at, bool(failed[i]), float(normal_rate[i]),
                         outage_mean_s=outage_mean_s, change_prior=change_prior)
        out[i] = belief[0]
        at = t
    return out
