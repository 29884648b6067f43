"""Exactly-once on Apache Kafka (SPEC 4): every topology SIGKILLed while one of its
transactions is open, restarted, and nothing is lost or doubled, in any table or topic.

A transaction is open when a topic it writes has records past the last stable offset:
its high watermark, which a `read_uncommitted` consumer sees, is ahead of the end a
`read_committed` consumer sees. The test kills a topology at such a moment, so the
broker aborts that transaction when the restarted replica fences its predecessor
(same transactional id). Its records stay in the log, visible to `read_uncommitted`
readers only: the test counts them to show that aborts really happened.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import pytest
from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from processor.seed import SeedOptions, generate, write_dataset
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.support import (
    assert_interactions_published_once,
    assert_jdbc_copies_equal_tables,
    assert_table_topics_equal_tables,
    differences,
    expected_tables,
    table_topic_names,
)

pytestmark = pytest.mark.integration

OPEN_TRANSACTION_TIMEOUT_S = 60.0
KILL_ATTEMPTS = 5
# Checkpoints of a few seconds: a topology that gets through its whole backlog in well
# under a second still holds its transaction open long enough for the watch to see it.
COMMIT_INTERVAL_S = "3"


class TransactionWatch:
    """Compares each partition's end as read_uncommitted and read_committed readers see it,
    each in one batched ListOffsets request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._admin = AdminClient(settings.kafka_config)

    def output_partitions(self, topology: str) -> list[TopicPartition]:
        """The partitions a topology writes in its transactions: its changelog and
        internal topics (named after its consumer group), and interaction_data's topic
        or the analytics' table topics."""
        group = self._settings.consumer_group(topology)
        topics = self._admin.list_topics(timeout=10).topics
        names = [name for name in topics if f"__{group}--" in name]
        if topology == "interaction_data":
            names.append(self._settings.interactions_topic)
        else:
            names.append(table_topic_names(self._settings)[topology])
        return [
            TopicPartition(name, p)
            for name in names
            if name in topics
            for p in topics[name].partitions
        ]

    def open(self, partitions: list[TopicPartition]) -> bool:
        ends = self._ends(partitions, IsolationLevel.READ_UNCOMMITTED)
        stable = self._ends(partitions, IsolationLevel.READ_COMMITTED)
        return any(ends[key] > stable[key] for key in ends)

    def _ends(
        self, partitions: list[TopicPartition], isolation: IsolationLevel
    ) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions}, isolation_level=isolation
        )
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def count_records(settings: Settings, partitions: list[TopicPartition], isolation: str) -> int:
    """Records a consumer of `isolation` reads from the partitions, up to their ends."""
    consumer = Consumer(
        settings.kafka_config
        | {
            "group.id": f"test-count-{uuid.uuid4()}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in partitions])
        remaining = {(tp.topic, tp.partition) for tp in partitions}
        count = 0
        while remaining:
            message = consumer.poll(30)
            assert message is not None, "no end of partition within 30 s"
            if message.error() is None:
                count += 1
            else:
                remaining.discard((message.topic(), message.partition()))
        return count
    finally:
        consumer.close()


def invisible_records(settings: Settings, partitions: list[TopicPartition]) -> int:
    """Records of the partitions a read_committed reader does not get: those of aborted
    transactions and of one still open."""
    return count_records(settings, partitions, "read_uncommitted") - count_records(
        settings, partitions, "read_committed"
    )


def kill_in_a_transaction(
    watch: TransactionWatch, topology: str, process: Callable[[], Popen]
) -> None:
    """SIGKILL `process()` the moment `topology` has a transaction open (it may still
    commit in the instant before the signal lands)."""
    deadline = time.monotonic() + OPEN_TRANSACTION_TIMEOUT_S
    partitions: list[TopicPartition] = []
    looked = 0.0
    while not (partitions and watch.open(partitions)):
        assert time.monotonic() < deadline, f"{topology} opened no transaction to kill in"
        if time.monotonic() - looked > 0.25:  # its topics appear as it starts
            partitions, looked = watch.output_partitions(topology), time.monotonic()
    running = process()
    running.send_signal(signal.SIGKILL)
    running.wait(timeout=30)


def test_kills_inside_transactions_leave_no_duplicate_and_no_gap(
    settings: Settings, stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    options = SeedOptions(
        users=60, items=25, interactions=3000, reviews=120, seed=11, changes=80, bursts=10
    )
    write_dataset(generate(options), tmp_path / "dataset")
    dataset = tmp_path / "dataset"
    # Everything is loaded first, and each topology starts just before its kills: it
    # starts on a backlog, so its first checkpoints are large transactions. The analytics
    # read what interaction_data writes, so it goes first.
    assert pstreams("seed", "load", str(dataset)).wait() == 0
    names = sorted(all_topologies(), key=lambda name: name != "interaction_data")
    processes: dict[str, Popen] = {}
    watch = TransactionWatch(settings)
    kills = {}
    table_topics = table_topic_names(settings)
    env = stack_env | {
        "COMMIT_INTERVAL_S": COMMIT_INTERVAL_S,
        "TABLE_TOPICS": ",".join(f"{name}={topic}" for name, topic in table_topics.items()),
    }
    for name in names:
        processes[name] = pstreams("run", name, env=env)
        for kills[name] in range(1, KILL_ATTEMPTS + 1):
            before = invisible_records(settings, watch.output_partitions(name))
            kill_in_a_transaction(watch, name, lambda name=name: processes[name])
            # The killed transaction is open until the restarted replica fences it.
            killed_open = invisible_records(settings, watch.output_partitions(name)) > before
            processes[name] = pstreams("run", name, env=env)
            if killed_open:
                break
        else:
            pytest.fail(f"{name}: {KILL_ATTEMPTS} kills all came after a commit")
    print(f"kills until one met an open transaction: {kills}")
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert all(process.poll() is None for process in processes.values())

    expected = expected_tables(settings, dataset, partitions=1, in_event_time_order=True)
    # Every difference in the message: pytest would show only the first of a list.
    problems = differences(settings, expected)
    assert not problems, "\n".join(problems)
    # Each interaction of the table is on the interactions topic exactly once for a
    # read_committed reader, though the killed transactions' records are in its log.
    assert_interactions_published_once(settings)
    # And each table topic, read_committed, equals its table, as the copy does that a
    # JDBC sink connector makes of the topics with the killed transactions' records in.
    assert_table_topics_equal_tables(settings, table_topics)
    assert_jdbc_copies_equal_tables(settings, table_topics)
