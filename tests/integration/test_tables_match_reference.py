"""Every derived table, produced by the real topologies from a loaded dataset, equals the
independent reference model of SPEC section 2 row for row."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.seed import SeedOptions, generate, write_dataset
from processor.settings import Settings
from tests.integration.support import differences, expected_tables

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"


def run_and_compare(
    settings: Settings, pstreams, dataset: Path, partitions: int, in_event_time_order: bool
) -> None:
    """As an operator would: `pstreams seed load`, `pstreams run --all`, `pstreams wait`."""
    assert pstreams("seed", "load", str(dataset), "--partitions", str(partitions)).wait() == 0
    supervisor = pstreams("run", "--all")
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None
    expected = expected_tables(settings, dataset, partitions, in_event_time_order)
    assert differences(settings, expected) == []


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
