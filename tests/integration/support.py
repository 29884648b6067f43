"""Helpers of the integration tests: producing, reading topics back, waiting, sample items."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from processor.avro import SchemaRegistry
from processor.connectors import DynamoDbCdcEmulator
from processor.jdbc_sink import JdbcSink
from processor.settings import Settings
from processor.topics import create_topics
from processor.topology import all_topologies
from tests.reference.compare import diff, read_tables
from tests.reference.model import (
    Interaction,
    SourceState,
    WindowedResult,
    derived_tables,
    simulate_merged_purchase_windows,
)

WINDOWED = "purchase_windowed_counts"


def generated_items(count: int, seed: int) -> list[dict[str, Any]]:
    """DynamoDB items with the variety the table must survive: absent, N-typed, unicode."""
    rng = random.Random(seed)
    items = []
    for n in range(count):
        item: dict[str, Any] = {
            "user_id": {"S": str(rng.randint(1, 30))},
            "timestamp": {"S": str(1_700_000_000 + n * 61)},
            "action_type": {"S": rng.choice(["purchase", "click", "view"])},
            "session_id": {"S": f"s-{rng.randint(1, 9)}"},
            "device_type": {"S": rng.choice(["mobile", "desktop"])},
            "browser_type": {"S": "Firefox"},
            "current_page_url": {"S": f"https://shop.example.com/ü/{n}"},
            "ttl": {"N": "1794000000"},
        }
        if rng.random() < 0.5:
            item["referrer_url"] = {"S": "https://www.google.com/"}
        if rng.random() < 0.9:
            item["item_id"] = {"S": str(rng.randint(1, 20))} if n % 10 else {"N": "7"}
        items.append(item)
    return items


def dynamodb_source(
    settings: Settings, partitions: int = 1, config: dict[str, str] | None = None
) -> DynamoDbCdcEmulator:
    """The DynamoDB CDC topic, created, and an emulator of the connector that writes it."""
    create_topics(settings.kafka_config, [settings.dynamodb_topic], partitions, config)
    return DynamoDbCdcEmulator(SchemaRegistry(settings), settings.dynamodb_topic)


def produce(settings: Settings, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(settings.producer_config)
    for key, value in records:
        producer.produce(settings.dynamodb_topic, key=key, value=value)
    assert producer.flush(30) == 0


def wait(stack_env: dict[str, str], *topologies: str) -> None:
    """`pstreams wait` for the named topologies (default: all)."""
    result = subprocess.run(
        [sys.executable, "-m", "processor", "wait", *topologies, "--timeout", "120"],
        env=os.environ | stack_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every committed record of `topic`, partition by partition, in offset order."""
    consumer = Consumer(
        settings.kafka_config
        | {
            "group.id": f"test-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = set(partitions)
        messages: list[Message] = []
        while remaining:
            message = consumer.poll(timeout_s)
            assert message is not None, f"no end of {topic} within {timeout_s} s"
            if message.error() is None:
                messages.append(message)
            elif message.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
            else:
                raise AssertionError(message.error())
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def published_interactions(settings: Settings) -> Counter[tuple[int, int]]:
    """How often each DynamoDB record (partition, offset) is on the interactions topic,
    as a read_committed reader gets it."""
    registry = SchemaRegistry(settings)
    identities: Counter[tuple[int, int]] = Counter()
    for message in read_topic(settings, settings.interactions_topic):
        value, _ = registry.decode(message.value())
        identities[(value["source_partition"], value["source_offset"])] += 1
    return identities


def table_interactions(settings: Settings) -> set[tuple[int, int]]:
    """The DynamoDB records (partition, offset) of the rows of interaction_data."""
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT source_partition, source_offset "
                    f"FROM {settings.postgres_schema}.interaction_data"
                )
            )
            return {(partition, offset) for partition, offset in rows}
    finally:
        engine.dispose()


def assert_interactions_published_once(settings: Settings) -> None:
    """Every row of interaction_data is on the interactions topic exactly once."""
    published = published_interactions(settings)
    assert set(published.values()) == {1}, "an interaction was published twice"
    assert set(published) == table_interactions(settings)


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


def assert_jdbc_copies_equal_tables(settings: Settings, topics: dict[str, str]) -> None:
    """Debezium's JDBC sink connector, on the stack's Kafka Connect, copies the table
    topics (by topology) into a schema of its own, and each copy equals its table
    within `JDBC_COPY_WAIT_S` (the connector reads on its own time)."""
    schema = f"{settings.postgres_schema}_jdbc_copy"
    copy = settings.model_copy(update={"postgres_schema": schema})
    sink = JdbcSink(settings, topics, schema)
    try:
        sink.start()
        deadline = time.monotonic() + JDBC_COPY_WAIT_S
        while True:
            differing = []
            for name in topics:
                table = all_topologies()[name].table
                copied, ours = table_rows(copy, table), table_rows(settings, table)
                if copied != ours:
                    differing.append(f"{name}: {len(copied)} rows copied, {len(ours)} ours")
            if not differing or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert differing == [], f"the JDBC sink's copies differ: {differing}"
        assert sink.running(), "the connector's task stopped"
    finally:
        sink.remove()
        sink.close()


