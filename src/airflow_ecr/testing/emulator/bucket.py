"""ECR's request rate limit as the emulator applies it: a token bucket per caller account and region.

ECR limits ``GetAuthorizationToken`` per account and region with a token bucket: a burst of 200
calls, refilled at 20 calls per second (the ECR User Guide, "Troubleshooting": API throttling);
a call that finds the bucket empty is answered HTTP 400 ``ThrottlingException``. The emulator
does the same, by default with ECR's numbers, and the numbers can be changed at run time (its
``config``); 0 as the capacity turns the limit off.
"""

from __future__ import annotations

from dataclasses import dataclass

# ECR's documented GetAuthorizationToken limit: the bucket's size and its refill per second.
ECR_BUCKET_CAPACITY = 200
ECR_BUCKET_REFILL = 20.0


@dataclass
class TokenBucket:
    """
    One rate limit: ``capacity`` calls at once, ``refill`` more per second. Pure: the caller gives
    the time (a monotonic clock), so tests can drive it.

    :param capacity: the most calls the bucket holds (its burst).
    :param refill: calls added per second, up to ``capacity``.
    :param tokens: calls available at ``updated``.
    :param updated: when ``tokens`` was counted (monotonic seconds).
    """

    capacity: int
    refill: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, capacity: int, refill: float, now: float) -> TokenBucket:
        """A bucket holding ``capacity`` calls at ``now``."""
        return cls(capacity, refill, float(capacity), now)

    def level(self, now: float) -> float:
        """Calls available at ``now`` (refilled since the last count)."""
        if now > self.updated:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.updated) * self.refill)
            self.updated = now
        return self.tokens

    def take(self, now: float) -> bool:
        """Spend one call if one is available at ``now``; whether it was (else: throttled)."""
        if self.level(now) >= 1:
            self.tokens -= 1
            return True
        return False

    def set_level(self, level: float, now: float) -> None:
        """Make ``level`` calls available at ``now`` (at most ``capacity``), e.g. 0: another client drained it."""
        self.tokens = max(0.0, min(float(self.capacity), float(level)))
        self.updated = now
