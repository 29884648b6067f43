"""interaction_data end to end: DynamoDB CDC topic -> topology process -> PostgreSQL and topic.

Real broker, real registry, real PostgreSQL; the topology runs as `pstreams run`, and
`pstreams wait` decides when it has caught up.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer

from processor.avro import SchemaRegistry
from processor.connectors import DynamoDbCdcEmulator
from processor.settings import Settings
from processor.topics import create_topics
from tests.integration.support import (
    assert_interactions_published_once,
    generated_items,
    produce,
    read_topic,
    wait,
)

pytestmark = pytest.mark.integration

COLUMNS = (
    "current_page_url",
    "action_type",
    "item_id",
    "user_id",
    "browser_type",
    "session_id",
    "device_type",
    "referrer_url",
)


def expected_row(item: dict[str, Any]) -> dict[str, Any]:
    """SPEC 2.1 computed straight from the item: S values, else NULL."""
    row = {name: item.get(name, {}).get("S") for name in COLUMNS}
    row["event_time_ltz"] = datetime.fromtimestamp(int(item["timestamp"]["S"]), UTC)
    return row


def table_rows(settings: Settings) -> list[dict[str, Any]]:
    engine = sa.create_engine(settings.sqlalchemy_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                f"SELECT * FROM {settings.postgres_schema}.interaction_data "
                "ORDER BY source_partition, source_offset"
            )
        )
        return [dict(row._mapping) for row in rows]


def test_rows_dead_letters_and_a_killed_topology(settings: Settings, stack_env, pstreams) -> None:
    registry = SchemaRegistry(settings)
    emulator = DynamoDbCdcEmulator(registry, settings.dynamodb_topic)
    # The source takes records up to 3 MB, more than a dead letter may have (1 MB).
    create_topics(
        settings.kafka_config,
        [settings.dynamodb_topic],
        partitions=2,
        config={"max.message.bytes": "3000000"},
    )
    good = generated_items(2150, seed=7)
    not_integer = dict(good[0], timestamp={"S": "1700000000.5"})
    # A document that is not JSON: a well-formed record of a valid schema, garbage inside.
    document_schema = {
        "type": "record",
        "name": "Value",
        "fields": [{"name": "document", "type": ["null", "string"], "default": None}],
    }
    not_json = registry.encoder("not-json-value", document_schema).encode({"document": "{no"})
    # PostgreSQL's text cannot hold a NUL: the row would fail every flush.
    with_nul = dict(good[2], session_id={"S": "a\x00b"})
    # A device clock years ahead: Kafka 4 refuses a record an hour ahead of its clock.
    ahead = dict(good[3], timestamp={"S": str(int(time.time()) + 2 * 3600)})
    soon = dict(good[4], timestamp={"S": str(int(time.time()) + 600)}, session_id={"S": "soon"})
    bad_records = {
        emulator.insert(ahead).value: "ahead of the clock",
        b"\x07not avro at all": "wire format",
        emulator.insert(not_integer).value: "not an integer",
        emulator.insert(with_nul).value: "NUL",
        not_json: "JSON",
    }
    remove = emulator.remove(good[1])
    produce(
        settings,
        [tuple(emulator.insert(item)) for item in good[:150]]
        + [(b"bad", value) for value in bad_records]
        + [tuple(emulator.insert(soon))]
        + [tuple(remove)],
    )

    oversized = b"\x07" + bytes(1_500_000)
    large = Producer(settings.producer_config | {"message.max.bytes": 3_000_000})
    large.produce(settings.dynamodb_topic, key=b"big", value=oversized, partition=0)
    assert large.flush(30) == 0

    topology = pstreams("run", "interaction_data")
    wait(stack_env, "interaction_data")
    rows = table_rows(settings)
    assert len(rows) == 151
    (soon_row,) = [row for row in rows if row["session_id"] == "soon"]  # 10 min ahead: kept
    assert soon_row["event_time_ltz"] == expected_row(soon)["event_time_ltz"]
    before_kill = read_topic(settings, settings.interactions_topic)
    assert len(before_kill) == 151, "a run without crash publishes each interaction once"

    # A SIGKILL in the middle of the second half, then a restart: nothing lost or doubled.
    produce(settings, [tuple(emulator.insert(item)) for item in good[150:]])
    time.sleep(random.Random(3).uniform(0.2, 1.5))
    topology.send_signal(signal.SIGKILL)
    topology.wait(timeout=30)
    pstreams("run", "interaction_data")
    wait(stack_env, "interaction_data")

    rows = table_rows(settings)
    assert sorted((r["event_time_ltz"], r["session_id"]) for r in rows) == sorted(
        (e["event_time_ltz"], e["session_id"]) for e in map(expected_row, [*good, soon])
    )
    by_time = {row["event_time_ltz"]: row for row in rows}
    for item in good:
        expected = expected_row(item)
        assert {k: by_time[expected["event_time_ltz"]][k] for k in expected} == expected

    # Exactly-once: the killed transaction's records are invisible to read_committed
    # readers, so the topic holds each interaction once, with its identity.
    published = read_topic(settings, settings.interactions_topic)
    captured = {
        (m.partition(), m.offset()): m.timestamp()[1]
        for m in read_topic(settings, settings.dynamodb_topic)
    }
    for message in published:
        value, _ = registry.decode(message.value())
        assert message.key() == (value["user_id"].encode() if value["user_id"] else None)
        # Stamped as the DynamoDB record was, not with the event time.
        source = (value["source_partition"], value["source_offset"])
        assert message.timestamp()[1] == captured[source]
    assert_interactions_published_once(settings)

    dead = read_topic(settings, settings.dead_letter_topic_for("interaction_data"))
    (without_value,) = [m for m in dead if m.value() is None]
    dropped = dict(without_value.headers())
    assert dropped["pstreams.value.dropped"] == str(len(oversized)).encode()
    assert b"wire format" in dropped["pstreams.error"]
    dead = [m for m in dead if m is not without_value]
    assert sorted(m.value() for m in dead) == sorted(bad_records)
    offsets = {
        m.value(): (m.partition(), m.offset())
        for m in read_topic(settings, settings.dynamodb_topic)
    }
    for message in dead:
        headers = dict(message.headers())
        assert headers["pstreams.source.topic"] == settings.dynamodb_topic.encode()
        assert headers["pstreams.topology"] == b"interaction_data"
        coordinates = (
            int(headers["pstreams.source.partition"]),
            int(headers["pstreams.source.offset"]),
        )
        assert coordinates == offsets[message.value()]
        assert bad_records[message.value()] in headers["pstreams.error"].decode()
