"""Debezium's JDBC sink connector copying the table topics into PostgreSQL.

The replaced pipeline's PostgreSQL sink connector read Flink's table topics. This is
that consumer, as a team would run it on Kafka Connect: the topics of `TABLE_TOPICS`
(`processor.table_topic`) upserted by their Avro key into tables of a schema of its
own, a tombstone deleting the row. It reads `read_committed`, so under exactly-once it
sees only committed checkpoints. `pstreams demo --jdbc-sink` and the integration tests
run it to prove the topics are a drop-in for Flink's (docs/deployment.md, "Consumers of
the table topics").
"""

from __future__ import annotations

import time

import psycopg
import sqlalchemy as sa

from processor.connect_api import ConnectorClient, ConnectorError, avro_converters
from processor.settings import Settings
from processor.topology import all_topologies


def connector_name(schema: str) -> str:
    return f"pstreams-jdbc-sink-{schema}"


def jdbc_url(settings: Settings, schema: str) -> str:
    """The JDBC form of `POSTGRES_URL`, writing into `schema`."""
    database = psycopg.conninfo.conninfo_to_dict(settings.postgres_url)
    host, port = database.get("host", "localhost"), database.get("port", 5432)
    dbname = database.get("dbname", "postgres")
    return f"jdbc:postgresql://{host}:{port}/{dbname}?currentSchema={schema}"


def connector_config(settings: Settings, topics: dict[str, str], schema: str) -> dict[str, str]:
    """The connector's configuration: each topic (by topology) into its table's name."""
    database = psycopg.conninfo.conninfo_to_dict(settings.postgres_url)
    renames = {topic: str(all_topologies()[name].table.name) for name, topic in topics.items()}
    config = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": ",".join(renames),
        "connection.url": jdbc_url(settings, schema),
        "connection.username": str(database.get("user", "postgres")),
        "connection.password": str(database.get("password", "")),
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        # The tables are made beforehand from the topologies' own definitions
        # (`create_tables`): the connector would not make a NULLS NOT DISTINCT key.
        "schema.evolution": "none",
        "quote.identifiers": "true",
        "use.time.zone": "UTC",
        # Only committed checkpoints: Connect's consumers read uncommitted by default.
        "consumer.override.isolation.level": "read_committed",
        "consumer.override.auto.offset.reset": "earliest",
    }
    # One RegexRouter per topic, naming its table; the topic names may be anything.
    transforms = []
    for index, (topic, table) in enumerate(renames.items()):
        transforms.append(f"table{index}")
        config |= {
            f"transforms.table{index}.type": "org.apache.kafka.connect.transforms.RegexRouter",
            f"transforms.table{index}.regex": _literal(topic),
            f"transforms.table{index}.replacement": table,
        }
    config["transforms"] = ",".join(transforms)
    # Schema-qualified: unqualified, the connector looks the table up in every schema
    # and wrote into the topology's own table of that name (`t1` before `t1_copy`),
    # silently. The schema goes in the format, not the rename: dots in a topic's name
    # become underscores.
    config["collection.name.format"] = schema + ".${topic}"
    return config | avro_converters(settings)


def _literal(text: str) -> str:
    """A Java regular expression matching exactly `text`."""
    return "\\Q" + text + "\\E"


def create_tables(settings: Settings, topologies: list[str], schema: str) -> None:
    """The topologies' tables, as the topologies define them, in `schema`."""
    metadata = sa.MetaData()
    tables = [all_topologies()[name].table.to_metadata(metadata) for name in topologies]
    engine = sa.create_engine(
        settings.sqlalchemy_url, execution_options={"schema_translate_map": {None: schema}}
    )
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            metadata.create_all(connection, tables=tables)
    finally:
        engine.dispose()


def copies_differing(settings: Settings, topologies: list[str], schema: str) -> list[str]:
    """The topologies whose table's copy in `schema` differs from the table, each with
    the rows each side has that the other lacks (`EXCEPT` both ways)."""
    differing = []
    with psycopg.connect(settings.postgres_url) as connection:
        for name in topologies:
            table = str(all_topologies()[name].table.name)
            ours = f'"{settings.postgres_schema}"."{table}"'
            copy = f'"{schema}"."{table}"'
            missing, extra = (
                connection.execute(
                    f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b}) AS d"
                ).fetchone()[0]
                for a, b in ((ours, copy), (copy, ours))
            )
            if missing or extra:
                differing.append(f"{name}: {missing} rows not copied, {extra} rows extra")
    return differing


class JdbcSink:
    """The JDBC sink connector copying `topics` (by topology) into `schema`."""

    def __init__(self, settings: Settings, topics: dict[str, str], schema: str) -> None:
        self._settings = settings
        self._topics = topics
        self._schema = schema
        self._connector = ConnectorClient(settings.connect_url, connector_name(schema))

    def close(self) -> None:
        self._connector.close()

    def start(self) -> None:
        """Make the tables, then create the connector and wait until its task runs."""
        create_tables(self._settings, list(self._topics), self._schema)
        self._connector.ensure_running(connector_config(self._settings, self._topics, self._schema))

    def running(self) -> bool:
        return self._connector.running()

    def await_copies_equal(self, timeout_s: float) -> None:
        """Wait until every copy equals its table (the connector reads on its own time);
        a failed task, or copies still differing after `timeout_s`, raise."""
        deadline = time.monotonic() + timeout_s
        while differing := copies_differing(self._settings, list(self._topics), self._schema):
            if time.monotonic() > deadline:
                raise ConnectorError("the JDBC sink's copies differ: " + "; ".join(differing))
            self.running()  # a failed task raises with its trace
            time.sleep(0.5)

    def remove(self) -> None:
        self._connector.delete()