JDBC_COPY_WAIT_S = 180.0


def table_topic_names(settings: Settings) -> dict[str, str]:
    """A table topic of the test's own for each analytics table, by topology."""
    topologies = [name for name, topology in all_topologies().items() if topology.table_topic]
    return {name: f"{settings.pg_topic_prefix}-{name}" for name in topologies}


def assert_table_topics_equal_tables(settings: Settings, topics: dict[str, str]) -> int:
    """Each topology's table topic, folded as compaction folds it, equals its table;
    returns the tombstones read."""
    tombstones = 0
    for name, topic in topics.items():
        rows, deleted = topic_as_table(settings, topic)
        expected = table_rows(settings, all_topologies()[name].table)
        assert expected, f"{name} is empty: nothing to compare"
        assert rows == expected, f"{name}: topic {topic} differs from the table"
        tombstones += deleted
    return tombstones


def reference_tables(dataset: Path, tables: list[str]) -> dict[str, Any]:
    """The reference model's `tables` (tests/reference/model.py) for `dataset`."""
    expected = derived_tables(SourceState.from_directory(dataset))
    return {name: expected[name] for name in tables}


def differences(settings: Settings, expected: dict[str, Any]) -> list[str]:
    """How the tables in PostgreSQL differ from `expected` (by table name); [] if equal."""
    actual = read_tables(settings.sqlalchemy_url, settings.postgres_schema)
    return diff(expected, {name: actual.get(name, set()) for name in expected})


def windows_as_read(settings: Settings, partitions: int) -> WindowedResult:
    """Table 6 as SPEC 2.6 defines it for the order in which the topology read its input:
    the reference rule over each partition of the interactions topic. (Windows still open
    at the end are not rows yet; the batch answer of `derived_tables` includes them.)"""
    registry = SchemaRegistry(settings)
    arrivals: defaultdict[int, list[tuple[str, Interaction]]] = defaultdict(list)
    taken: dict[tuple[int, str], int] = {}
    for message in read_topic(settings, settings.interactions_topic):
        value, _ = registry.decode(message.value(), message.headers())
        source = f"{value['source_topic']}[{value['source_partition']}]"
        # A record repeated on the topic (processor/interactions.py) is read once.
        if value["source_offset"] <= taken.get((message.partition(), source), -1):
            continue
        taken[(message.partition(), source)] = value["source_offset"]
        interaction = Interaction(
            **{name: value[name] for name in Interaction.__dataclass_fields__ if name in value},
            timestamp=int(value["event_time_ltz"].timestamp()),
        )
        arrivals[message.partition()].append((source, interaction))
    sources = [f"{settings.dynamodb_topic}[{p}]" for p in range(partitions)]
    results = [simulate_merged_purchase_windows(arrived, sources) for arrived in arrivals.values()]
    return WindowedResult(
        set().union(*(result.rows for result in results)),
        [late for result in results for late in result.late],
    )


def expected_tables(
    settings: Settings, dataset: Path, partitions: int, in_event_time_order: bool
) -> dict[str, Any]:
    """What every table of `all_topologies()` must hold once `dataset` is processed: the
    reference model's batch answer, and for table 6 the windows closed in the order the
    topology read (an event-time-ordered dataset has no late purchases, so its closed
    windows are a non-empty part of the batch answer)."""
    expected = reference_tables(dataset, list(all_topologies()))
    if WINDOWED in expected:
        windows = windows_as_read(settings, partitions)
        if in_event_time_order:
            assert not windows.late and windows.rows
            assert windows.rows <= expected[WINDOWED]
        expected[WINDOWED] = windows.rows
    return expected


def supervised_child(supervisor: int, topology: str, timeout: float = 60.0) -> int | None:
    """The pid of the live `pstreams run TOPOLOGY` child of the `supervisor` process, read
    from /proc (Linux); None when there is none within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                state, ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                command = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:  # it exited while we looked
                continue
            if (
                int(ppid) == supervisor
                and state != "Z"
                and command[-3:-1] == [b"run", topology.encode()]
            ):
                return int(proc.name)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


STACKS_FILE = "child-stacks.txt"
"""Where a test leaves `child_stacks` for its failure report."""


def child_stacks(supervisor_log: Path) -> str:
    """Where each running child of `pstreams run --all` is, as py-spy dumps it: for a
    failure report when a topology stopped making progress without exiting."""
    pids: dict[str, int] = {}
    for line in supervisor_log.read_text(errors="replace").splitlines():
        if match := re.search(r"topology (\w+)(?::| restarted:) pid (\d+)", line):
            pids[match[1]] = int(match[2])
    dumps = []
    for name, pid in pids.items():
        dumped = subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        dumps.append(f"--- {name} (pid {pid})\n{dumped.stdout}{dumped.stderr}")
    return "\n".join(dumps)


def child_failures(supervisor_log: Path) -> list[str]:
    """The lines of `pstreams run --all`'s log saying that a child exited, stopped, or
    was killed for not answering /healthz: anything but a clean run."""
    lines = supervisor_log.read_text(errors="replace").splitlines()
    return [line for line in lines if "ERROR processor.supervisor" in line]
