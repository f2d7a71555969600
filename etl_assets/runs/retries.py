"""When to retry a failed job, and after how long: exponential backoff with jitter.

Delay before retry n (1 = the first retry) is `base * multiplier ** (n - 1)`, capped at
`cap`, spread by +/- `jitter` (a fraction) so that jobs failing together do not retry
together, and never shorter than a server's Retry-After.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from etl_assets.config import Settings


@dataclass(frozen=True)
class Backoff:
    """The retry delay schedule."""

    base_seconds: float = 30.0
    multiplier: float = 2.0
    cap_seconds: float = 3600.0
    jitter: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        """The schedule configured by BACKOFF_* settings."""
        return cls(
            settings.backoff_base_seconds,
            settings.backoff_multiplier,
            settings.backoff_max_seconds,
            settings.backoff_jitter,
        )

    def nominal(self, retry: int) -> float:
        """The delay before retry number `retry` (>= 1), before jitter."""
        exponent = max(retry - 1, 0)
        try:
            raw = self.base_seconds * self.multiplier**exponent
        except OverflowError:
            raw = self.cap_seconds
        return min(raw, self.cap_seconds)

    def delay(
        self,
        retry: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """The delay to wait before retry number `retry`, jittered, honouring Retry-After."""
        nominal = self.nominal(retry)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        jittered = min(max(nominal * (1 + spread), 0.0), self.cap_seconds)
        return max(jittered, retry_after or 0.0)
