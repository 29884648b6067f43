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

import httpx
import psycopg

from processor.backoff import Backoff
from processor.settings import Settings

DebeziumShape = Literal["envelope", "rewrite"]
SHAPES: tuple[DebeziumShape, ...] = ("envelope", "rewrite")
SCHEMA = "user_data"
TABLES = ("categories", "users", "items", "reviews")
_XID_MASK = 0xFFFFFFFF  # Debezium reports 32-bit transaction ids, PostgreSQL 64-bit ones
_CONFLUENT_API = "/apis/ccompat/v7"
_APICURIO_NATIVE_API = "/apis/registry/v2"


class CaptureError(RuntimeError):
    """Debezium could not capture what was asked; the message says why."""


def connector_name(settings: Settings) -> str:
    return f"pstreams-debezium-{settings.pg_topic_prefix}"


def _slot_name(settings: Settings) -> str:
    """Replication slot and publication: lower-case letters, digits and `_` only."""
    return "pstreams_" + re.sub(r"[^a-z0-9_]", "_", settings.pg_topic_prefix.lower())


def converter_registry_url(settings: Settings) -> str:
    """Apicurio's own API, which its converter speaks, from `SCHEMA_REGISTRY_URL`."""
    url = settings.schema_registry_url
    if not url.endswith(_CONFLUENT_API):
        raise CaptureError(
            f"SCHEMA_REGISTRY_URL={url} is not an Apicurio Registry's Confluent API "
            f"(…{_CONFLUENT_API}); Debezium here writes through Apicurio's converter"
        )
    return url.removesuffix(_CONFLUENT_API) + _APICURIO_NATIVE_API


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
    for side in ("key", "value"):
        config |= {
            f"{side}.converter": "io.apicurio.registry.utils.converter.AvroConverter",
            f"{side}.converter.apicurio.registry.url": converter_registry_url(settings),
            f"{side}.converter.apicurio.registry.auto-register": "true",
            f"{side}.converter.apicurio.registry.as-confluent": "true",
            f"{side}.converter.apicurio.registry.use-id": "contentId",
            f"{side}.converter.apicurio.registry.headers.enabled": "false",
        }
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
        self._name = connector_name(settings)
        self._timeout_s = timeout_s
        self._http = httpx.Client(base_url=settings.connect_url, timeout=30.0)

    def close(self) -> None:
        self._http.close()

    def ensure_running(self, shape: DebeziumShape) -> None:
        """Create or reconfigure the connector, then wait until its task runs."""
        config = connector_config(self._settings, shape)
        # A worker still joining its group answers 409; so does one rebalancing.
        self._retrying(lambda: self._http.put(f"/connectors/{self._name}/config", json=config))
        self._await(self._running, "its task to run")

    def await_transaction(self, xid: int) -> None:
        """Wait until Debezium has written every change up to transaction `xid` to Kafka.

        Connect commits a source offset only once the records before it are in Kafka, so
        an offset of this transaction or a later one means they are all there.
        """
        self._await(lambda: self._captured_xid() >= xid & _XID_MASK, f"transaction {xid}")

    def remove(self) -> None:
        """Delete the connector, then its replication slot and publication."""
        self._retrying(lambda: self._http.delete(f"/connectors/{self._name}"), missing_ok=True)
        slot = _slot_name(self._settings)
        with psycopg.connect(self._settings.postgres_url, autocommit=True) as connection:
            # The slot stays active for a moment while the task stops.
            deadline = time.monotonic() + self._timeout_s
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

    def _running(self) -> bool:
        reply = self._http.get(f"/connectors/{self._name}/status")
        if reply.status_code == 404:
            return False
        status = reply.raise_for_status().json()
        failed = [t for t in status["tasks"] if t["state"] == "FAILED"]
        if status["connector"]["state"] == "FAILED" or failed:
            trace = (failed[0] if failed else status["connector"]).get("trace", "")
            raise CaptureError(f"connector {self._name} failed: {trace.splitlines()[:1]}")
        return bool(status["tasks"]) and all(t["state"] == "RUNNING" for t in status["tasks"])

    def _captured_xid(self) -> int:
        reply = self._http.get(f"/connectors/{self._name}/offsets").raise_for_status()
        offsets: list[dict[str, Any]] = reply.json()["offsets"]
        return max((int(o["offset"].get("txId", -1)) for o in offsets), default=-1)

    def _await(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + self._timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise CaptureError(
                    f"connector {self._name}: gave up waiting for {what} after "
                    f"{self._timeout_s:.0f} s"
                )
            time.sleep(0.2)

    def _retrying(self, request: Any, missing_ok: bool = False) -> None:
        backoff = Backoff(maximum=5.0)
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                reply = request()
            except httpx.TransportError as error:
                message = f"Kafka Connect at {self._settings.connect_url}: {error}"
                raise CaptureError(message) from error
            if reply.status_code == 404 and missing_ok:
                return
            if reply.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(backoff.next_delay())
        if reply.is_error:
            raise CaptureError(
                f"Kafka Connect answered {reply.status_code} for {self._name}: {reply.text}"
            )
