"""The derived tables published to compacted Kafka topics (`TABLE_TOPICS`): read as a
consumer of the replaced Flink tables reads them, each topic equals its PostgreSQL
table, deletes included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient, ConfigResource

from processor.avro import SchemaRegistry
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.support import read_topic

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"


def topic_as_table(settings: Settings, topic: str) -> tuple[set[tuple[Any, ...]], int]:
    """The rows a read_committed reader of the whole topic ends with (the last value of
    each key, none for a key whose last record is a tombstone), and the tombstones read."""
    registry = SchemaRegistry(settings)
    latest: dict[bytes, dict[str, Any] | None] = {}
    tombstones = 0
    for message in read_topic(settings, topic):
        registry.decode(message.key())  # every key is a registered Avro record
        if message.value() is None:
            tombstones += 1
            latest[message.key()] = None
        else:
            latest[message.key()] = registry.decode(message.value())[0]
    rows = {tuple(row.values()) for row in latest.values() if row is not None}
    return rows, tombstones


def table_rows(settings: Settings, table: sa.Table) -> set[tuple[Any, ...]]:
    engine = sa.create_engine(
        settings.sqlalchemy_url,
        execution_options={"schema_translate_map": {None: settings.postgres_schema}},
    )
    try:
        with engine.connect() as connection:
            return {tuple(row) for row in connection.execute(sa.select(table))}
    finally:
        engine.dispose()


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
    topologies = {name: t for name, t in all_topologies().items() if t.table_topic}
    topics = {name: f"{settings.pg_topic_prefix}-{name}" for name in topologies}
    env = stack_env | {"TABLE_TOPICS": ",".join(f"{n}={t}" for n, t in topics.items())}
    assert pstreams("seed", "load", str(DEMO)).wait() == 0
    supervisor = pstreams("run", "--all", env=env)
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None

    assert cleanup_policies(settings, list(topics.values())) == {"compact"}
    tombstones = 0
    for name, topology in topologies.items():
        rows, deleted = topic_as_table(settings, topics[name])
        expected = table_rows(settings, topology.table)
        assert expected, f"{name} is empty: nothing to compare"
        assert rows == expected, f"{name}: topic {topics[name]} differs from the table"
        tombstones += deleted
    assert tombstones, "no row left a table: deletes were not exercised"
