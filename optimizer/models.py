"""Per-action models of duration and failure as functions of the conditions.

Per action (an alternative is just another action): duration quantiles (gradient-boosted quantile
regression, for timeouts and run-duration predictions), a mean log-latency model and a logistic
failure model on all the features, and the same two fitted on the time of day and load alone for
the router (`route_*`; it folds the recent window's evidence in itself), evaluated as plain floats
so a decision stays well under a millisecond. The router's two are refitted with each attempt
weighed by the outage filter's probability that the service was in its normal state then
(`optimizer.outage`): an outage is the router's filter's to catch live, not a time-of-day effect.

Training is on demand (`train`) or incremental (`update`): each action keeps a bounded sample of
its recent feature rows, so an update refits only the actions that saw new attempts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.features import (
    DEFAULT_WINDOW_S,
    N_FEATURES,
    ROUTE_FEATURES,
    Prior,
    action_priors,
    replay_features,
)
from optimizer.outage import normal_share
from optimizer.records import AttemptRecord

QUANTILES = (0.5, 0.9, 0.99)
MAX_ROWS_PER_ACTION = 20_000
# below this many successes a boosted quantile model overfits; the log-linear one is better
MIN_ROWS_FOR_BOOSTING = 200
# boosted quantile fits cost ~10 ms per iteration whatever the rows; a few thousand recent rows
# estimate even the 99th percentile well enough
MAX_ROWS_FOR_BOOSTING = 4_000


@dataclass
class ActionModel:
    """What the optimizer knows about one action."""

    action: str
    n_attempts: int
    n_failures: int
    failure_rate: float
    empirical_quantiles: dict[float, float]
    mean_duration: float
    # the router's fast path: p_fail = sigmoid(x·fail_coef + fail_bias),
    # E[duration] = expm1(x·lat_coef + lat_bias) · lat_smear
    fail_coef: np.ndarray
    fail_bias: float
    lat_coef: np.ndarray
    lat_bias: float
    lat_smear: float
    """Duan's smearing factor: the mean of exp(residual), so expm1 of a log-scale prediction is a mean."""
    lat_resid_q: dict[float, float] = field(default_factory=dict)
    """Quantiles of the log-scale residuals: with the log-linear model, conditional duration quantiles."""
    quantile_models: dict[float, object] = field(default_factory=dict)
    route_fail_coef: np.ndarray | None = None
    route_fail_bias: float = 0.0
    route_lat_coef: np.ndarray | None = None
    route_lat_bias: float = 0.0
    route_lat_smear: float = 1.0
    """The router's failure and log-latency models: the same fits on the time of day and the runs in
    flight alone (the first `ROUTE_FEATURES` features; zeros for the recent-window ones). The router
    reads its models without the window's stats and folds the window's evidence in on its own; a
    fit that also sees those stats hands them part of the time of day's effect (a daily peak shows
    in the window too), which a prediction with the stats at their means then misses: the peak
    came out flattened. None: models trained before these existed (the router falls back)."""
    rows_x: np.ndarray = field(default_factory=lambda: np.empty((0, N_FEATURES)))
    rows_duration: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows_ok: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    rows_started: np.ndarray = field(default_factory=lambda: np.empty(0))
    """When each kept row's attempt started (empty: models trained before this was kept)."""

    def failure_probability(self, x: np.ndarray) -> float:
        z = float(x @ self.fail_coef) + self.fail_bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def expected_duration(self, x: np.ndarray) -> float:
        return max(0.0, math.expm1(float(x @ self.lat_coef) + self.lat_bias) * self.lat_smear)

    def duration_quantile(self, q: float, x: np.ndarray | None = None) -> float:
        """The q-quantile of a successful attempt's duration, under conditions `x` when given."""
        if x is not None:
            model = self.quantile_models.get(q)
            if model is not None:
                return max(0.0, float(model.predict(x.reshape(1, -1))[0]))  # type: ignore[attr-defined]
            if q in self.lat_resid_q:
                return max(0.0, math.expm1(float(x @ self.lat_coef) + self.lat_bias + self.lat_resid_q[q]))
        if q in self.empirical_quantiles:
            return self.empirical_quantiles[q]
        ok = self.rows_duration[self.rows_ok]
        return float(np.quantile(ok, q)) if ok.size else self.mean_duration


@dataclass
class ModelSet:
    """All action models of one training, with what is needed to continue training later."""

    version: int
    trained_at: float
    n_attempts: int
    actions: dict[str, ActionModel]
    priors: dict[str, Prior]
    window_s: float
    recent: list[AttemptRecord]
    """Attempts within one window of the last start: `update` replays new ones after these."""
    last_started_at: float
    train_seconds: float = 0.0

    def get(self, action: str) -> ActionModel | None:
        return self.actions.get(action)


