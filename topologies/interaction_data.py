"""`interaction_data` (SPEC 2.1): one row per DynamoDB interaction record.

Each attribute's value is its `S` string, else NULL; `event_time_ltz` is the `timestamp`
attribute read as integer epoch seconds. A record whose timestamp is missing, not a
string or not an integer, or more than `EVENT_TIME_MAX_AHEAD_S` ahead of the clock (a
device with a broken clock), or with a NUL character in a column (PostgreSQL's text
cannot hold one), is bad input and goes to the dead-letter topic.

The rows are also published to the `interaction_data` topic (Avro, keyed by user_id)
that the analytics topologies consume. Each keeps its DynamoDB record's Kafka timestamp
(when the connector captured it), as Flink keeps a row's `$rowtime`: stamped with the
event time, a backfill of old interactions would be old at once to the topic's
time-based retention, and one from a fast device clock refused by Kafka.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from processor import storable
from processor.avro import load_schema
from processor.cdc.dynamodb import DynamoDbCdcDecoder, string_attribute
from processor.changes import TableChange
from processor.errors import DecodeError
from processor.pipeline import Pipeline, SourceRecord
from processor.sqlcast import cast_integer
from processor.topology import Topology

ATTRIBUTES = (
    "current_page_url",
    "action_type",
    "item_id",
    "user_id",
    "browser_type",
    "session_id",
    "device_type",
    "referrer_url",
)

TABLE = sa.Table(
    "interaction_data",
    sa.MetaData(),
    *(sa.Column(name, sa.Text) for name in ATTRIBUTES),
    sa.Column("event_time_ltz", sa.TIMESTAMP(timezone=True), nullable=False),
    # The source record's identity: reprocessing a record rewrites its row.
    sa.Column("source_topic", sa.Text, primary_key=True),
    sa.Column("source_partition", sa.Integer, primary_key=True),
    sa.Column("source_offset", sa.BigInteger, primary_key=True),
)

LOWEST_SECOND = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
HIGHEST_SECOND = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def event_time_ms(timestamp: str | None, max_ahead_s: float) -> int:
    """Epoch milliseconds of the `timestamp` attribute (integer epoch seconds), at most
    `max_ahead_s` ahead of this machine's clock."""
    seconds = cast_integer(timestamp, bits=64)
    if seconds is None:
        raise DecodeError(f"timestamp {timestamp!r} is not an integer number of seconds")
    if not LOWEST_SECOND <= seconds <= HIGHEST_SECOND:
        raise DecodeError(f"timestamp {timestamp!r} is outside the range of a timestamp")
    ahead = seconds - time.time()
    if ahead > max_ahead_s:
        raise DecodeError(
            f"timestamp {timestamp} is {ahead:.0f} s ahead of the clock, more than"
            f" EVENT_TIME_MAX_AHEAD_S ({max_ahead_s:g} s)"
        )
    return seconds * 1000


def interaction(
    decoder: DynamoDbCdcDecoder, record: SourceRecord, max_ahead_s: float
) -> dict[str, Any] | None:
    """The interaction_data row of one DynamoDB CDC record; None for a REMOVE."""
    item = decoder.decode(record.value, record.headers)
    if item is None:
        return None
    row: dict[str, Any] = {
        name: storable.text(string_attribute(item, name), name) for name in ATTRIBUTES
    }
    row["event_time_ltz"] = event_time_ms(string_attribute(item, "timestamp"), max_ahead_s)
    row["source_topic"] = record.topic
    row["source_partition"] = record.partition
    row["source_offset"] = record.offset
    return row


def table_change(row: dict[str, Any]) -> TableChange:
    columns = dict(row)
    columns["event_time_ltz"] = datetime.fromtimestamp(row["event_time_ltz"] / 1000, UTC)
    return TableChange(
        (row["source_topic"], row["source_partition"], row["source_offset"]), columns
    )


def build(pipeline: Pipeline) -> Any:
    decoder = DynamoDbCdcDecoder(pipeline.registry)
    max_ahead_s = pipeline.settings.event_time_max_ahead_s
    interactions = pipeline.source(
        pipeline.settings.dynamodb_topic, lambda record: interaction(decoder, record, max_ahead_s)
    )
    interactions.to_topic(
        pipeline.avro_topic(
            pipeline.settings.interactions_topic, load_schema("tables/interaction_data")
        ),
        key=lambda row: row["user_id"],
    )
    return interactions.apply(table_change)


TOPOLOGY = Topology(
    name="interaction_data",
    table=TABLE,
    inputs=lambda settings: (settings.dynamodb_topic,),
    build=build,
    outputs=lambda settings: (settings.interactions_topic,),
    table_topic=False,  # its rows are published to INTERACTIONS_TOPIC, for the analytics
)
