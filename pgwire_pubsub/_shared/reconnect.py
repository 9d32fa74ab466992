"""When and how often to try again after the connection is lost."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff with jitter, bounded by attempts and/or total time.

    The n-th wait is ``min(max_delay, initial_delay * multiplier**(n-1))``,
    shortened by a random fraction up to ``jitter`` so that many listeners
    do not reconnect in step.  ``None`` bounds mean: keep trying.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: Optional[int] = None
    max_duration: Optional[float] = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("reconnect delays cannot be negative")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction from 0 to 1, not {self.jitter}")
        if self.max_duration is not None and self.max_duration < 0:
            raise ValueError(f"max_duration cannot be negative, not {self.max_duration}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")

    def delay(self, attempt: int, rng: Optional[random.Random] = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
        try:
            base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        except OverflowError:  # after a very long outage
            base = self.max_delay
        draw = rng.random() if rng is not None else random.random()
        return base * (1.0 - self.jitter * draw)

    def gives_up(self, attempts: int, elapsed: float) -> bool:
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_duration is not None and elapsed >= self.max_duration
