"""Every derived table, produced by the real topologies from a loaded dataset, equals the
independent reference model of SPEC section 2 row for row."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.progress import wait_until_caught_up
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader
from processor.settings import Settings
from processor.topology import all_topologies
from tests.reference.compare import diff, read_tables
from tests.reference.model import SourceState, derived_tables

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"


def run_and_compare(settings: Settings, pstreams, dataset: Path, partitions: int) -> None:
    DatasetLoader(settings, partitions).load(dataset)
    supervisor = pstreams("run", "--all")
    topologies = all_topologies()
    lags = wait_until_caught_up(settings, list(topologies.values()), timeout=300)
    assert not lags, [str(lag) for lag in lags]
    assert supervisor.poll() is None
    expected = derived_tables(SourceState.from_directory(dataset))
    actual = read_tables(settings.sqlalchemy_url, settings.postgres_schema)
    built = {name: expected[name] for name in topologies}
    assert diff(built, {name: actual.get(name, set()) for name in topologies}) == []


def test_the_demo_dataset(settings: Settings, pstreams) -> None:
    run_and_compare(settings, pstreams, DEMO, partitions=1)


def test_a_shuffled_skewed_dataset_on_three_partitions(
    settings: Settings, pstreams, tmp_path: Path
) -> None:
    options = SeedOptions(
        users=60,
        items=25,
        interactions=1500,
        reviews=120,
        seed=5,
        order="shuffled",
        skew=1.0,
        changes=60,
    )
    write_dataset(generate(options), tmp_path / "dataset")
    run_and_compare(settings, pstreams, tmp_path / "dataset", partitions=3)
