"""Debezium capturing the source tables, as `pstreams seed load --cdc debezium` runs it.

One Debezium PostgreSQL connector per topic prefix, on the Kafka Connect at
`CONNECT_URL`: it reads the `user_data` tables of the `POSTGRES_URL` database by
logical replication (`pgoutput`) and writes `{PG_TOPIC_PREFIX}.user_data.{table}` in
Avro through Apicurio's converter, framed as Confluent's serializers frame it (magic
byte 0, a 4-byte schema id, no id headers). Two of the shapes of SPEC 1.1:
- `envelope`: Debezium's own `before` / `after` / `op` records, a tombstone after a delete;
- `rewrite`: `ExtractNewRecordState` flattening with `__op`, a delete as the last row with
  `__deleted=true` followed by a tombstone (as deploy/debezium/postgres-source.json).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import psycopg

from processor.connect_api import ConnectorClient, ConnectorError, avro_converters
from processor.settings import Settings

DebeziumShape = Literal["envelope", "rewrite"]
SHAPES: tuple[DebeziumShape, ...] = ("envelope", "rewrite")
SCHEMA = "user_data"
TABLES = ("categories", "users", "items", "reviews")
_XID_MASK = 0xFFFFFFFF  # Debezium reports 32-bit transaction ids, PostgreSQL 64-bit ones


class CaptureError(ConnectorError):
    """Debezium could not capture what was asked; the message says why."""


def connector_name(settings: Settings) -> str:
    return f"pstreams-debezium-{settings.pg_topic_prefix}"


def _slot_name(settings: Settings) -> str:
    """Replication slot and publication: lower-case letters, digits and `_` only."""
    return "pstreams_" + re.sub(r"[^a-z0-9_]", "_", settings.pg_topic_prefix.lower())


def connector_config(settings: Settings, shape: DebeziumShape) -> dict[str, str]:
    """The connector's configuration for the Connect REST API."""
    database = psycopg.conninfo.conninfo_to_dict(settings.postgres_url)
    slot = _slot_name(settings)
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": str(database.get("host", "localhost")),
        "database.port": str(database.get("port", 5432)),
        "database.user": str(database.get("user", "postgres")),
        "database.password": str(database.get("password", "")),
        "database.dbname": str(database.get("dbname", "postgres")),
        "topic.prefix": settings.pg_topic_prefix,
        "table.include.list": ",".join(f"{SCHEMA}.{table}" for table in TABLES),
        "slot.name": slot,
        "publication.name": slot,
        "publication.autocreate.mode": "filtered",
        # Debezium's defaults, spelled out because the decoders depend on them (SPEC 1.1):
        # NUMERIC as Avro decimal bytes, TIMESTAMP as microseconds, DATE as days.
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive",
        "tombstones.on.delete": "true",
        "schema.name.adjustment.mode": "avro",
        # Topics missing when a record is written are created like `seed load` creates them.
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "-1",
    }
    config |= avro_converters(settings)
    if shape == "rewrite":
        config |= {
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.delete.tombstone.handling.mode": "rewrite-with-tombstone",
            "transforms.unwrap.add.fields": "op",
        }
    return config


class DebeziumConnector:
    """The connector of one topic prefix on the Connect at `CONNECT_URL`."""

    def __init__(self, settings: Settings, timeout_s: float = 120.0) -> None:
        self._settings = settings
        self._connector = ConnectorClient(settings.connect_url, connector_name(settings), timeout_s)

    def close(self) -> None:
        self._connector.close()

    def ensure_running(self, shape: DebeziumShape) -> None:
        """Create or reconfigure the connector, then wait until its task runs."""
        self._connector.ensure_running(connector_config(self._settings, shape))

    def await_transaction(self, xid: int) -> None:
        """Wait until Debezium has written every change up to transaction `xid` to Kafka.

        Connect commits a source offset only once the records before it are in Kafka, so
        an offset of this transaction or a later one means they are all there.
        """
        self._connector.await_condition(
            lambda: self._captured_xid() >= xid & _XID_MASK, f"transaction {xid}"
        )

    def remove(self) -> None:
        """Delete the connector, then its replication slot and publication."""
        self._connector.delete()
        slot = _slot_name(self._settings)
        with psycopg.connect(self._settings.postgres_url, autocommit=True) as connection:
            # The slot stays active for a moment while the task stops.
            deadline = time.monotonic() + self._connector.timeout_s
            while connection.execute(
                "select 1 from pg_replication_slots where slot_name = %s and active", (slot,)
            ).fetchone():
                if time.monotonic() > deadline:
                    raise CaptureError(f"replication slot {slot} is still in use")
                time.sleep(0.2)
            connection.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                " where slot_name = %s",
                (slot,),
            )
            connection.execute(
                psycopg.sql.SQL("drop publication if exists {}").format(
                    psycopg.sql.Identifier(slot)
                )
            )

    def _captured_xid(self) -> int:
        reply = self._connector.http.get(f"/connectors/{self._connector.name}/offsets")
        offsets: list[dict[str, Any]] = reply.raise_for_status().json()["offsets"]
        return max((int(o["offset"].get("txId", -1)) for o in offsets), default=-1)
