"""`pstreams seed load DIR`: a dataset into the running stack, as the connectors would put it.

Rows go into the source tables (schema `user_data`) and, in the same order, their CDC
records into the topics: the snapshot first (categories, users, items, reviews, then
the interactions), then `changes.jsonl` line by line. The topics are created when
missing. The PostgreSQL CDC records are emulated (`processor.connectors`), or written by
a real Debezium connector that captures the rows (`processor.debezium`); the DynamoDB
connector has no local equivalent, so its records are always emulated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from confluent_kafka import Producer
from sqlalchemy.dialects.postgresql import insert

from processor.avro import SchemaRegistry
from processor.connectors import (
    DynamoDbCdcEmulator,
    DynamoDbShape,
    PostgresCdcEmulator,
    PostgresShape,
)
from processor.debezium import SHAPES, DebeziumConnector
from processor.seed import database
from processor.settings import Settings
from processor.topics import create_topics

SNAPSHOT_ORDER = ("categories", "users", "items", "reviews")

LoadPart = Literal["rows", "interactions"]
"""`rows`: source rows only, for a real CDC connector to capture (deploy/compose.yaml);
`interactions`: only the DynamoDB connector's records. Neither: everything."""
PostgresCapture = Literal["emulated", "debezium"]


@dataclass
class LoadCounts:
    """How many CDC records went to each topic."""

    per_topic: dict[str, int] = field(default_factory=dict)

    def add(self, topic: str) -> None:
        self.per_topic[topic] = self.per_topic.get(topic, 0) + 1


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: {error}") from None


class DatasetLoader:
    """Writes rows to PostgreSQL and produces the matching CDC records.

    The record shapes default to the production connectors'; the replay fixtures load
    the other shapes the decoders accept (SPEC 1.1, 1.2).
    """

    def __init__(
        self,
        settings: Settings,
        partitions: int = 1,
        postgres_shape: PostgresShape = "after-state",
        dynamodb_shape: DynamoDbShape = "document",
        only: LoadPart | None = None,
        capture: PostgresCapture = "emulated",
    ) -> None:
        """`capture="debezium"` needs `postgres_shape` of `debezium.SHAPES`."""
        self._settings = settings
        self._rows = only != "interactions"
        self._postgres_records = only is None and capture == "emulated"
        self._interactions = only != "rows"
        self._debezium: DebeziumConnector | None = None
        self._last_xid: int | None = None
        registry = SchemaRegistry(settings)
        self._postgres_cdc = PostgresCdcEmulator(registry, settings.pg_topic_prefix, postgres_shape)
        self._dynamodb_cdc = DynamoDbCdcEmulator(registry, settings.dynamodb_topic, dynamodb_shape)
        self._engine = sa.create_engine(settings.sqlalchemy_url)
        self._producer = Producer(settings.producer_config)
        self.counts = LoadCounts()
        self._delivery_errors: list[str] = []
        if self._rows:
            with self._engine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(database.SCHEMA, if_not_exists=True))
                database.metadata.create_all(connection)
        captured = self._postgres_records or (self._rows and capture == "debezium")
        topics = [settings.pg_topic(table) for table in database.TABLES]
        topics = (topics if captured else []) + (
            [settings.dynamodb_topic] if self._interactions else []
        )
        create_topics(settings.kafka_config, topics, partitions)
        if self._rows and capture == "debezium":
            if postgres_shape not in SHAPES:
                raise ValueError(f"Debezium writes the shapes {SHAPES}, not {postgres_shape!r}")
            self._debezium = DebeziumConnector(settings)
            self._debezium.ensure_running(postgres_shape)

    def load(self, directory: Path, on_record: Callable[[], None] = lambda: None) -> LoadCounts:
        for table in SNAPSHOT_ORDER:
            for row in read_jsonl(directory / f"{table}.jsonl"):
                self.upsert(table, row)
                on_record()
        for item in read_jsonl(directory / "interactions.jsonl"):
            self.interaction(item)
            on_record()
        for change in read_jsonl(directory / "changes.jsonl"):
            self.apply(change)
            on_record()
        self._producer.flush()
        if self._delivery_errors:
            raise RuntimeError(
                f"{len(self._delivery_errors)} CDC records were not delivered, e.g. "
                f"{self._delivery_errors[0]}"
            )
        if self._debezium is not None:
            if self._last_xid is not None:
                self._debezium.await_transaction(self._last_xid)
            self._debezium.close()
        return self.counts

    def apply(self, change: dict[str, Any]) -> None:
        """One line of changes.jsonl (SPEC 6)."""
        table, op = change.get("table"), change.get("op")
        if table == "interactions" and op == "insert":
            self.interaction(change["item"])
        elif table in database.TABLES and op == "upsert":
            self.upsert(table, change["row"])
        elif table in database.TABLES and op == "delete":
            self.delete(table, change["row"])
        else:
            raise ValueError(f"unknown change {table!r} {op!r}")

    def upsert(self, table_name: str, row: dict[str, Any]) -> None:
        table = database.TABLES[table_name]
        values = database.typed_row(table, row)
        keys = [column.name for column in table.primary_key.columns]
        statement = insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: statement.excluded[name] for name in values if name not in keys},
        )
        if self._rows:
            self._write(statement)
        if self._postgres_records:
            self._produce(
                self._settings.pg_topic(table_name), *self._postgres_cdc.upsert(table_name, row)
            )

    def delete(self, table_name: str, row: dict[str, Any]) -> None:
        table = database.TABLES[table_name]
        key = database.key_of(table, database.typed_row(table, row))
        condition = sa.and_(*(table.c[name] == value for name, value in key.items()))
        if self._rows:
            self._write(table.delete().where(condition))
        for record in self._postgres_cdc.delete(table_name, key) if self._postgres_records else ():
            self._produce(self._settings.pg_topic(table_name), *record)

    def _write(self, statement: sa.Executable) -> None:
        """One source-table change in its own transaction, as an application commits it.

        Under Debezium the transaction's id is kept: `load` waits until Debezium has
        captured the last one.
        """
        with self._engine.begin() as connection:
            connection.execute(statement)
            if self._debezium is not None:
                xid = connection.execute(
                    sa.text("select pg_current_xact_id_if_assigned()::text")
                ).scalar()
                if xid is not None:  # None: the statement changed nothing
                    self._last_xid = int(xid)

    def interaction(self, item: dict[str, Any]) -> None:
        if self._interactions:
            self._produce(self._settings.dynamodb_topic, *self._dynamodb_cdc.insert(item))

    def _delivered(self, error: object, message: object) -> None:
        if error is not None:
            self._delivery_errors.append(str(error))

    def _produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)
        self.counts.add(topic)
