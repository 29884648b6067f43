"""Every derived table, produced by the real topologies from a loaded dataset, equals the
independent reference model of SPEC section 2 row for row."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from processor.avro import SchemaRegistry
from processor.seed import SeedOptions, generate, write_dataset
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.support import read_topic
from tests.reference.compare import diff, read_tables
from tests.reference.model import (
    Interaction,
    SourceState,
    WindowedResult,
    derived_tables,
    simulate_merged_purchase_windows,
)

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"
WINDOWED = "purchase_windowed_counts"


def windows_as_read(settings: Settings, partitions: int) -> WindowedResult:
    """Table 6 as SPEC 2.6 defines it for the order in which the topology read its input:
    the reference rule over each partition of the interactions topic. (Windows still open
    at the end are not rows yet; the batch answer of `derived_tables` includes them.)"""
    registry = SchemaRegistry(settings)
    arrivals: defaultdict[int, list[tuple[str, Interaction]]] = defaultdict(list)
    taken: dict[tuple[int, str], int] = {}
    for message in read_topic(settings, settings.interactions_topic):
        value, _ = registry.decode(message.value(), message.headers())
        source = f"{value['source_topic']}[{value['source_partition']}]"
        # A record repeated on the topic (processor/interactions.py) is read once.
        if value["source_offset"] <= taken.get((message.partition(), source), -1):
            continue
        taken[(message.partition(), source)] = value["source_offset"]
        interaction = Interaction(
            **{name: value[name] for name in Interaction.__dataclass_fields__ if name in value},
            timestamp=int(value["event_time_ltz"].timestamp()),
        )
        arrivals[message.partition()].append((source, interaction))
    sources = [f"{settings.dynamodb_topic}[{p}]" for p in range(partitions)]
    results = [simulate_merged_purchase_windows(arrived, sources) for arrived in arrivals.values()]
    return WindowedResult(
        set().union(*(result.rows for result in results)),
        [late for result in results for late in result.late],
    )


def run_and_compare(
    settings: Settings, pstreams, dataset: Path, partitions: int, in_event_time_order: bool
) -> None:
    """As an operator would: `pstreams seed load`, `pstreams run --all`, `pstreams wait`."""
    assert pstreams("seed", "load", str(dataset), "--partitions", str(partitions)).wait() == 0
    supervisor = pstreams("run", "--all")
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None
    topologies = all_topologies()
    expected = derived_tables(SourceState.from_directory(dataset))
    actual = read_tables(settings.sqlalchemy_url, settings.postgres_schema)
    built = {name: expected[name] for name in topologies}
    if WINDOWED in built:
        windows = windows_as_read(settings, partitions)
        if in_event_time_order:  # nothing is late: the closed windows are batch rows
            assert not windows.late and windows.rows
            assert windows.rows <= expected[WINDOWED]
        built[WINDOWED] = windows.rows
    assert diff(built, {name: actual.get(name, set()) for name in topologies}) == []


def test_the_demo_dataset(settings: Settings, pstreams) -> None:
    run_and_compare(settings, pstreams, DEMO, partitions=1, in_event_time_order=True)


@pytest.mark.parametrize("order", ["shuffled", "event-time"])
def test_a_skewed_dataset_with_bursts_on_three_partitions(
    settings: Settings, pstreams, tmp_path: Path, order: str
) -> None:
    options = SeedOptions(
        users=60,
        items=25,
        interactions=1500,
        reviews=120,
        seed=5,
        order=order,
        bursts=12,
        skew=1.0,
        changes=60,
    )
    write_dataset(generate(options), tmp_path / "dataset")
    run_and_compare(
        settings, pstreams, tmp_path / "dataset", 3, in_event_time_order=order == "event-time"
    )
