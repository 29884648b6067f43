"""Generated source histories: what the parsers emit, laid out in topic partitions.

A `Scenario` is the CDC changes of the PostgreSQL tables (each table's changes in source
order) and the interactions (in arrival order), with the partition count of the topics.
`load` puts them into a `Cluster` as the producers would (changes by primary key,
interactions by user id, a null key on a drawn partition, a replayed interaction again
later in its partition); `reference_state` is the same history for the reference model.
The order across partitions and topics is left to the schedule of the run.

Values are drawn from small pools so that keys collide: ids that exist and ids that do
not, NULLs, non-decimal and oddly spelled user ids (Flink CAST rules), missing items and
categories, renames, stock changes, deletes, bursts of one purchase.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from processor.cdc.postgres import RowChange
from processor.interactions import Interaction
from tests.reference import model
from tests.simulation.harness import SETTINGS, Cluster, Record, keyed, partition_for

USER_KEYS = (1, 2, 3, 7, -1)
INTERACTION_USERS = (
    *("1", "2", "3") * 6,
    *(" 3 ", "+2", "007", "-1", "12a", "", "anonymous", "2147483648", "99999999999999999999"),
    None,
)
ITEMS = (*("1", "2", "3", "4") * 3, "x", " 1", None)
ACTIONS = (*("purchase",) * 4, "click", "view", "Purchase", None)
# Windows need repeated purchases of one user and item: few of each.
WINDOW_USERS = ("1", "2", "1", "2", " 1", None)
WINDOW_ITEMS = ("1", "2", "1", None)
WINDOW_ACTIONS = ("purchase",) * 4 + ("view",)
# Four half-hour windows, events at their edges (a window is [start, start + 1800)) and
# in the middle, so that windows fill, close and take late purchases.
EVENT_TIMES_S = st.builds(
    lambda window, second: 1_800_000_000 + window * 1800 + second,
    st.integers(0, 3),
    st.sampled_from((0, 900, 1799, 1)),
)


@dataclass(frozen=True, slots=True)
class Event:
    """One generated interaction record, maybe repeated (`burst`) and maybe replayed."""

    user_id: str | None
    item_id: str | None
    action_type: str | None
    timestamp_s: int
    burst: int
    source_partition: int
    null_key_partition: int
    replayed_after: int | None
    """Delivered again this many records later in its partition (a producer's replay)."""


def interaction_events(
    users: tuple[str | None, ...] = INTERACTION_USERS,
    items: tuple[str | None, ...] = ITEMS,
    actions: tuple[str | None, ...] = ACTIONS,
) -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        user_id=st.sampled_from(users),
        item_id=st.sampled_from(items),
        action_type=st.sampled_from(actions),
        timestamp_s=EVENT_TIMES_S,
        burst=st.sampled_from((1, 1, 1, 2, 5)),
        source_partition=st.integers(0, 2),
        null_key_partition=st.integers(0, 2),
        replayed_after=st.one_of(st.none(), st.none(), st.integers(0, 6)),
    )


def _table_history(table: str, key: str, keys: tuple[Any, ...], **columns: Any) -> Any:
    """A snapshot of every key (as a connector's initial load) followed by changes: upserts
    of rows drawn from the `columns` pools, and deletes."""

    def upsert(value: Any) -> Any:
        row = st.fixed_dictionaries({name: st.sampled_from(pool) for name, pool in columns.items()})
        return row.map(lambda row: RowChange(table, "upsert", {key: value}, {key: value, **row}))

    snapshot = st.tuples(*map(upsert, keys)).map(list)
    update = st.sampled_from(keys).flatmap(upsert)
    delete = st.sampled_from(keys).map(lambda value: RowChange(table, "delete", {key: value}, None))
    changes = st.lists(st.one_of(update, update, delete), max_size=10)
    return st.tuples(snapshot, changes).map(lambda parts: parts[0] + parts[1])


users = _table_history(
    "users",
    "user_id",
    USER_KEYS,
    username=("ann", "bo", "", None),
    location=("Oslo", None),
    gender=("Female", "Other", None),
    email=("a@example.com",),
)
categories = _table_history(
    "categories", "category_id", (1, 2, 3), category_name=("Books", "Laptops", "Fiction")
)
items = _table_history(
    "items",
    "item_id",
    (1, 2, 3, 4),
    category_id=(1, 2, 3, 1, 2, None, 9),
    availability_status=("in_stock",) * 4 + ("out_of_stock", "preorder", None),
    image_url=("a.png", None),
    brand_id=(1, 2, None),
    price=(9.5,),
)


REVIEWS = 6


