"""The knobs of `pstreams seed generate`; the same options always give the same bytes."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Literal

Order = Literal["event-time", "shuffled"]
ORDERS: tuple[Order, ...] = ("event-time", "shuffled")


@dataclass(frozen=True)
class SeedOptions:
    """Sizes and shape of a dataset; the defaults produce the shipped `seed/demo`.

    `reference_date` stands in for "now": interactions fall in the year before its UTC
    midnight and changes after it, so the output never depends on the wall clock.
    """

    users: int = 200
    items: int = 50
    interactions: int = 2_000
    reviews: int = 300
    seed: int = 42
    order: Order = "event-time"
    bursts: int = 5
    skew: float = 0.0
    changes: int = 100
    faker: bool = False
    edge_cases: bool = True
    reference_date: date = date(2024, 7, 1)

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < 1:
            raise ValueError("users and items must be at least 1")
        for name in ("interactions", "reviews", "bursts", "changes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.skew < 0:
            raise ValueError("skew must not be negative")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        if self.reviews > self.users * self.items:
            raise ValueError(
                f"{self.reviews} reviews need as many distinct (user, item) pairs; "
                f"{self.users} users x {self.items} items have only {self.users * self.items}"
            )

    @property
    def reference(self) -> int:
        """The reference date's UTC midnight in epoch seconds (aligned to every window)."""
        return calendar.timegm(self.reference_date.timetuple())