def _fit_failure(x: np.ndarray, ok: np.ndarray,
                 weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Logistic failure model: (coefficients, intercept)."""
    from sklearn.linear_model import LogisticRegression

    n, n_fail = len(ok), int((~ok).sum())
    if 0 < n_fail < n:
        clf = LogisticRegression(C=1.0, max_iter=300).fit(x, (~ok).astype(int), sample_weight=weight)
        return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    # all succeeded or all failed: a constant, kept off 0 and 1 so the router can still compare
    fail_rate = (n_fail + 0.5) / (n + 1.0)
    return np.zeros(x.shape[1]), math.log(fail_rate / (1.0 - fail_rate))


def _fit_latency(x: np.ndarray, ok_d: np.ndarray,
                 weight: np.ndarray | None = None) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Mean log-latency model of successful attempts: (coefficients, intercept, smearing factor,
    residuals)."""
    from sklearn.linear_model import Ridge

    if ok_d.size >= 2:
        y = np.log1p(ok_d)
        reg = Ridge(alpha=1.0).fit(x, y, sample_weight=weight)
        resid = y - reg.predict(x)
        return reg.coef_.astype(np.float64), float(reg.intercept_), float(np.mean(np.exp(resid))), resid
    bias = float(np.log1p(ok_d.mean())) if ok_d.size else 0.0
    return np.zeros(x.shape[1]), bias, 1.0, np.empty(0)


def _padded(coef: np.ndarray) -> np.ndarray:
    """Coefficients of the leading `ROUTE_FEATURES` features as a full-length vector (zeros after)."""
    out = np.zeros(N_FEATURES)
    out[: len(coef)] = coef
    return out


def _outage_weights(xr: np.ndarray, ok: np.ndarray, started: np.ndarray | None, coef: np.ndarray,
                    bias: float) -> np.ndarray | None:
    """Per attempt, the outage filter's probability that the service was in its normal state then
    (`optimizer.outage.normal_share`, the normal state failing at the first fit's rate), or None when
    no attempt looks like an outage's (or the start times are not known). The router's models
    are refitted with these weights: an outage is the filter's to catch, live; left in the fit, a
    two-hour outage at ten o'clock became a time-of-day effect, a failure rate at ten every day."""
    if started is None or len(started) != len(ok) or ok.all():
        return None
    p = 1.0 / (1.0 + np.exp(-np.clip(bias + xr @ coef, -50.0, 50.0)))
    weight = np.asarray(normal_share(started.tolist(), (~ok).tolist(), p.tolist()))
    return weight if weight.min() < 0.5 else None


def _fit_action(action: str, x: np.ndarray, duration: np.ndarray, ok: np.ndarray, *,
                boosted: bool = False, started: np.ndarray | None = None) -> ActionModel:
    from sklearn.ensemble import HistGradientBoostingRegressor

    n = len(ok)
    n_fail = int((~ok).sum())
    ok_d = duration[ok]
    fail_rate = (n_fail + 0.5) / (n + 1.0)
    fail_coef, fail_bias = _fit_failure(x, ok)
    lat_coef, lat_bias, lat_smear, resid = _fit_latency(x[ok], ok_d)
    resid_q = {q: float(np.quantile(resid, q)) for q in QUANTILES} if resid.size else {}
    # the router's: time of day and load alone, and the service's usual behaviour rather than its
    # outages' (`_outage_weights`)
    xr = x[:, :ROUTE_FEATURES]
    route_fail_coef, route_fail_bias = _fit_failure(xr, ok)
    weight = _outage_weights(xr, ok, started, route_fail_coef, route_fail_bias)
    if weight is not None:
        route_fail_coef, route_fail_bias = _fit_failure(xr, ok, weight)
    route_lat_coef, route_lat_bias, route_lat_smear, _ = _fit_latency(
        xr[ok], ok_d, None if weight is None else weight[ok])
    quantile_models: dict[float, object] = {}
    if boosted and ok_d.size >= MIN_ROWS_FOR_BOOSTING:
        xb, yb = x[ok][-MAX_ROWS_FOR_BOOSTING:], ok_d[-MAX_ROWS_FOR_BOOSTING:]
        for q in QUANTILES:
            quantile_models[q] = HistGradientBoostingRegressor(
                loss="quantile", quantile=q, max_iter=40, max_leaf_nodes=15, learning_rate=0.2,
                early_stopping=False,
            ).fit(xb, yb)
    return ActionModel(
        action=action,
        n_attempts=n,
        n_failures=n_fail,
        failure_rate=fail_rate,
        empirical_quantiles={q: float(np.quantile(ok_d, q)) for q in QUANTILES} if ok_d.size else {},
        mean_duration=float(ok_d.mean()) if ok_d.size else 0.0,
        fail_coef=fail_coef,
        fail_bias=fail_bias,
        lat_coef=lat_coef,
        lat_bias=lat_bias,
        lat_smear=lat_smear,
        lat_resid_q=resid_q,
        quantile_models=quantile_models,
        route_fail_coef=_padded(route_fail_coef),
        route_fail_bias=route_fail_bias,
        route_lat_coef=_padded(route_lat_coef),
        route_lat_bias=route_lat_bias,
        route_lat_smear=route_lat_smear,
        rows_x=x,
        rows_duration=duration,
        rows_ok=ok,
        rows_started=np.empty(0) if started is None else started,
    )


def _tail(records: Sequence[AttemptRecord], window_s: float) -> list[AttemptRecord]:
    last = max((r.started_at for r in records), default=0.0)
    return [r for r in records if r.started_at >= last - window_s]


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _by_action(records: Sequence[AttemptRecord], x: np.ndarray) -> dict[str, _Rows]:
    index: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        index.setdefault(rec.action, []).append(i)
    out = {}
    for action, idx in index.items():
        arr = np.asarray(idx)
        out[action] = (
            x[arr],
            np.array([records[i].duration for i in idx]),
            np.array([records[i].ok for i in idx], dtype=bool),
            np.array([records[i].started_at for i in idx], dtype=np.float64),
        )
    return out


def train(
    records: Sequence[AttemptRecord], *, version: int = 1, window_s: float = DEFAULT_WINDOW_S,
    boosted: bool = False,
) -> ModelSet:
    """Fit every action's models from scratch.

    `boosted` adds gradient-boosted quantile regressors (non-linear in the conditions, ~0.3 s per
    quantile per action); without it duration quantiles come from the log-linear model and its
    residuals, which trains in milliseconds.
    """
    t0 = time.perf_counter()
    priors = action_priors(records)
    x = replay_features(records, priors, window_s)
    actions = {}
    from threadpoolctl import threadpool_limits

    # one thread: on these small inputs BLAS/OpenMP start-up costs far more than it saves
    with threadpool_limits(1):
        for action, (ax, ad, aok, ast) in _by_action(records, x).items():
            keep = slice(-MAX_ROWS_PER_ACTION, None)
            model = _fit_action(action, ax[keep], ad[keep], aok[keep], boosted=boosted, started=ast[keep])
            model.n_attempts, model.n_failures = len(aok), int((~aok).sum())
            actions[action] = model
    return ModelSet(
        version=version,
        trained_at=time.time(),
        n_attempts=len(records),
        actions=actions,
        priors=priors,
        window_s=window_s,
        recent=_tail(records, window_s),
        last_started_at=max((r.started_at for r in records), default=0.0),
        train_seconds=time.perf_counter() - t0,
    )


def update(previous: ModelSet, records: Sequence[AttemptRecord], *, boosted: bool = False) -> ModelSet:
    """Continue training with attempts that started after the previous training's last one.

    Only actions with new attempts are refitted, on their kept rows plus the new ones.
    """
    t0 = time.perf_counter()
    fresh = [r for r in records if r.started_at > previous.last_started_at]
    priors = dict(previous.priors)
    for action, prior in action_priors(fresh).items():
        priors.setdefault(action, prior)
    context = previous.recent
    x = replay_features([*context, *fresh], priors, previous.window_s)[len(context):]
    actions = dict(previous.actions)
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)
    for action, (ax, ad, aok, ast) in _by_action(fresh, x).items():
        old = previous.actions.get(action)
        new_n, new_fail = len(aok), int((~aok).sum())
        started: np.ndarray | None = ast
        if old is not None:
            old_started = getattr(old, "rows_started", np.empty(0))
            # start times of the kept rows: unknown for models trained before they were kept
            started = (np.concatenate([old_started, ast])[-MAX_ROWS_PER_ACTION:]
                       if len(old_started) == len(old.rows_ok) else None)
            ax = np.vstack([old.rows_x, ax])[-MAX_ROWS_PER_ACTION:]
            ad = np.concatenate([old.rows_duration, ad])[-MAX_ROWS_PER_ACTION:]
            aok = np.concatenate([old.rows_ok, aok])[-MAX_ROWS_PER_ACTION:]
        model = _fit_action(action, ax, ad, aok, boosted=boosted, started=started)
        model.n_attempts = (old.n_attempts if old else 0) + new_n
        model.n_failures = (old.n_failures if old else 0) + new_fail
        actions[action] = model
    limits.restore_original_limits()
    return ModelSet(
        version=previous.version + 1,
        trained_at=time.time(),
        n_attempts=previous.n_attempts + len(fresh),
        actions=actions,
        priors=priors,
        window_s=previous.window_s,
        recent=_tail([*previous.recent, *fresh], previous.window_s),
        last_started_at=max([previous.last_started_at, *(r.started_at for r in fresh)]),
        train_seconds=time.perf_counter() - t0,
    )