@st.composite
def reviews(draw: st.DrawFn) -> list[RowChange]:
    """A snapshot of reviews, then changes, keeping the source's UNIQUE(user_id, item_id)
    at every step (an upsert that would break it becomes a delete)."""
    current: dict[int, tuple[int, int]] = {}
    changes = []
    later = draw(st.lists(st.tuples(st.integers(1, REVIEWS), st.booleans()), max_size=10))
    for review_id, deleted in [*((r, False) for r in range(1, REVIEWS + 1)), *later]:
        pair = (draw(st.integers(1, 3)), draw(st.integers(1, 5)))  # item 5 never exists
        if deleted or pair in (other for rid, other in current.items() if rid != review_id):
            current.pop(review_id, None)
            changes.append(RowChange("reviews", "delete", {"review_id": review_id}, None))
            continue
        current[review_id] = pair
        row = {
            "review_id": review_id,
            "user_id": pair[0],
            "item_id": pair[1],
            "rating_score": draw(st.sampled_from((5, 4, 5, 4, 3, 1))),
            "review_text": "ok",
        }
        changes.append(RowChange("reviews", "upsert", {"review_id": review_id}, row))
    return changes


@dataclass(frozen=True)
class Scenario:
    partitions: int
    changes: tuple[RowChange, ...]
    events: tuple[Event, ...]

    def interactions(self) -> list[tuple[int, Interaction, int | None]]:
        """Each record with its interactions partition and replay distance, in arrival
        order (bursts expanded)."""
        offsets: defaultdict[int, int] = defaultdict(int)
        records = []
        for event in self.events:
            for _ in range(event.burst):
                source = event.source_partition % self.partitions
                interaction = Interaction(
                    user_id=event.user_id,
                    item_id=event.item_id,
                    action_type=event.action_type,
                    event_time_ms=event.timestamp_s * 1000,
                    source_topic=SETTINGS.dynamodb_topic,
                    source_partition=source,
                    source_offset=offsets[source],
                    # Captured as it happened: the record's timestamp is its event time.
                    captured_ms=event.timestamp_s * 1000,
                )
                offsets[source] += 1
                if event.user_id is None:
                    partition = event.null_key_partition % self.partitions
                else:
                    partition = partition_for(event.user_id.encode(), self.partitions)
                records.append((partition, interaction, event.replayed_after))
        return records

    def load(self, cluster: Cluster) -> None:
        for change in self.changes:
            (key,) = change.key.values()
            record = Record(keyed(key), change)
            partition = partition_for(record.key, self.partitions)
            cluster.append(SETTINGS.pg_topic(change.table), partition, record)
        placed: defaultdict[int, list[tuple[float, Record]]] = defaultdict(list)
        originals: defaultdict[int, int] = defaultdict(int)
        for partition, interaction, replayed_after in self.interactions():
            key = None if interaction.user_id is None else interaction.user_id.encode()
            record = Record(key, interaction, interaction.event_time_ms)
            position = originals[partition]
            originals[partition] += 1
            placed[partition].append((position, record))
            if replayed_after is not None:
                placed[partition].append((position + replayed_after + 0.5, record))
        log = cluster.log(SETTINGS.interactions_topic)
        for partition, records in placed.items():
            log[partition].extend(record for _, record in sorted(records, key=lambda r: r[0]))

    def reference_state(self) -> model.SourceState:
        state = model.SourceState()
        for change in self.changes:
            if change.op == "upsert":
                state.upsert(change.table, change.row)
            else:
                state.delete(change.table, change.key)
        state.interactions = [_reference(interaction) for _, interaction, _ in self.interactions()]
        return state

    def arrivals(self) -> dict[int, list[tuple[str, model.Interaction]]]:
        """Per interactions partition, the records counted (replays dropped) in log order,
        with their DynamoDB partition: the input of the reference's merged-watermark rule."""
        arrivals = defaultdict(list)
        for partition, interaction, _ in self.interactions():
            arrivals[partition].append((interaction.source, _reference(interaction)))
        return arrivals


def _reference(interaction: Interaction) -> model.Interaction:
    return model.Interaction(
        current_page_url=None,
        action_type=interaction.action_type,
        item_id=interaction.item_id,
        user_id=interaction.user_id,
        browser_type=None,
        session_id=None,
        device_type=None,
        referrer_url=None,
        timestamp=interaction.event_time_ms // 1000,
    )


def scenarios(
    *tables: st.SearchStrategy[list[RowChange]],
    events: st.SearchStrategy[Event] | None = None,
    ordered: bool = False,
) -> Any:
    """Scenarios with the changes of `tables` (each drawn list in source order) and
    interactions of `events` (none if None): in event-time order if `ordered`, else
    shuffled."""
    interactions = st.lists(events, min_size=8, max_size=30) if events is not None else st.just([])
    if ordered:
        interactions = interactions.map(lambda drawn: sorted(drawn, key=lambda e: e.timestamp_s))
    return st.builds(
        Scenario,
        partitions=st.integers(1, 3),
        changes=st.tuples(*tables).map(lambda lists: tuple(c for part in lists for c in part)),
        events=interactions.map(tuple),
    )
