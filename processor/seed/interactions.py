"""DynamoDB interaction items: random traffic, purchase bursts and the edge cases.

Drawing an interaction (who, when, what) is separate from rendering it to DynamoDB JSON
(session, device, URLs), because sessions are assigned in event-time order while the
stream itself may be shuffled.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import Any

from processor.seed.options import SeedOptions
from processor.seed.tables import YEAR

WINDOW = 1800  # the 30-minute tumbling window of purchase_windowed_counts
SESSION_GAP = 1800
TTL_SECONDS = 2 * YEAR
ITEM_RATE = 0.9
REFERRER_RATE = 0.5
ACTIONS = ("purchase", "click", "view")
ACTIVITIES = {
    "purchase": ("checkout", "one_click_buy"),
    "click": ("product_click", "add_to_cart", "recommendation_click", "search_result_click"),
    "view": ("product_view", "category_browse", "page_view"),
}
DEVICES = ("desktop", "mobile", "tablet")
BROWSERS = ("Chrome", "Safari", "Firefox", "Edge", "Opera")
SHOP = "https://shop.example.com"
PAGES = (f"{SHOP}/", f"{SHOP}/search", f"{SHOP}/cart", f"{SHOP}/deals")
REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.facebook.com/",
    "https://www.instagram.com/",
    "https://newsletter.example.com/",
    f"{SHOP}/",
)
NON_DECIMAL_USER_IDS = ("anonymous", "12abc")


@dataclass(frozen=True, slots=True)
class Interaction:
    """Who did what when; `item` is a typed DynamoDB value such as ("S", "12"), or None."""

    timestamp: int
    user_id: str
    action_type: str
    item: tuple[str, str] | None


class Picker:
    """Draws ids 1..n with Zipf-like weights 1/rank**skew; skew 0 is uniform.

    Ranks are shuffled over the ids so that the popular ids are not simply the first ones.
    """

    def __init__(self, count: int, skew: float, rng: random.Random) -> None:
        self._ids = list(range(1, count + 1))
        rng.shuffle(self._ids)
        self._cum_weights = list(accumulate(1 / rank**skew for rank in range(1, count + 1)))

    def pick(self, rng: random.Random) -> int:
        return rng.choices(self._ids, cum_weights=self._cum_weights)[0]


class Traffic:
    """Draws ordinary interactions; shared by the base file and the changes file."""

    def __init__(self, users: Picker, items: Picker) -> None:
        self._users = users
        self._items = items

    def draw(self, rng: random.Random, timestamp_for: Callable[[str], int]) -> Interaction:
        """One interaction at the time `timestamp_for` gives its user."""
        user_id = str(self._users.pick(rng))
        item = ("S", str(self._items.pick(rng))) if rng.random() < ITEM_RATE else None
        return Interaction(timestamp_for(user_id), user_id, rng.choice(ACTIONS), item)


class Renderer:
    """Turns interactions, given in event-time order, into DynamoDB JSON items.

    A user's session continues while their interactions are less than 30 minutes apart.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sessions: dict[str, tuple[int, str]] = {}

    def _session(self, user_id: str, timestamp: int) -> str:
        last = self._sessions.get(user_id)
        if last is not None and timestamp - last[0] < SESSION_GAP:
            session = last[1]
        else:
            session = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._sessions[user_id] = (timestamp, session)
        return session

    def render(self, event: Interaction) -> dict[str, Any]:
        rng = self._rng
        page = f"{SHOP}/items/{event.item[1]}" if event.item else rng.choice(PAGES)
        item: dict[str, Any] = {
            "user_id": {"S": event.user_id},
            "timestamp": {"S": str(event.timestamp)},
            "action_type": {"S": event.action_type},
            "activity_type": {"S": rng.choice(ACTIVITIES[event.action_type])},
            "session_id": {"S": self._session(event.user_id, event.timestamp)},
            "device_type": {"S": rng.choice(DEVICES)},
            "browser_type": {"S": rng.choice(BROWSERS)},
            "current_page_url": {"S": page},
        }
        if rng.random() < REFERRER_RATE:
            item["referrer_url"] = {"S": rng.choice(REFERRERS)}
        if event.item:
            item["item_id"] = {event.item[0]: event.item[1]}
        item["ttl"] = {"N": str(event.timestamp + TTL_SECONDS)}
        return item


