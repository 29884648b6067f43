"""Property tests: each topology's real dataframe, driven through generated histories and
schedules (interleavings, checkpoints, lost checkpoints, replays), ends equal to the
reference model. See docs/testing.md, "Simulated topologies"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor import checkpointed
from processor.interactions import Interaction, source_partition_name
from tests.reference import model
from tests.reference.compare import diff
from tests.simulation import harness
from tests.simulation.harness import COMMIT, SETTINGS, STEP_WEIGHTS, Cluster, Record, run
from tests.simulation.scenarios import (
    WINDOW_ACTIONS,
    WINDOW_ITEMS,
    WINDOW_USERS,
    Scenario,
    categories,
    interaction_events,
    items,
    reviews,
    scenarios,
    users,
)
from topologies import (
    co_purchase_counts,
    highly_rated_item_details,
    item_shared_by_user_pair,
    purchase_windowed_counts,
    user_purchase_totals,
)

# Default run: a fixed set of examples, no example database, so every run is the same.
QUICK = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
THOROUGH = settings(QUICK, max_examples=1000, derandomize=False)
PROFILES = [
    pytest.param(QUICK, id="quick"),
    pytest.param(THOROUGH, id="thorough", marks=pytest.mark.slow),
]

# Choices of a schedule: which step, which partition, whether aborted records show.
schedules = st.lists(st.integers(0, 2**16), min_size=20, max_size=600)


class Choices:
    """A `Schedule` reading drawn integers; once they run out, always the first option."""

    def __init__(self, values: list[int]) -> None:
        self._values = iter(values)

    def choose(self, n: int) -> int:
        return next(self._values, 0) % n


def simulate(module: Any, scenario: Scenario, schedule: list[int]) -> Cluster:
    """The cluster after `module`'s topology ran the scenario on the schedule."""
    cluster = Cluster(scenario.partitions)
    scenario.load(cluster)
    run(module.TOPOLOGY, cluster, Choices(schedule), max_steps=len(schedule))
    return cluster


def check(
    module: Any, expected: Callable[[Scenario], Any], scenario: Scenario, schedule: list[int]
) -> None:
    cluster = simulate(module, scenario, schedule)
    name = module.TOPOLOGY.name
    problems = diff(
        {name: expected(scenario)},
        {name: cluster.table_rows()},
    )
    assert not problems, "\n".join(problems)


def batch(table: Callable[[model.SourceState], Any]) -> Callable[[Scenario], Any]:
    """The reference's batch answer over the scenario's final source state."""
    return lambda scenario: table(scenario.reference_state())


def streamed_windows(scenario: Scenario) -> list[model.WindowedResult]:
    """SPEC 2.6 as streamed: with one partition the SPEC's rule as written; with several,
    each interactions partition on its own, its watermark the minimum over the DynamoDB
    partitions (docs/windows.md)."""
    lateness = SETTINGS.window_allowed_lateness_s
    if scenario.partitions == 1:
        return [model.simulate_purchase_windows(scenario.reference_state(), lateness)]
    topic = SETTINGS.dynamodb_topic
    sources = [source_partition_name(topic, p) for p in range(scenario.partitions)]
    return [
        model.simulate_merged_purchase_windows(arrivals, sources, lateness)
        for arrivals in scenario.arrivals().values()
    ]


def closed_windows(scenario: Scenario) -> set[model.WindowRow]:
    return {row for result in streamed_windows(scenario) for row in result.rows}


