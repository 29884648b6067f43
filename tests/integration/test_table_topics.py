"""The derived tables published to compacted Kafka topics (`TABLE_TOPICS`): read as a
consumer of the replaced Flink tables reads them, each topic equals its PostgreSQL
table, deletes included, and so does the copy that Debezium's JDBC sink connector makes
of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from processor.settings import Settings
from tests.integration.support import (
    assert_jdbc_copies_equal_tables,
    assert_table_topics_equal_tables,
    table_topic_names,
)

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"


def cleanup_policies(settings: Settings, topics: list[str]) -> set[str]:
    admin = AdminClient(settings.kafka_config)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
    return {
        future.result(timeout=10)["cleanup.policy"].value
        for future in admin.describe_configs(resources).values()
    }


def test_each_table_topic_equals_its_table(
    settings: Settings, stack_env: dict[str, str], pstreams
) -> None:
    """The demo dataset through `pstreams run --all`, every table published to a topic
    of the test's own name (`TABLE_TOPICS`, `topology=topic`)."""
    topics = table_topic_names(settings)
    env = stack_env | {"TABLE_TOPICS": ",".join(f"{n}={t}" for n, t in topics.items())}
    assert pstreams("seed", "load", str(DEMO)).wait() == 0
    supervisor = pstreams("run", "--all", env=env)
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None

    assert cleanup_policies(settings, list(topics.values())) == {"compact"}
    tombstones = assert_table_topics_equal_tables(settings, topics)
    assert tombstones, "no row left a table: deletes were not exercised"

    # A consumer no one here wrote: Debezium's JDBC sink connector, on Kafka Connect,
    # copies the topics into a schema of its own; each copy equals its table.
    assert_jdbc_copies_equal_tables(settings, topics)