class Clock:
    """Timestamps in [start, end) that never repeat for a user: (user_id, timestamp) is
    the DynamoDB table's primary key, so a repeat would overwrite an item."""

    def __init__(self, rng: random.Random, start: int, end: int) -> None:
        self._rng = rng
        self._start = start
        self._end = end
        self._used: set[tuple[str, int]] = set()

    def _take(self, user_id: str, timestamp: int) -> bool:
        if (user_id, timestamp) in self._used:
            return False
        self._used.add((user_id, timestamp))
        return True

    def any_time(self, user_id: str) -> int:
        while not self._take(user_id, timestamp := self._rng.randrange(self._start, self._end)):
            pass
        return timestamp

    def window(self) -> int:
        """A random epoch-aligned window start; `start` itself is aligned (a UTC midnight)."""
        return self._rng.randrange(self._start, self._end - WINDOW) // WINDOW * WINDOW

    def in_window(self, user_id: str, window: int, count: int) -> list[int]:
        """`count` distinct instants of one window for one user (count is far below 1800)."""
        times: list[int] = []
        while len(times) < count:
            if self._take(user_id, timestamp := window + self._rng.randrange(WINDOW)):
                times.append(timestamp)
        return times


def _burst(clock: Clock, rng: random.Random, users: int, items: int) -> list[Interaction]:
    """One to three users each buying the same item 2-4 times in one 30-minute window."""
    item = ("S", str(rng.randint(1, items)))
    window = clock.window()
    buyers = [str(u) for u in rng.sample(range(1, users + 1), min(users, rng.randint(1, 3)))]
    return [
        Interaction(timestamp, buyer, "purchase", item)
        for buyer in buyers
        for timestamp in clock.in_window(buyer, window, rng.randint(2, 4))
    ]


def _edge_cases(clock: Clock, rng: random.Random, users: int, items: int) -> list[Interaction]:
    """The few records the analytics must treat specially (see docs/seed-data.md)."""

    def some_item() -> tuple[str, str]:
        return ("S", str(rng.randint(1, items)))

    def at(user_id: str, action: str, item: tuple[str, str] | None) -> Interaction:
        return Interaction(clock.any_time(user_id), user_id, action, item)

    anonymous, garbled = NON_DECIMAL_USER_IDS
    known_user = str(rng.randint(1, users))
    events = [
        # Not decimal integers: no user row joins them, yet they are non-NULL user ids.
        at(anonymous, "purchase", some_item()),
        at(anonymous, "purchase", some_item()),
        at(garbled, "view", some_item()),
        # Users and items that do not exist.
        at(str(users + 1), "purchase", some_item()),
        at(str(users + 2), "view", some_item()),
        at(known_user, "purchase", ("S", str(items + 1))),
        at(known_user, "view", ("S", str(items + 2))),
        # User 1 has a NULL gender and location: user_purchase_totals shows 'unknown'.
        at("1", "purchase", some_item()),
        at("1", "view", None),
    ]
    # A number-typed item_id is NULL: two purchases form a window row with a NULL item_id.
    window = clock.window()
    typed_n = ("N", str(rng.randint(1, items)))
    events += [
        Interaction(timestamp, known_user, "purchase", typed_n)
        for timestamp in clock.in_window(known_user, window, 2)
    ]
    return events


def draw_interactions(
    options: SeedOptions, traffic: Traffic, rng: random.Random, start: int, end: int
) -> list[Interaction]:
    """`options.interactions` interactions in [start, end), in event-time order.

    Edge cases and bursts come out of the same budget; a burst that no longer fits is
    dropped, so tiny datasets simply have fewer of them.
    """
    clock = Clock(rng, start, end)
    count = options.interactions
    events = _edge_cases(clock, rng, options.users, options.items) if options.edge_cases else []
    del events[count:]
    for _ in range(options.bursts):
        burst = _burst(clock, rng, options.users, options.items)
        if len(events) + len(burst) > count:
            break
        events += burst
    events += [traffic.draw(rng, clock.any_time) for _ in range(count - len(events))]
    events.sort(key=attrgetter("timestamp"))
    return events
