"""Reference model of SPEC section 2: the six derived tables, computed in batch.

Written straight from the SPEC, independently of the streaming topologies, so that their
PostgreSQL output can be compared against it (`tests/reference/compare.py`). Clarity
comes before speed: every table is one pass over the current source tables and all
interactions; the pair tables count joined record pairs with `collections.Counter`.

Interpretations (the SPEC is silent or leaves room; see also docs/testing.md):

- Attribute value: `{"S": "<str>"}` gives the string (the empty string included); any
  other typed value (`N`, `NULL`, `L`, ...), a missing attribute or a malformed one is
  NULL. A number-typed `item_id` or `user_id` is therefore NULL.
- Bad input: a record whose `timestamp` value is not an integer (per `parse_integer`,
  so a NULL or `N`-typed timestamp is bad too) or whose instant lies outside the years
  1-9999 UTC is dead-lettered (SPEC 4) and is no interaction at all: it is left out of
  every table, not only `interaction_data`. `SourceState.bad_interactions` keeps them.
- A NULL `action_type` is an interaction that is not a purchase. `action_type` is
  compared case-sensitively with `'purchase'`.
- `user_purchase_totals` parses the interaction's user_id like Flink's
  `CAST(user_id AS INT)` with NULL on failure: ASCII spaces trimmed, an optional sign,
  ASCII digits (leading zeros allowed), within INT range. Unlike Flink, a fraction
  (`"12.0"`) does not parse: the SPEC says "a decimal integer".
- `purchase_windowed_counts` groups by SQL GROUP BY semantics: a NULL item_id and a NULL
  user_id are each a group of their own (the output key is NULLS NOT DISTINCT). Every
  purchase is windowed, whatever its ids.
- Windowing watermark: advanced by every valid interaction, not only by purchases (the
  watermark belongs to the interaction stream, as in the Flink source table it replaces).
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

WINDOW_SECONDS = 30 * 60
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Primary-key column of each PostgreSQL source table (SPEC 1.1).
SOURCE_KEYS = {
    "users": "user_id",
    "categories": "category_id",
    "items": "item_id",
    "reviews": "review_id",
}

_INTEGER = re.compile(r"[+-]?[0-9]+")

Row = dict[str, Any]


def attribute_value(item: Mapping[str, Any], name: str) -> str | None:
    """The SPEC 2 "value" of a DynamoDB attribute: its `S` string, else NULL."""
    attribute = item.get(name)
    if isinstance(attribute, dict) and isinstance(attribute.get("S"), str):
        return attribute["S"]
    return None


def parse_integer(text: str | None) -> int | None:
    """A decimal integer as Flink's CAST(text AS BIGINT) reads one, NULL where it fails.

    ASCII spaces (only those, as Flink's trim) around the number are ignored, a leading
    sign and leading zeros are accepted; `"1_000"`, `"12.0"`, `"1e3"`, `"١٢"` are not
    integers (Python's `int()` would take some of them). No range check here.
    """
    if text is None:
        return None
    stripped = text.strip(" ")
    return int(stripped) if _INTEGER.fullmatch(stripped) else None


def user_id_as_int(user_id: str | None) -> int | None:
    """CAST(user_id AS INT) with NULL on failure: `parse_integer` within INT range."""
    number = parse_integer(user_id)
    return number if number is not None and INT_MIN <= number <= INT_MAX else None


def window_start(timestamp: int) -> int:
    """Start, in epoch seconds, of the epoch-aligned 30-minute window holding `timestamp`."""
    return timestamp // WINDOW_SECONDS * WINDOW_SECONDS


def to_datetime(seconds: int) -> datetime:
    """Epoch seconds as an aware UTC datetime (OverflowError outside years 1-9999)."""
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Interaction:
    """One valid DynamoDB record: the attribute values of SPEC 2.1 and its timestamp."""

    current_page_url: str | None
    action_type: str | None
    item_id: str | None
    user_id: str | None
    browser_type: str | None
    session_id: str | None
    device_type: str | None
    referrer_url: str | None
    timestamp: int

    @classmethod
    def decode(cls, item: Mapping[str, Any]) -> Interaction | None:
        """The interaction, or None when the record is bad input (see module docstring)."""
        timestamp = parse_integer(attribute_value(item, "timestamp"))
        if timestamp is None:
            return None
        try:
            to_datetime(timestamp)
        except OverflowError:
            return None
        return cls(
            current_page_url=attribute_value(item, "current_page_url"),
            action_type=attribute_value(item, "action_type"),
            item_id=attribute_value(item, "item_id"),
            user_id=attribute_value(item, "user_id"),
            browser_type=attribute_value(item, "browser_type"),
            session_id=attribute_value(item, "session_id"),
            device_type=attribute_value(item, "device_type"),
            referrer_url=attribute_value(item, "referrer_url"),
            timestamp=timestamp,
        )

    @property
    def event_time(self) -> datetime:
        return to_datetime(self.timestamp)

    @property
    def is_purchase(self) -> bool:
        return self.action_type == "purchase"


@dataclass
class SourceState:
    """The current source tables after a dataset (SPEC 6), applied in order.

    Rows are kept as given, keyed by primary key: an upsert replaces the whole row, so a
    column the row omits reads as NULL (`row.get`), never as an older value or a
    database DEFAULT. A delete of a missing key does nothing. Interactions are appended
    in arrival order: `interactions.jsonl`, then the inserts of `changes.jsonl`.
    """

    users: dict[Any, Row] = field(default_factory=dict)
    categories: dict[Any, Row] = field(default_factory=dict)
    items: dict[Any, Row] = field(default_factory=dict)
    reviews: dict[Any, Row] = field(default_factory=dict)
    interactions: list[Interaction] = field(default_factory=list)
    bad_interactions: list[Mapping[str, Any]] = field(default_factory=list)

    @classmethod
    def from_records(
        cls,
        *,
        users: Iterable[Row] = (),
        categories: Iterable[Row] = (),
        items: Iterable[Row] = (),
        reviews: Iterable[Row] = (),
        interactions: Iterable[Mapping[str, Any]] = (),
        changes: Iterable[Mapping[str, Any]] = (),
    ) -> SourceState:
        """A state from in-memory records shaped like the dataset files' lines."""
        state = cls()
        for table, rows in (
            ("users", users),
            ("categories", categories),
            ("items", items),
            ("reviews", reviews),
        ):
            for row in rows:
                state.upsert(table, row)
        for item in interactions:
            state.append_interaction(item)
        for change in changes:
            state.apply(change)
        return state

    @classmethod
    def from_directory(cls, path: Path) -> SourceState:
        """A state from a dataset directory; `changes.jsonl` may be absent."""
        return cls.from_records(
            users=_read_jsonl(path / "users.jsonl"),
            categories=_read_jsonl(path / "categories.jsonl"),
            items=_read_jsonl(path / "items.jsonl"),
            reviews=_read_jsonl(path / "reviews.jsonl"),
            interactions=_read_jsonl(path / "interactions.jsonl"),
            changes=_read_jsonl(path / "changes.jsonl", optional=True),
        )

    def _table(self, name: str) -> dict[Any, Row]:
        if name not in SOURCE_KEYS:
            raise ValueError(f"unknown source table {name!r}")
        return getattr(self, name)

    def upsert(self, table: str, row: Row) -> None:
        self._table(table)[row[SOURCE_KEYS[table]]] = dict(row)

    def delete(self, table: str, row: Row) -> None:
        self._table(table).pop(row[SOURCE_KEYS[table]], None)

    def append_interaction(self, item: Mapping[str, Any]) -> None:
        interaction = Interaction.decode(item)
        if interaction is None:
            self.bad_interactions.append(item)
        else:
            self.interactions.append(interaction)

    def apply(self, change: Mapping[str, Any]) -> None:
        """One line of `changes.jsonl`."""
        table, op = change.get("table"), change.get("op")
        if table == "interactions" and op == "insert":
            self.append_interaction(change["item"])
        elif op == "upsert":
            self.upsert(table, change["row"])
        elif op == "delete":
            self.delete(table, change["row"])
        else:
            raise ValueError(f"unknown change {table!r} {op!r}")


def _read_jsonl(path: Path, *, optional: bool = False) -> list[dict[str, Any]]:
    if optional and not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


# --- SPEC 2.1 ---------------------------------------------------------------------------


def interaction_data(state: SourceState) -> list[tuple[Any, ...]]:
    """One row per valid record, in arrival order (a multiset: equal rows may repeat).

    (current_page_url, action_type, item_id, user_id, browser_type, session_id,
    device_type, referrer_url, event_time_ltz: aware UTC datetime)
    """
    return [
        (
            i.current_page_url,
            i.action_type,
            i.item_id,
            i.user_id,
            i.browser_type,
            i.session_id,
            i.device_type,
            i.referrer_url,
            i.event_time,
        )
        for i in state.interactions
    ]


# --- SPEC 2.2 and 2.5: self-joins counted pair by pair -----------------------------------


def _pair_counts(groups: Iterable[list[str]]) -> set[tuple[str, str, int]]:
    """Rows (a, b, n) for a != b, n = the number of (a, b) pairs within one group, summed
    over groups. A group lists one entry per record, so an id with k records pairs k
    times: n is the sum over groups of count(a) x count(b), the SQL self-join's count."""
    pairs: Counter[tuple[str, str]] = Counter()
    for members in groups:
        pairs.update(product(members, members))
    return {(a, b, count) for (a, b), count in pairs.items() if a != b}


def co_purchase_counts(state: SourceState) -> set[tuple[str, str, int]]:
    """(item_id_A, item_id_B, co_purchase_count): items bought by the same user."""
    bought: dict[str, list[str]] = defaultdict(list)
    for i in state.interactions:
        if i.is_purchase and i.user_id is not None and i.item_id is not None:
            bought[i.user_id].append(i.item_id)
    return _pair_counts(bought.values())


def item_shared_by_user_pair(state: SourceState) -> set[tuple[str, str, int]]:
    """(user_A, user_B, shared_item_count): users who interacted with the same item, any
    action type (a NULL action_type included)."""
    users_of: dict[str, list[str]] = defaultdict(list)
    for i in state.interactions:
        if i.user_id is not None and i.item_id is not None:
            users_of[i.item_id].append(i.user_id)
    return _pair_counts(users_of.values())


# --- SPEC 2.3 --------------------------------------------------------------------------


def user_purchase_totals(state: SourceState) -> set[tuple[int, str, str, str, int]]:
    """(user_id, username, location, gender, total_purchases) for every current user with
    at least one interaction whose user_id casts to theirs; NULL text shows 'unknown'."""
    purchases: dict[int, int] = {}
    for i in state.interactions:
        user_id = user_id_as_int(i.user_id)
        if user_id is not None:
            purchases[user_id] = purchases.get(user_id, 0) + int(i.is_purchase)

    def known(value: str | None) -> str:
        return "unknown" if value is None else value

    return {
        (
            user_id,
            known(user.get("username")),
            known(user.get("location")),
            known(user.get("gender")),
            purchases[user_id],
        )
        for user_id, user in state.users.items()
        if user_id in purchases
    }


# --- SPEC 2.4 --------------------------------------------------------------------------


def highly_rated_item_details(state: SourceState) -> set[tuple[Any, ...]]:
    """(user_id, rating_score, item_id, image_url, brand_id, category_name) per current
    review rated >= 4 of a current in-stock item whose category currently exists.

    The reviewer need not exist in `users` (the SPEC joins items and categories only).
    Two such reviews with one (user_id, item_id) would break the output key; the
    source's UNIQUE(user_id, item_id) rules that out, so it raises rather than pick one.
    """
    rows: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for review in state.reviews.values():
        score = review.get("rating_score")
        if score is None or score < 4:
            continue
        item = state.items.get(review.get("item_id"))
        if item is None or item.get("availability_status") != "in_stock":
            continue
        category = state.categories.get(item.get("category_id"))
        if category is None:
            continue
        key = (review.get("user_id"), review.get("item_id"))
        if key in rows:
            raise ValueError(f"two current reviews for (user_id, item_id) {key}")
        rows[key] = (
            key[0],
            score,
            key[1],
            item.get("image_url"),
            item.get("brand_id"),
            category.get("category_name"),
        )
    return set(rows.values())


# --- SPEC 2.6 --------------------------------------------------------------------------

WindowKey = tuple[str | None, str | None, int]  # user_id, item_id, window start (epoch s)
WindowRow = tuple[str | None, str | None, datetime, datetime, int]


def _window_row(key: WindowKey, count: int) -> WindowRow:
    user_id, item_id, start = key
    return (user_id, item_id, to_datetime(start), to_datetime(start + WINDOW_SECONDS), count)


def purchase_windowed_counts(state: SourceState) -> set[WindowRow]:
    """(user_id, item_id, window_start, window_end, purchase_count >= 2) in batch: every
    purchase counted, as for an event-time ordered stream with allowed lateness 0 once
    its last window has closed."""
    counts = Counter(
        (i.user_id, i.item_id, window_start(i.timestamp))
        for i in state.interactions
        if i.is_purchase
    )
    return {_window_row(key, count) for key, count in counts.items() if count >= 2}


class WindowedResult(NamedTuple):
    """Rows of the windows the stream closed, and the purchases dropped as late."""

    rows: set[WindowRow]
    late: list[Interaction]


def simulate_purchase_windows(
    state: SourceState, allowed_lateness_s: int = 0, *, end_of_input: bool = False
) -> WindowedResult:
    """Table 6 as the streaming rule of SPEC 2.6 produces it, interactions in arrival order.

    Watermark = max event time seen (every valid interaction counts) - allowed lateness;
    there is none before the first record. A window [s, e) closes when watermark >= e:
    Flink fires it at watermark >= e - 1 ms with watermark = max_ts - delay, which for
    whole-second timestamps is max_ts - lateness >= e. A purchase whose window is already
    closed when it arrives (judged against the watermark before the record itself) is
    late: not counted, returned in `late`. Only closed windows are rows; `end_of_input`
    closes the rest at the end, as a bounded source's final watermark would.
    """
    if allowed_lateness_s < 0:
        raise ValueError("allowed lateness must be >= 0")
    watermark: int | None = None
    open_windows: dict[int, Counter[WindowKey]] = {}
    starts: list[int] = []  # heap of open window starts
    rows: set[WindowRow] = set()
    late: list[Interaction] = []

    def close(start: int) -> None:
        for key, count in open_windows.pop(start).items():
            if count >= 2:
                rows.add(_window_row(key, count))

    for interaction in state.interactions:
        if interaction.is_purchase:
            start = window_start(interaction.timestamp)
            if watermark is not None and watermark >= start + WINDOW_SECONDS:
                late.append(interaction)
            else:
                if start not in open_windows:
                    open_windows[start] = Counter()
                    heapq.heappush(starts, start)
                open_windows[start][(interaction.user_id, interaction.item_id, start)] += 1
        candidate = interaction.timestamp - allowed_lateness_s
        if watermark is None or candidate > watermark:
            watermark = candidate
            while starts and watermark >= starts[0] + WINDOW_SECONDS:
                close(heapq.heappop(starts))
    if end_of_input:
        while starts:
            close(heapq.heappop(starts))
    return WindowedResult(rows, late)


def simulate_merged_purchase_windows(
    arrivals: Sequence[tuple[str, Interaction]],
    sources: Iterable[str],
    allowed_lateness_s: int = 0,
) -> WindowedResult:
    """Table 6 from one partition of the interactions topic, which merges several sources.

    `arrivals` are (source partition, interaction) in the partition's order; `sources`
    names every source partition. The watermark is undefined until each source has sent
    something, then the minimum over the sources of the maximum event time seen from each,
    minus the allowed lateness, and it never decreases; otherwise as
    `simulate_purchase_windows`, with no end of input. Source idleness (a wall-clock
    rule) is not modelled.
    """
    expected = set(sources)
    latest: dict[str, int] = {}
    watermark: int | None = None
    counts: Counter[WindowKey] = Counter()
    late: list[Interaction] = []
    for source, interaction in arrivals:
        if interaction.is_purchase:
            start = window_start(interaction.timestamp)
            if watermark is not None and watermark >= start + WINDOW_SECONDS:
                late.append(interaction)
            else:
                counts[(interaction.user_id, interaction.item_id, start)] += 1
        latest[source] = max(latest.get(source, interaction.timestamp), interaction.timestamp)
        if expected <= latest.keys():
            candidate = min(latest.values()) - allowed_lateness_s
            watermark = candidate if watermark is None else max(watermark, candidate)
    rows = {
        _window_row(key, count)
        for key, count in counts.items()
        if count >= 2 and watermark is not None and watermark >= key[2] + WINDOW_SECONDS
    }
    return WindowedResult(rows, late)


def derived_tables(state: SourceState) -> dict[str, Any]:
    """All six tables by SPEC 3 name: `interaction_data` a list (multiset), the rest sets."""
    return {
        "interaction_data": interaction_data(state),
        "co_purchase_counts": co_purchase_counts(state),
        "user_purchase_totals": user_purchase_totals(state),
        "highly_rated_item_details": highly_rated_item_details(state),
        "item_shared_by_user_pair": item_shared_by_user_pair(state),
        "purchase_windowed_counts": purchase_windowed_counts(state),
    }