EVENTS = interaction_events()
WINDOW_EVENTS = interaction_events(WINDOW_USERS, WINDOW_ITEMS, WINDOW_ACTIONS)
CASES = {
    "co_purchase_counts": (
        co_purchase_counts,
        batch(model.co_purchase_counts),
        scenarios(events=EVENTS),
    ),
    "item_shared_by_user_pair": (
        item_shared_by_user_pair,
        batch(model.item_shared_by_user_pair),
        scenarios(events=EVENTS),
    ),
    "user_purchase_totals": (
        user_purchase_totals,
        batch(model.user_purchase_totals),
        scenarios(users, events=EVENTS),
    ),
    "highly_rated_item_details": (
        highly_rated_item_details,
        batch(model.highly_rated_item_details),
        scenarios(categories, items, reviews(), events=None),
    ),
    "purchase_windowed_counts-shuffled": (
        purchase_windowed_counts,
        closed_windows,
        scenarios(events=WINDOW_EVENTS),
    ),
    "purchase_windowed_counts-ordered": (
        purchase_windowed_counts,
        closed_windows,
        scenarios(events=WINDOW_EVENTS, ordered=True),
    ),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("table", CASES)
def test_topology_equals_reference(table: str, profile: settings) -> None:
    module, expected, generated = CASES[table]

    @profile
    @given(scenario=generated, schedule=schedules)
    def topology_equals_reference(scenario: Scenario, schedule: list[int]) -> None:
        check(module, expected, scenario, schedule)

    topology_equals_reference()


def test_replayed_first_record_counts_once() -> None:
    """User 1 buys item 1 twice and user 2 once (DynamoDB offsets 0, 1, 2); the record at
    offset 0 shows up again after the first checkpoint committed. (The store keeps no
    falsy values, so a dedupe remembering "highest offset taken" forgot offset 0 at every
    checkpoint; found by the property tests, fixed in 6c9da34.)"""
    cluster = Cluster(partitions=1)
    purchases = [
        Interaction("1", "1", "purchase", 0, SETTINGS.dynamodb_topic, 0, offset)
        for offset in (0, 1)
    ] + [Interaction("2", "1", "purchase", 0, SETTINGS.dynamodb_topic, 0, 2)]
    first, *rest = purchases
    for interaction in (first, first, *rest):
        record = Record(interaction.user_id.encode(), interaction)
        cluster.append(SETTINGS.interactions_topic, 0, record)
    # Deliver the first record, commit, then deliver the rest (choices run out: deliver).
    schedule = Choices([0, 0, STEP_WEIGHTS.index(COMMIT)])
    run(item_shared_by_user_pair.TOPOLOGY, cluster, schedule, max_steps=3)
    assert sorted(cluster.table_rows()) == [
        ("1", "2", 2),
        ("2", "1", 2),
    ]


@pytest.mark.parametrize("profile", PROFILES)
def test_late_purchases_equal_reference(profile: settings) -> None:
    """The late-events topic holds the purchases the reference rule calls late (once each
    by DynamoDB identity: a lost checkpoint's records may show on the local broker)."""

    @profile
    @given(scenario=scenarios(events=WINDOW_EVENTS), schedule=schedules)
    def late_purchases_equal_reference(scenario: Scenario, schedule: list[int]) -> None:
        cluster = simulate(purchase_windowed_counts, scenario, schedule)
        published = {}
        for partition in cluster.log(SETTINGS.late_events_topic):
            for record in partition:
                late = orjson.loads(record.value)
                identity = (late["source_topic"], late["source_partition"], late["source_offset"])
                published[identity] = (late["user_id"], late["item_id"], late["event_time"])
        expected = Counter(
            (purchase.user_id, purchase.item_id, purchase.event_time.isoformat())
            for result in streamed_windows(scenario)
            for purchase in result.late
        )
        assert Counter(published.values()) == expected

    late_purchases_equal_reference()


@pytest.mark.parametrize("table", CASES)
def test_topology_equals_reference_with_values_paged_and_messages_split(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State values in many pages and a key's entries in one message each (pages of
    64 KiB and messages of 256 KiB in production) give the same table: pages merge back
    whole, and each entry of a message is applied on its own."""
    monkeypatch.setattr(checkpointed, "PAGE_BYTES", 40)
    monkeypatch.setattr(checkpointed, "MESSAGE_BYTES", 1)
    module, expected, generated = CASES[table]

    @settings(QUICK, max_examples=50)
    @given(scenario=generated, schedule=schedules)
    def paged_and_split_equal_reference(scenario: Scenario, schedule: list[int]) -> None:
        check(module, expected, scenario, schedule)

    paged_and_split_equal_reference()


@pytest.mark.parametrize("ordered", [False, True], ids=["shuffled", "ordered"])
def test_windows_with_idle_sources_do_not_depend_on_crashes(
    ordered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the idle-source rule on (15 min of capture time; the scenarios' records are
    captured at their event times), a run with lost checkpoints, replays and crashes
    writes the same windows as an undisturbed run of the same input: the rule reads the
    records' capture times, not the clock of the process that happens to read them."""
    idle = SETTINGS.model_copy(update={"window_idle_timeout_s": 900})
    monkeypatch.setattr(harness, "SETTINGS", idle)

    @settings(QUICK, max_examples=60)
    @given(scenario=scenarios(events=WINDOW_EVENTS, ordered=ordered), schedule=schedules)
    def same_windows(scenario: Scenario, schedule: list[int]) -> None:
        disturbed = simulate(purchase_windowed_counts, scenario, schedule)
        undisturbed = simulate(purchase_windowed_counts, scenario, [])
        assert Counter(disturbed.table_rows()) == Counter(undisturbed.table_rows())

    same_windows()
