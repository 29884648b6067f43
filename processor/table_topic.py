"""A derived table published to a compacted Kafka topic, as the replaced Flink table was.

The consumers of Flink's tables (a JDBC sink connector, a team's own service) read a
topic of the table's name: Avro values in the Confluent wire format under
`<topic>-value`, keyed by an Avro record of the primary key under `<topic>-key`, a
tombstone when a row leaves the table. Both schemas are derived from the table's
columns, so the topic cannot drift from the PostgreSQL table.

The records are produced while the table's sink flushes, by the checkpoint's own
producer: under exactly-once they commit in the Kafka transaction that commits the
input offsets, and a dropped checkpoint leaves nothing a read_committed reader sees.
A row PostgreSQL refused stays out of the topic too, so the two stay equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from quixstreams.internal_producer import InternalProducer

from processor.avro import AvroEncoder, SchemaRegistry
from processor.sinks.postgres import Changes, Origin, Values, row_key

NAMESPACE = "personalization_streams"


def avro_type(column: sa.Column) -> Any:
    """The Avro type of a column's values; NULL-able columns are unions with null."""
    if isinstance(column.type, sa.BigInteger):
        base: Any = "long"
    elif isinstance(column.type, sa.Integer):
        base = "int"
    elif isinstance(column.type, sa.TIMESTAMP):
        base = {"type": "long", "logicalType": "timestamp-millis"}
    elif isinstance(column.type, sa.Text):
        base = "string"
    else:
        raise TypeError(f"column {column.name}: no Avro type for {column.type!r}")
    return ["null", base] if column.nullable else base


def record_schema(name: str, columns: list[sa.Column]) -> dict[str, Any]:
    fields = []
    for column in columns:
        field: dict[str, Any] = {"name": column.name, "type": avro_type(column)}
        if column.nullable:
            field["default"] = None
        fields.append(field)
    return {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}


def key_schema(table: sa.Table) -> dict[str, Any]:
    """The record of the columns that identify a row (`row_key`), in their order."""
    return record_schema(f"{table.name}_key", row_key(table))


def value_schema(table: sa.Table) -> dict[str, Any]:
    """The record of every column, key columns included, as Flink's upsert topics hold."""
    return record_schema(table.name, list(table.columns))


class TableTopic:
    """Produces a flush's changes of one table to its topic, with the checkpoint's producer."""

    def __init__(
        self,
        topic: str,
        table: sa.Table,
        registry: SchemaRegistry,
        producer: InternalProducer,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._key_names = [column.name for column in row_key(table)]
        self._value_names = [column.name for column in table.columns]
        self._keys: AvroEncoder = registry.encoder(f"{topic}-key", key_schema(table))
        self._values: AvroEncoder = registry.encoder(f"{topic}-value", value_schema(table))

    def publish(self, changes: Changes, origins: Mapping[Values, Origin]) -> None:
        """One record per changed row: its absolute value, or a tombstone. The topic's
        records are the table's rows, so where they came from is not part of them."""
        produce = self._producer.produce
        keys, values = self._key_names, self._value_names
        encode_key, encode_value = self._keys.encode, self._values.encode
        for key, row in changes.items():
            produce(
                topic=self.topic,
                key=encode_key(dict(zip(keys, key, strict=True))),
                value=None if row is None else encode_value(dict(zip(values, row, strict=True))),
            )
