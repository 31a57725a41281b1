"""Conditions as numbers: the feature vector the models learn from and the router predicts with.

At dispatch the runtime hands the router `Conditions`: the clock, the runs in flight and, per
candidate action, its calls, error rate and mean latency over the journal's recent window
(`Journal.action_stats`: finished attempts started within the window). Training replays history
in clock order and computes the same window statistics for every attempt as of its start, so a
model never sees a feature it was not trained on.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.records import AttemptRecord

# the engine's default `stats_window_s`; train with the window the engine uses
DEFAULT_WINDOW_S = 3600.0
FEATURE_NAMES = (
    "hour_sin", "hour_cos", "hour2_sin", "hour2_cos", "log_load", "recent_error_rate", "recent_log_latency",
    "log_recent_calls",
)
N_FEATURES = len(FEATURE_NAMES)

Prior = tuple[float, float]
"""(error rate, mean latency in seconds) of an action over all its history."""


@dataclass(frozen=True, slots=True)
class Recent:
    """An action's stats over the recent window, as the runtime's `ActionStats` carries them."""

    calls: int = 0
    error_rate: float = 0.0
    mean_latency_s: float | None = None


def hour_of_day(at: float) -> float:
    return (at % 86_400.0) / 3600.0


def feature_vector(at: float, load: float, recent: Recent, prior: Prior) -> np.ndarray:
    """One attempt's features. The window stats are shrunk towards the action's prior by one
    pseudo-call, so a single failure in a quiet window does not read as a 100% error rate."""
    h = 2.0 * math.pi * hour_of_day(at) / 24.0
    n = max(0, recent.calls)
    err = (recent.error_rate * n + prior[0]) / (n + 1.0)
    mean = recent.mean_latency_s if recent.mean_latency_s is not None else prior[1]
    lat = (mean * n + prior[1]) / (n + 1.0)
    return np.array(
        [math.sin(h), math.cos(h), math.sin(2 * h), math.cos(2 * h), math.log1p(max(load, 0.0)), err,
         math.log1p(max(lat, 0.0)), math.log1p(n)],
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
    items: deque[tuple[float, float, bool]] = field(default_factory=deque)  # (started_at, duration, ok)
    calls: int = 0
    errors: int = 0
    total: float = 0.0


@dataclass
class WindowStats:
    """Per action: finished attempts that started within the last `window_s` seconds."""

    window_s: float = DEFAULT_WINDOW_S
    _windows: dict[str, _Window] = field(default_factory=dict)

    def add(self, rec: AttemptRecord) -> None:
        w = self._windows.setdefault(rec.action, _Window())
        w.items.append((rec.started_at, rec.duration, rec.ok))
        w.calls += 1
        w.errors += 0 if rec.ok else 1
        w.total += rec.duration

    def query(self, action: str, now: float) -> Recent:
        w = self._windows.get(action)
        if w is None:
            return Recent()
        # attempts finish roughly in start order, so evicting from the left is close to exact
        while w.items and w.items[0][0] < now - self.window_s:
            _, duration, ok = w.items.popleft()
            w.calls -= 1
            w.errors -= 0 if ok else 1
            w.total -= duration
        if w.calls <= 0:
            return Recent()
        return Recent(w.calls, w.errors / w.calls, w.total / w.calls)


def replay_features(records: Sequence[AttemptRecord], stats: WindowStats,
                    priors: dict[str, Prior]) -> np.ndarray:
    """Features of each record as the router would have seen them when the attempt started.

    Replays history in clock order, continuing `stats`: an attempt's own outcome, and those of
    attempts still running when it started, are not visible to it. Afterwards `stats` has seen
    every record.
    """
    order = sorted(range(len(records)), key=lambda i: records[i].started_at)
    pending: list[tuple[float, int]] = []  # (ended_at, index) of attempts not yet finished
    out = np.empty((len(records), N_FEATURES), dtype=np.float64)
    default = (0.05, 1.0)
    for i in order:
        rec = records[i]
        while pending and pending[0][0] <= rec.started_at:
            stats.add(records[heapq.heappop(pending)[1]])
        recent = stats.query(rec.action, rec.started_at)
        out[i] = feature_vector(rec.started_at, rec.load, recent, priors.get(rec.action, default))
        heapq.heappush(pending, (rec.ended_at, i))
    for _, j in sorted(pending):
        stats.add(records[j])
    return out
