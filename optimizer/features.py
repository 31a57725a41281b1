"""Conditions as numbers: the feature vector the models learn from and the router predicts with.

At dispatch the runtime hands the router `Conditions`: the clock, the runs in flight and, per
candidate action, its calls, error rate and mean latency over the journal's recent window
(`Journal.action_stats`: finished attempts started within the window, and the same weighted by
age). Training replays history in clock order and computes the same window statistics for every
attempt as of its start, so a model never sees a feature it was not trained on.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.records import AttemptRecord
from runtime.journal_stats import latest_stats
from runtime.routing import LATEST_MAX_ATTEMPTS

# the engine's default `stats_window_s`; train with the window the engine uses
DEFAULT_WINDOW_S = 3600.0
# time of day as bumps every three hours (circular): a linear model over them follows daily peaks of
# any shape, and an hour never seen in training reads as "average" rather than as an extrapolation
HOUR_CENTERS = tuple(float(h) for h in range(0, 24, 3))
HOUR_WIDTH = 1.5
FEATURE_NAMES = (
    *(f"hour_{int(h):02d}" for h in HOUR_CENTERS), "log_load", "recent_error_rate", "recent_log_latency",
    "log_recent_calls",
)
N_FEATURES = len(FEATURE_NAMES)
ROUTE_FEATURES = len(HOUR_CENTERS) + 1
"""The leading features that do not depend on the routing policy (time of day, load): the router's
models are fitted on these alone, the recent-window columns after them held at zero."""

Prior = tuple[float, float]
"""(error rate, mean latency in seconds) of an action over all its history."""


@dataclass(frozen=True, slots=True)
class Recent:
    """An action's stats over the recent window, as the runtime's `ActionStats` carries them."""

    calls: int = 0
    error_rate: float = 0.0
    mean_latency_s: float | None = None
    latest_calls: float = 0.0
    latest_error_rate: float = 0.0
    latest_mean_latency_s: float | None = None
    latest_started_at: float | None = None
    newest_started_at: tuple[float, ...] = ()
    newest_failed: tuple[bool, ...] = ()


def hour_of_day(at: float) -> float:
    return (at % 86_400.0) / 3600.0


def feature_vector(at: float, load: float, recent: Recent, prior: Prior) -> np.ndarray:
    """One attempt's features. The window stats are shrunk towards the action's prior by one
    pseudo-call, so a single failure in a quiet window does not read as a 100% error rate."""
    hour = hour_of_day(at)
    n = max(0, recent.calls)
    err = (recent.error_rate * n + prior[0]) / (n + 1.0)
    mean = recent.mean_latency_s if recent.mean_latency_s is not None else prior[1]
    lat = (mean * n + prior[1]) / (n + 1.0)
    bumps = []
    for c in HOUR_CENTERS:
        d = abs(hour - c)
        d = min(d, 24.0 - d)
        bumps.append(math.exp(-0.5 * (d / HOUR_WIDTH) ** 2))
    return np.array(
        [*bumps, math.log1p(max(load, 0.0)), err, math.log1p(max(lat, 0.0)), math.log1p(n)],
        dtype=np.float64,
    )


def action_priors(records: Sequence[AttemptRecord]) -> dict[str, Prior]:
    """Per action, the overall error rate and mean attempt duration."""
    sums: dict[str, list[float]] = {}
    for rec in records:
        c = sums.setdefault(rec.action, [0.0, 0.0, 0.0])  # calls, errors, total duration
        c[0] += 1
        c[1] += 0.0 if rec.ok else 1.0
        c[2] += rec.duration
    return {a: (c[1] / c[0], c[2] / c[0]) for a, c in sums.items()}


@dataclass(slots=True)
class _Window:
    items: list[tuple[float, float, bool]] = field(default_factory=list)
    """(started_at, duration, ok), in start order."""
    calls: int = 0
    errors: int = 0
    total: float = 0.0


@dataclass
class WindowStats:
    """Per action: finished attempts that started within the last `window_s` seconds, as
    `runtime.journal_stats.action_stats` reports them (for replays and simulations of the engine)."""

    window_s: float = DEFAULT_WINDOW_S
    _windows: dict[str, _Window] = field(default_factory=dict)

    def add(self, rec: AttemptRecord) -> None:
        w = self._windows.setdefault(rec.action, _Window())
        # attempts finish out of start order now and then; kept in start order, the window's oldest
        # are at the front and its newest at the back
        bisect.insort_right(w.items, (rec.started_at, rec.duration, rec.ok), key=_started)
        w.calls += 1
        w.errors += 0 if rec.ok else 1
        w.total += rec.duration

    def query(self, action: str, now: float) -> Recent:
        w = self._windows.get(action)
        if w is None:
            return Recent()
        gone = bisect.bisect_left(w.items, now - self.window_s, key=_started)
        if gone:
            for _, duration, ok in w.items[:gone]:
                w.calls -= 1
                w.errors -= 0 if ok else 1
                w.total -= duration
            del w.items[:gone]
        if w.calls <= 0:
            return Recent()
        newest = w.items[: -LATEST_MAX_ATTEMPTS - 1: -1]
        latest = latest_stats([(started, not ok, duration) for started, duration, ok in newest])
        return Recent(w.calls, w.errors / w.calls, w.total / w.calls, *latest)


def _started(item: tuple[float, float, bool]) -> float:
    return item[0]


def feature_matrix(
    at: np.ndarray, load: np.ndarray, calls: np.ndarray, error_rate: np.ndarray, mean_latency: np.ndarray,
    prior_error: np.ndarray, prior_latency: np.ndarray,
) -> np.ndarray:
    """`feature_vector` for many rows at once (NaN mean latency = nothing recent)."""
    hour = (at % 86_400.0) / 3600.0
    n = np.maximum(calls, 0)
    err = (error_rate * n + prior_error) / (n + 1.0)
    mean = np.where(np.isnan(mean_latency), prior_latency, mean_latency)
    lat = (mean * n + prior_latency) / (n + 1.0)
    bumps = []
    for c in HOUR_CENTERS:
        d = np.abs(hour - c)
        d = np.minimum(d, 24.0 - d)
        bumps.append(np.exp(-0.5 * (d / HOUR_WIDTH) ** 2))
    return np.column_stack([
        *bumps, np.log1p(np.maximum(load, 0.0)), err, np.log1p(np.maximum(lat, 0.0)), np.log1p(n),
    ])


def replay_features(records: Sequence[AttemptRecord], priors: dict[str, Prior],
                    window_s: float = DEFAULT_WINDOW_S) -> np.ndarray:
    """Features of each record as the router would have seen them when the attempt started.

    Per action, the window stats at time t count finished attempts (ended ≤ t) that started at or
    after t − window: with both start and end times sorted that is a difference of two cumulative
    sums, exact whenever no attempt lasts longer than the window. An attempt's own outcome, and
    those of attempts still running when it started, are not visible to it.
    """
    n = len(records)
    at = np.array([r.started_at for r in records], dtype=np.float64)
    end = np.array([r.ended_at for r in records], dtype=np.float64)
    failed = np.array([not r.ok for r in records], dtype=np.float64)
    dur = np.maximum(end - at, 0.0)
    actions = np.array([r.action for r in records], dtype=object)
    calls = np.zeros(n)
    errors = np.zeros(n)
    latency = np.full(n, np.nan)
    pe = np.zeros(n)
    pl = np.zeros(n)
    default = (0.05, 1.0)
    for action in set(actions.tolist()):
        idx = np.flatnonzero(actions == action)
        s_order = idx[np.argsort(at[idx], kind="stable")]
        e_order = idx[np.argsort(end[idx], kind="stable")]
        s_sorted, e_sorted = at[s_order], end[e_order]
        cum = {
            "n_e": np.arange(len(idx) + 1, dtype=np.float64),
            "f_e": np.concatenate([[0.0], np.cumsum(failed[e_order])]),
            "d_e": np.concatenate([[0.0], np.cumsum(dur[e_order])]),
            "f_s": np.concatenate([[0.0], np.cumsum(failed[s_order])]),
            "d_s": np.concatenate([[0.0], np.cumsum(dur[s_order])]),
        }
        t = at[idx]
        a = np.searchsorted(e_sorted, t, side="right")
        b = np.searchsorted(s_sorted, t - window_s, side="left")
        c = np.maximum(a - b, 0).astype(np.float64)
        f = np.maximum(cum["f_e"][a] - cum["f_s"][b], 0.0)
        d = np.maximum(cum["d_e"][a] - cum["d_s"][b], 0.0)
        calls[idx] = c
        with np.errstate(invalid="ignore", divide="ignore"):
            errors[idx] = np.where(c > 0, f / np.maximum(c, 1.0), 0.0)
            latency[idx] = np.where(c > 0, d / np.maximum(c, 1.0), np.nan)
        prior = priors.get(action, default)
        pe[idx], pl[idx] = prior
    load = np.array([r.load for r in records], dtype=np.float64)
    return feature_matrix(at, load, calls, errors, latency, pe, pl).reshape(n, N_FEATURES)
