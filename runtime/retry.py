"""Retry arithmetic: the policy's nominal delay, jitter from an injected RNG, and Retry-After."""

from __future__ import annotations

import random

from workflow.document import RetryPolicy

UNDO_RETRY = RetryPolicy(max_attempts=5, initial_interval_s=1.0, backoff=2.0, max_interval_s=60.0, jitter=0.1)
"""Compensations default to patience: an undo that gives up leaves the saga incomplete."""

NO_RETRY = RetryPolicy()


def retry_delay(
    policy: RetryPolicy, attempt: int, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before attempt number `attempt` (2 = the first retry).

    The policy's delay is spread by ±`jitter` of itself; a server's Retry-After wins when longer,
    since retrying earlier than asked only earns another 429/503.
    """
    nominal = policy.delay_before(attempt)
    jittered = nominal * (1.0 + policy.jitter * rng.uniform(-1.0, 1.0)) if policy.jitter else nominal
    return max(0.0, jittered, retry_after or 0.0)
