"""Emulations of the two Confluent source connectors: the key and value bytes they write.

`pstreams seed load` and the tests use them to put CDC records into topics exactly as
`PostgresCdcSourceV2` (Debezium) and `DynamoDbCdcSource` + `ExtractField$Value(after)`
would, schemas registered under `<topic>-key` / `<topic>-value` like Confluent's
AvroConverter does. The writer schemas live in `schemas/cdc/`; see docs/decoding.md for
the shapes and which parts of them are confirmed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from processor.avro import AvroEncoder, SchemaRegistry, load_schema
from processor.cdc.debezium_types import Conversions, debezium_conversions
from processor.cdc.debezium_types import to_debezium as convert_row
from processor.cdc.dynamodb import Item, string_attribute

PostgresShape = Literal["after-state", "rewrite", "envelope"]
"""`after.state.only=true` (production) | ExtractNewRecordState rewrite | full envelope."""
DynamoDbShape = Literal["document", "envelope"]
"""After `ExtractField$Value(after)` (production) | the connector's own envelope."""

DYNAMODB_KEY_ATTRIBUTES = ("user_id", "timestamp")
"""The table's hash and range keys, both typed S."""

# Debezium's own field, as ExtractNewRecordState's rewrite mode adds it.
_DELETED_FIELD = {"name": "__deleted", "type": ["null", "string"], "default": None}
_ZERO_VALUES = {"string": "", "int": 0, "long": 0, "float": 0.0, "double": 0.0, "boolean": False}
_INVALID_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_]")
_EMULATED_VERSION = "emulated"


class CdcRecord(NamedTuple):
    """One Kafka record as a connector writes it; a null value is a tombstone."""

    key: bytes | None
    value: bytes | None


def avro_namespace(name: str) -> str:
    """A dotted name as Confluent's AvroData scrubs it into a valid Avro namespace.

    Invalid characters become `_` and a segment starting with a digit gets an `x`
    (table `t8.0.1` -> `t8.x0.x1`, as observed from the DynamoDB connector).
    """
    segments = (_INVALID_NAME_CHARACTER.sub("_", segment) for segment in name.split("."))
    return ".".join(f"x{segment}" if segment[:1].isdigit() else segment for segment in segments)


