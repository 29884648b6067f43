"""Skewed keys: whatever a key's group, no stored value and no message grows past a set
size (`PAGE_BYTES`, `MESSAGE_BYTES`), and the tables stay exact.

Each dataset puts one key's group far past Kafka's 1 MB message limit if it were one
value: 60,000 good reviews of one item, 60,000 users buying one item (and each one other,
so the item has 60,000 partners), one user sharing items with 60,000 others, and 50,000
open windows in one partition. (60,000 users on one item in `item_shared_by_user_pair`
would make 3.6 billion pairs, a table no engine writes; its members and partners are
paged by the same code, tested at this size in tests/unit/test_paging.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from quixstreams.state.memory.partition import MemoryStorePartition

from processor import checkpointed
from processor.cdc.postgres import RowChange
from tests.reference import model
from tests.reference.compare import diff
from tests.simulation.harness import COMMIT, SETTINGS, STEP_WEIGHTS, Cluster, run
from tests.simulation.scenarios import Event, Scenario
from topologies import (
    co_purchase_counts,
    highly_rated_item_details,
    item_shared_by_user_pair,
    purchase_windowed_counts,
)

GROUP = 60_000
OPEN_WINDOWS = 50_000
START_S = 1_800_000_000  # a window start (a multiple of 1,800 s)
MEGABYTE = 1_000_000


class CommitEvery:
    """A schedule that delivers and commits every `interval` deliveries."""

    def __init__(self, interval: int) -> None:
        self._interval = interval
        self._steps = 0

    def choose(self, n: int) -> int:
        if n != len(STEP_WEIGHTS):
            return 0  # the first readable partition
        self._steps += 1
        return STEP_WEIGHTS.index(COMMIT) if self._steps % self._interval == 0 else 0


def event(user: str, item: str, action: str = "view", at_s: int = START_S, burst: int = 1) -> Event:
    return Event(user, item, action, at_s, burst, 0, 0, None)


def good_reviews_of_one_item() -> Scenario:
    changes = [
        RowChange(
            "categories", "upsert", {"category_id": 1}, {"category_id": 1, "category_name": "Books"}
        ),
        RowChange(
            "items",
            "upsert",
            {"item_id": 1},
            {
                "item_id": 1,
                "category_id": 1,
                "availability_status": "in_stock",
                "image_url": "a.png",
                "brand_id": 2,
            },
        ),
    ]
    changes += [
        RowChange(
            "reviews",
            "upsert",
            {"review_id": n},
            {"review_id": n, "user_id": n, "item_id": 1, "rating_score": 5},
        )
        for n in range(1, GROUP + 1)
    ]
    return Scenario(partitions=2, changes=tuple(changes), events=())


def buyers_of_one_item() -> Scenario:
    events = []
    for n in range(1, GROUP + 1):
        events += [event(f"u{n}", "hot", "purchase"), event(f"u{n}", f"i{n}", "purchase")]
    return Scenario(partitions=2, changes=(), events=tuple(events))


def one_user_sharing_with_many() -> Scenario:
    events = []
    for n in range(1, GROUP + 1):
        events += [event("hub", f"i{n}"), event(f"u{n}", f"i{n}")]
    return Scenario(partitions=2, changes=(), events=tuple(events))


def open_windows_in_one_partition() -> Scenario:
    """Each user buys their item twice in one window, then one purchase closes them all."""
    events = [event(f"u{n}", f"i{n}", "purchase", burst=2) for n in range(OPEN_WINDOWS)]
    events.append(event("last", "i", "purchase", at_s=START_S + 3 * 1800))
    return Scenario(partitions=1, changes=(), events=tuple(events))


def windows(scenario: Scenario) -> set[model.WindowRow]:
    lateness = SETTINGS.window_allowed_lateness_s
    return set(model.simulate_purchase_windows(scenario.reference_state(), lateness).rows)


def batch(table: Any) -> Any:
    return lambda scenario: table(scenario.reference_state())


CASES = {
    "highly_rated_item_details": (
        highly_rated_item_details,
        good_reviews_of_one_item,
        batch(model.highly_rated_item_details),
    ),
    "co_purchase_counts": (co_purchase_counts, buyers_of_one_item, batch(model.co_purchase_counts)),
    "item_shared_by_user_pair": (
        item_shared_by_user_pair,
        one_user_sharing_with_many,
        batch(model.item_shared_by_user_pair),
    ),
    "purchase_windowed_counts": (purchase_windowed_counts, open_windows_in_one_partition, windows),
}


class MeasuredStore(MemoryStorePartition):
    """A store partition that remembers its largest value and largest state, at commits."""

    largest_value = 0
    largest_state = 0

    def write(self, cache: Any, changelog_offset: int | None) -> None:
        super().write(cache, changelog_offset)
        sizes = [len(value) for values in self._state.values() for value in values.values()]
        self.largest_value = max(self.largest_value, *sizes, 0)
        self.largest_state = max(self.largest_state, sum(sizes))


class MeasuredCluster(Cluster):
    def store(self, stream_id: str, partition: int) -> MemoryStorePartition:
        key = (stream_id, partition)
        if key not in self.stores:
            self.stores[key] = MeasuredStore(changelog_producer=None)
        return self.stores[key]


def messages(cluster: Cluster) -> list[bytes]:
    return [
        record.value
        for partitions in cluster.logs.values()
        for records in partitions
        for record in records
        if isinstance(record.value, bytes)
    ]


@pytest.mark.parametrize("table", CASES)
def test_no_value_or_message_grows_with_a_hot_key(table: str) -> None:
    module, dataset, expected = CASES[table]
    scenario = dataset()
    cluster = MeasuredCluster(scenario.partitions)
    scenario.load(cluster)
    run(module.TOPOLOGY, cluster, CommitEvery(5_000), max_steps=10 * GROUP)

    problems = diff({table: expected(scenario)}, {table: cluster.table_rows()})
    assert not problems, "\n".join(problems[:20])
    stores = cluster.stores.values()
    # The hot key's state, were it one value, would be over the limit; no value is.
    assert max(store.largest_state for store in stores) > MEGABYTE
    assert max(store.largest_value for store in stores) <= checkpointed.PAGE_BYTES
    assert max(map(len, messages(cluster)), default=0) <= checkpointed.MESSAGE_BYTES
