"""Conditions as numbers: the feature vector the models learn from and the router predicts with.

The same code computes features in training (replaying history in clock order) and at dispatch
(from the router's live tracker), so a model never sees a feature it was not trained on.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.records import AttemptRecord

# Recent signals fade with this half-life (clock seconds): long enough to smooth noise, short
# enough that an outage burst shows within minutes.
DEFAULT_HALF_LIFE_S = 600.0
FEATURE_NAMES = (
    "hour_sin", "hour_cos", "hour2_sin", "hour2_cos", "load", "recent_error_rate", "recent_log_latency",
    "recent_weight",
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass(slots=True)
class _Decayed:
    weight: float = 0.0
    errors: float = 0.0
    log_latency: float = 0.0
    at: float = 0.0


@dataclass
class RecentStats:
    """Time-decayed error rate and log-latency per action, updated as attempts end."""

    half_life_s: float = DEFAULT_HALF_LIFE_S
    priors: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per action, (error rate, mean log1p latency) to assume when nothing recent is known."""
    default_prior: tuple[float, float] = (0.05, 0.0)
    _state: dict[str, _Decayed] = field(default_factory=dict)

    def _decay(self, state: _Decayed, now: float) -> None:
        if now > state.at:
            factor = 0.5 ** ((now - state.at) / self.half_life_s)
            state.weight *= factor
            state.errors *= factor
            state.log_latency *= factor
            state.at = now

    def observe(self, action: str, ended_at: float, duration: float, ok: bool) -> None:
        state = self._state.setdefault(action, _Decayed(at=ended_at))
        self._decay(state, ended_at)
        state.weight += 1.0
        state.errors += 0.0 if ok else 1.0
        if ok:  # failures end early or at the timeout; either way they say little about latency
            state.log_latency += math.log1p(max(duration, 0.0))

    def query(self, action: str, now: float) -> tuple[float, float, float]:
        """(error rate, mean log1p latency, weight); shrunk towards the priors when little is known."""
        prior_err, prior_lat = self.priors.get(action, self.default_prior)
        state = self._state.get(action)
        if state is None:
            return prior_err, prior_lat, 0.0
        self._decay(state, now)
        # one pseudo-observation at the prior keeps a single failure from reading as a 100% error rate
        w = state.weight
        ok_w = w - state.errors
        err = (state.errors + prior_err) / (w + 1.0)
        lat = (state.log_latency + prior_lat) / (ok_w + 1.0) if ok_w > 0 else prior_lat
        return err, lat, w


def action_priors(records: Sequence[AttemptRecord]) -> dict[str, tuple[float, float]]:
    """Per action, the overall (error rate, mean log1p latency of successes)."""
    counts: dict[str, list[float]] = {}
    for rec in records:
        c = counts.setdefault(rec.action, [0.0, 0.0, 0.0, 0.0])  # n, errors, ok n, sum log latency
        c[0] += 1
        if rec.ok:
            c[2] += 1
            c[3] += math.log1p(rec.duration)
        else:
            c[1] += 1
    return {a: (c[1] / c[0], c[3] / c[2] if c[2] else 0.0) for a, c in counts.items()}


def hour_of_day(at: float) -> float:
    return (at % 86_400.0) / 3600.0


def feature_vector(at: float, load: float, recent: tuple[float, float, float]) -> np.ndarray:
    h = 2.0 * math.pi * hour_of_day(at) / 24.0
    err, lat, w = recent
    return np.array(
        [math.sin(h), math.cos(h), math.sin(2 * h), math.cos(2 * h), math.log1p(max(load, 0.0)), err, lat,
         math.log1p(w)],
        dtype=np.float64,
    )


def replay_features(records: Sequence[AttemptRecord], tracker: RecentStats) -> np.ndarray:
    """Features of each record as the router would have seen them when the attempt started.

    Replays history in clock order, continuing the tracker's state: an attempt's own outcome, and
    those of attempts still running when it started, are not visible to it. Afterwards the tracker
    has seen every record.
    """
    order = sorted(range(len(records)), key=lambda i: records[i].started_at)
    pending: list[tuple[float, int]] = []  # (ended_at, index) of attempts not yet observed
    out = np.empty((len(records), N_FEATURES), dtype=np.float64)
    for i in order:
        rec = records[i]
        while pending and pending[0][0] <= rec.started_at:
            _, j = heapq.heappop(pending)
            done = records[j]
            tracker.observe(done.action, done.ended_at, done.duration, done.ok)
        out[i] = feature_vector(rec.started_at, rec.load, tracker.query(rec.action, rec.started_at))
        heapq.heappush(pending, (rec.ended_at, i))
    for _, j in sorted(pending):
        done = records[j]
        tracker.observe(done.action, done.ended_at, done.duration, done.ok)
    return out