def _with_row_type(envelope: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The envelope template with the row record defined where `before` first names it."""
    before = next(field for field in envelope["fields"] if field["name"] == "before")
    before["type"] = ["null", row]
    return envelope


def _document(item: Item) -> dict[str, str]:
    return {"document": json.dumps(item, ensure_ascii=False, separators=(",", ":"))}


@dataclass
class _PostgresTable:
    """One captured table: its encoders, columns and which keys exist (c versus u)."""

    name: str
    key_encoder: AvroEncoder
    value_encoder: AvroEncoder
    key_columns: tuple[str, ...]
    row_record: dict[str, Any]
    conversions: Conversions
    existing_keys: set[tuple[Any, ...]] = field(default_factory=set)

    def key(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        missing = [name for name in self.key_columns if columns.get(name) is None]
        if missing:
            raise ValueError(f"{self.name}: the key column(s) {', '.join(missing)} are missing")
        return convert_row({name: columns[name] for name in self.key_columns}, self.conversions)

    def row(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        """A whole row in Debezium's representation, NULLs as AvroData writes them."""
        unknown = columns.keys() - {field["name"] for field in self.row_record["fields"]}
        if unknown:
            raise ValueError(f"{self.name}: no column(s) {', '.join(sorted(unknown))}")
        row = convert_row(columns, self.conversions)
        for column in self.row_record["fields"]:
            if row.get(column["name"]) is None:
                row[column["name"]] = self._null(column)
        return row

    def key_only_row(self, key: Mapping[str, Any]) -> dict[str, Any]:
        """The `before` of a delete under REPLICA IDENTITY DEFAULT: only the key is known.

        Non-key NOT NULL columns get their type's zero value, for want of anything else.
        """
        row = dict(key)
        for column in self.row_record["fields"]:
            if column["name"] not in row:
                nullable = isinstance(column["type"], list)
                row[column["name"]] = (
                    self._null(column) if nullable else _zero_value(column["type"])
                )
        return row

    def _null(self, column: dict[str, Any]) -> Any:
        # AvroData with ignore.default.for.nullables=false (Confluent Cloud's default)
        # writes the column's default, if it has one, in place of a NULL.
        if column.get("default") is not None:
            return column["default"]
        if not isinstance(column["type"], list):
            raise ValueError(f"{self.name}.{column['name']} is NOT NULL but has no value")
        return None


def _zero_value(avro_type: Any) -> Any:
    """What stands for an unknown NOT NULL column (Debezium's choice is unconfirmed)."""
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "decimal":
            return Decimal(0)
        avro_type = avro_type["type"]
    return _ZERO_VALUES[avro_type]


class PostgresCdcEmulator:
    """`PostgresCdcSourceV2` writing the tables of schema `user_data` (topic per table)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        topic_prefix: str,
        shape: PostgresShape = "after-state",
        database: str = "postgres",
    ) -> None:
        self._registry = registry
        self._prefix = topic_prefix
        self._shape = shape
        self._database = database
        self._tables: dict[str, _PostgresTable] = {}
        self._lsn = 0

    def topic(self, table: str) -> str:
        return f"{self._prefix}.user_data.{table}"

    def upsert(self, table: str, row: Mapping[str, Any], *, snapshot: bool = False) -> CdcRecord:
        """The record of an insert or update (`op` r when `snapshot`, else c or u)."""
        captured = self._table(table)
        key = captured.key(row)
        after = captured.row(row)
        identity = tuple(key.values())
        op = "r" if snapshot else "u" if identity in captured.existing_keys else "c"
        captured.existing_keys.add(identity)
        if self._shape == "after-state":
            value: Any = after
        elif self._shape == "rewrite":
            value = after | {"__deleted": "false"}
        else:
            value = self._envelope(table, op, before=None, after=after)
        return CdcRecord(captured.key_encoder.encode(key), captured.value_encoder.encode(value))

    def delete(self, table: str, key: Mapping[str, Any]) -> list[CdcRecord]:
        """The records of a delete: the shape's delete record, if any, then a tombstone."""
        captured = self._table(table)
        key_columns = captured.key(key)
        captured.existing_keys.discard(tuple(key_columns.values()))
        key_bytes = captured.key_encoder.encode(key_columns)
        tombstone = CdcRecord(key_bytes, None)
        if self._shape == "after-state":
            return [tombstone]
        before = captured.key_only_row(key_columns)
        if self._shape == "rewrite":
            value = before | {"__deleted": "true"}
        else:
            value = self._envelope(table, "d", before=before, after=None)
        return [CdcRecord(key_bytes, captured.value_encoder.encode(value)), tombstone]

    def _envelope(
        self, table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> dict[str, Any]:
        now_ns = time.time_ns()
        self._lsn += 1
        source = {
            "version": _EMULATED_VERSION,
            "connector": "postgresql",
            "name": self._prefix,
            "ts_ms": now_ns // 1_000_000,
            "snapshot": "true" if op == "r" else "false",
            "db": self._database,
            "sequence": json.dumps([str(self._lsn - 1), str(self._lsn)]),
            "ts_us": now_ns // 1_000,
            "ts_ns": now_ns,
            "schema": "user_data",
            "table": table,
            "txId": self._lsn,
            "lsn": self._lsn,
            "xmin": None,
        }
        return {
            "before": before,
            "after": after,
            "source": source,
            "transaction": None,
            "op": op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1_000,
            "ts_ns": now_ns,
        }

    def _table(self, table: str) -> _PostgresTable:
        captured = self._tables.get(table)
        if captured is None:
            captured = self._tables[table] = self._register(table)
        return captured

    def _register(self, table: str) -> _PostgresTable:
        topic = self.topic(table)
        namespace = avro_namespace(topic)
        key_record = load_schema(f"cdc/{table}.key", namespace=namespace)
        row_record = load_schema(f"cdc/{table}.value", namespace=namespace)
        if self._shape == "after-state":
            value_schema: Any = ["null", row_record]
        elif self._shape == "rewrite":
            value_schema = row_record | {"fields": [*row_record["fields"], _DELETED_FIELD]}
        else:
            envelope = load_schema("cdc/postgres.envelope", namespace=namespace)
            value_schema = _with_row_type(envelope, row_record)
        return _PostgresTable(
            name=table,
            key_encoder=self._registry.encoder(f"{topic}-key", key_record),
            value_encoder=self._registry.encoder(f"{topic}-value", value_schema),
            key_columns=tuple(column["name"] for column in key_record["fields"]),
            row_record=row_record,
            conversions=debezium_conversions(row_record, {}),
        )


class DynamoDbCdcEmulator:
    """`DynamoDbCdcSource` (+ `ExtractField$Value(after)` in the "document" shape)."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, shape: DynamoDbShape = "document"
    ) -> None:
        self.topic = topic
        self._shape = shape
        # The topic is named after the table (no prefix or suffix routing).
        namespace = avro_namespace(f"io.confluent.connect.dynamodb.{topic}")
        row = load_schema("cdc/dynamodb.value", namespace=namespace)
        if shape == "envelope":
            row = _with_row_type(load_schema("cdc/dynamodb.envelope", namespace=namespace), row)
        self._key_encoder = registry.encoder(f"{topic}-key", load_schema("cdc/dynamodb.key"))
        # Optional at the top level: AvroData writes the optional Connect schema as a union.
        self._value_encoder = registry.encoder(f"{topic}-value", ["null", row])
        self._snapshot_started_ms = time.time_ns() // 1_000_000
        self._snapshot_count = 0
        self._sequence_number = 0

    def insert(self, item: Item, *, snapshot: bool = False) -> CdcRecord:
        """The record of a PutItem (`op` c) or of a snapshot scan (`op` r)."""
        if self._shape == "document":
            return CdcRecord(self._key(item), self._value_encoder.encode(_document(item)))
        envelope = self._envelope("r" if snapshot else "c", before=None, after=_document(item))
        return CdcRecord(self._key(item), self._value_encoder.encode(envelope))

    def remove(self, item: Item) -> CdcRecord:
        """The record of a REMOVE (a DeleteItem or a TTL expiry) of `item`."""
        if self._shape == "document":
            return CdcRecord(self._key(item), None)
        envelope = self._envelope("d", before=_document(item), after=None)
        return CdcRecord(self._key(item), self._value_encoder.encode(envelope))

    def _key(self, item: Item) -> bytes:
        key = {name: string_attribute(item, name) for name in DYNAMODB_KEY_ATTRIBUTES}
        missing = [name for name, value in key.items() if value is None]
        if missing:
            raise ValueError(f"item lacks the S key attribute(s) {', '.join(missing)}")
        return self._key_encoder.encode(key)

    def _envelope(
        self, op: str, before: dict[str, str] | None, after: dict[str, str] | None
    ) -> dict[str, Any]:
        now_ns = time.time_ns()
        source: dict[str, Any] = {
            "version": None,
            "tableName": self.topic,
            "sync_mode": "SNAPSHOT" if op == "r" else "CDC",
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1_000,
            "ts_ns": now_ns,
        }
        if op == "r":
            self._snapshot_count += 1
            source |= {
                "snapshotStartTime": self._snapshot_started_ms,
                "snapshotCount": self._snapshot_count,
                "segment": 0,
                "totalSegments": 1,
            }
        else:
            self._sequence_number += 1
            source |= {"shard_id": "shardId-00000001", "seq_no": str(self._sequence_number)}
        return {
            "op": op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1_000,
            "ts_ns": now_ns,
            "source": source,
            "before": before,
            "after": after,
        }
