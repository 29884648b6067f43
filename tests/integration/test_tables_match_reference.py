"""Every derived table, produced by the real topologies from a loaded dataset, equals the
independent reference model of SPEC section 2 row for row."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from processor.seed import SeedOptions, generate, write_dataset
from processor.settings import Settings
from processor.topology import all_topologies
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
    check_topic_configurations(settings)


def check_topic_configurations(settings: Settings) -> None:
    """The topics the topologies created exist on Kafka with their cleanup policy: state
    changelogs compacted, everything else (internal stages, the interactions topic, dead
    letters) deleted by retention."""
    admin = AdminClient(settings.kafka_config)
    groups = [settings.consumer_group(name) for name in all_topologies()]
    created = [
        name
        for name in admin.list_topics(timeout=10).topics
        if any(f"__{group}--" in name for group in groups)
        or name == settings.interactions_topic
        or name in {settings.dead_letter_topic_for(topology) for topology in all_topologies()}
    ]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in created]
    policies = {
        resource.name: future.result(timeout=10)["cleanup.policy"].value
        for resource, future in admin.describe_configs(resources).items()
    }
    changelogs = {name for name in created if name.startswith("changelog__")}
    stateful = {group for group in groups if any(f"__{group}--" in c for c in changelogs)}
    assert len(stateful) == len(groups) - 1, "every analytics topology keeps state"
    assert any(name.startswith("repartition__") for name in created)
    assert settings.dead_letter_topic_for("interaction_data") in created
    assert {name: policies[name] for name in changelogs} == dict.fromkeys(changelogs, "compact")
    others = set(created) - changelogs
    assert {name: policies[name] for name in others} == dict.fromkeys(others, "delete")


# Shuffled is the harder order; event-time order runs by default in the demo and crash
# tests, so this variant is `slow` (docs/testing.md: the default run under 15 minutes).
@pytest.mark.parametrize("order", ["shuffled", pytest.param("event-time", marks=pytest.mark.slow)])
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
