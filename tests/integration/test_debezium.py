"""Real Debezium: the CDC records of the PostgreSQL tables written by the Debezium
PostgreSQL connector on Kafka Connect, through Apicurio's converter, from rows in the
stack's PostgreSQL (`pstreams seed load --cdc debezium`)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from processor.avro import SchemaRegistry
from processor.cdc.postgres import PostgresCdcDecoder, RowChange
from processor.debezium import DebeziumConnector, DebeziumShape
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader
from processor.settings import Settings
from tests.integration.support import differences, expected_tables, read_topic

pytestmark = pytest.mark.integration

TABLES = ("categories", "users", "items", "reviews")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Small, but with every kind of change: updates and deletes of all four tables."""
    options = SeedOptions(users=40, items=20, interactions=400, reviews=60, seed=8, changes=80)
    write_dataset(generate(options), tmp_path / "dataset")
    return tmp_path / "dataset"


@pytest.fixture
def debezium(settings: Settings) -> Iterator[None]:
    """The connector of the test's topic prefix is removed, with its replication slot."""
    yield
    connector = DebeziumConnector(settings)
    try:
        connector.remove()
    finally:
        connector.close()


def decoded_changes(settings: Settings) -> dict[str, list[RowChange]]:
    """Every record of the four CDC topics, decoded, per table in offset order."""
    decoder = PostgresCdcDecoder(SchemaRegistry(settings))
    changes = defaultdict(list)
    for table in TABLES:
        for message in read_topic(settings, settings.pg_topic(table)):
            changes[table].append(
                decoder.decode(message.topic(), message.key(), message.value(), message.headers())
            )
    return dict(changes)


@pytest.mark.parametrize("shape", ["envelope", "rewrite"])
def test_debezium_capture_gives_tables_equal_to_the_reference(
    settings: Settings, pstreams, debezium: None, dataset: Path, shape: str
) -> None:
    load = pstreams("seed", "load", str(dataset), "--cdc", "debezium", "--shape", shape)
    assert load.wait() == 0
    supervisor = pstreams("run", "--all")
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None
    expected = expected_tables(settings, dataset, partitions=1, in_event_time_order=True)
    assert differences(settings, expected) == []


@pytest.mark.parametrize("shape", ["envelope", "rewrite"])
def test_debezium_and_the_emulated_connector_decode_to_the_same_changes(
    settings: Settings, debezium: None, dataset: Path, shape: DebeziumShape
) -> None:
    DatasetLoader(settings, postgres_shape=shape, capture="debezium").load(dataset)
    # The emulation's records, of the same rows, in a database and topics of their own.
    database = f"e{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    emulated = settings.model_copy(
        update={
            "postgres_url": settings.postgres_url.rsplit("/", 1)[0] + f"/{database}",
            "pg_topic_prefix": f"{settings.pg_topic_prefix}-emulated",
            "dynamodb_topic": f"{settings.dynamodb_topic}-emulated",
        }
    )
    DatasetLoader(emulated, postgres_shape=shape).load(dataset)

    captured = decoded_changes(settings)
    assert sum(map(len, captured.values())) > 0
    assert {change.op for changes in captured.values() for change in changes} == {
        "upsert",
        "delete",
    }
    assert captured == decoded_changes(emulated)
