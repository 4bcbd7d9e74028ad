"""When a failed forward is tried again: immediately, then after 5 s, 30 s, 2 min, 10 min,
30 min, 1 h, then hourly until 7 days after the delivery arrived (Meta's own WhatsApp retry
horizon, docs/spec/meta-platform.md §7); after that it is a dead letter, kept 7 more days for
replay (``/admin/api/deliveries``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy", "DEFAULT_POLICY", "DAY"]

DAY = 86400.0


@dataclass(frozen=True)
class RetryPolicy:
    delays: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
    then_every: float = 3600.0
    horizon: float = 7 * DAY

    def next_attempt(self, attempts: int, received_at: float, now: float) -> float | None:
        """When to try again after ``attempts`` failed tries (epoch seconds), or ``None``:
        give up, it is a dead letter."""
        delay = self.delays[attempts - 1] if 0 < attempts <= len(self.delays) else self.then_every
        due = now + delay
        return None if due > received_at + self.horizon else due


DEFAULT_POLICY = RetryPolicy()
