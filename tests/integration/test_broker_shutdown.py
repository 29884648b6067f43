"""Transactions in flight when the broker shuts down cleanly all end after its restart.

Kafka 4's transaction coordinator skips the markers of a partition that has no leader
at the moment, as if it had been deleted (KAFKA-20734). A one-node cluster leaves its
partitions without a leader while it shuts down, so a transaction that ends in that
moment stays open for good: its records block `read_committed` readers, its offsets
are never stable, and the consumer group that committed them never starts again. The
local stack's broker runs with the upstream fix applied as a Byteman rule
(`processor.local.broker.LEADERLESS_IS_NOT_DELETED`; docs/guarantees.md).

Here many producers commit small transactions, each with a group's offset, in a tight
loop while the broker stops; after each restart every group's offsets must be stable
again and every partition's last stable offset must reach its end. A topic of 1,000
partitions beside them makes the race likelier: with 12 producers and no such topic, 7
restarts without the rule left nothing open. With both, 5 of 13 restarts without the
rule left transactions open, and none of 12 with it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from processor.local.stack import LocalStack
from processor.settings import Settings
from processor.topics import create_topics
from tests.integration.faults import broker_stopped

pytestmark = pytest.mark.integration

PRODUCERS = 24
ROUNDS = 3
BALLAST_PARTITIONS = 1000
# Long enough for every producer to be committing when the broker stops.
UNDER_WAY_S = 3.0
# Transactions left open by the shutdown are aborted by the coordinator once they are
# this old, which it checks every 10 s (Kafka's default).
TRANSACTION_TIMEOUT_MS = 10_000
SETTLE_S = 60.0


def commit_until_stopped(
    settings: Settings, topic: str, partition: int, stop: threading.Event
) -> int:
    """Commit transactions of one record and one offset of the group named like the
    producer until `stop` or the first error (the broker going away); how many committed."""
    name = f"{topic}-{partition}"
    producer = Producer(
        settings.producer_config
        | {"transactional.id": name, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS}
    )
    group = Consumer(settings.kafka_config | {"group.id": name})
    committed = 0
    try:
        producer.init_transactions(30)
        metadata = group.consumer_group_metadata()
        while not stop.is_set():
            producer.begin_transaction()
            producer.produce(topic, value=b"x", partition=partition)
            offsets = [TopicPartition(topic, partition, committed + 1)]
            producer.send_offsets_to_transaction(offsets, metadata, 5)
            producer.commit_transaction(5)
            committed += 1
    except KafkaException:
        pass  # what the broker made of the transaction it was in is the question
    finally:
        group.close()
    return committed


def transactions_unended(settings: Settings, topic: str) -> list[str]:
    """Each group whose committed offsets are not stable, and each partition whose last
    stable offset is short of its end (an open transaction)."""
    admin = AdminClient(settings.kafka_config)
    unended = []
    for partition in range(PRODUCERS):
        group = [ConsumerGroupTopicPartitions(f"{topic}-{partition}")]
        try:
            future = admin.list_consumer_group_offsets(
                group, require_stable=True, request_timeout=10
            )
            offsets = future[group[0].group_id].result().topic_partitions
            unended += [f"{group[0].group_id}: {tp.error}" for tp in offsets if tp.error]
        except KafkaException as error:
            unended.append(f"{group[0].group_id}: {error}")
    ends = {}
    for isolation in ("read_committed", "read_uncommitted"):
        reader = Consumer(
            settings.kafka_config | {"group.id": f"{topic}-reader", "isolation.level": isolation}
        )
        try:
            ends[isolation] = [
                reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(PRODUCERS)
            ]
        finally:
            reader.close()
    for partition, (stable, end) in enumerate(zip(*ends.values(), strict=True)):
        if stable < end:
            unended.append(f"{topic}[{partition}]: last stable offset {stable}, end {end}")
    return unended


def test_transactions_in_flight_at_a_clean_shutdown_all_end_after_the_restart(
    local_stack: LocalStack, settings: Settings
) -> None:
    ballast = f"{settings.pg_topic_prefix}-ballast"
    create_topics(settings.kafka_config, [ballast], BALLAST_PARTITIONS)
    try:
        for round in range(ROUNDS):
            topic = f"{settings.pg_topic_prefix}-shutdown-{round}"
            commits = commit_through_a_restart(local_stack, settings, topic)
            deadline = time.monotonic() + SETTLE_S
            while (
                unended := transactions_unended(settings, topic)
            ) and time.monotonic() < deadline:
                time.sleep(1)
            assert unended == [], f"round {round}, {SETTLE_S:.0f} s after the restart"
            assert all(commits), f"a producer committed nothing before the shutdown: {commits}"
    finally:
        admin = AdminClient(settings.kafka_config)  # kept alive until the deletion answers
        admin.delete_topics([ballast])[ballast].result()


def commit_through_a_restart(local_stack: LocalStack, settings: Settings, topic: str) -> list[int]:
    """Stop the broker while producers commit to `topic`, and start it again; how many
    transactions each producer committed."""
    create_topics(settings.kafka_config, [topic], PRODUCERS)
    stop = threading.Event()
    with ThreadPoolExecutor(PRODUCERS) as pool:
        runs = [
            pool.submit(commit_until_stopped, settings, topic, partition, stop)
            for partition in range(PRODUCERS)
        ]
        time.sleep(UNDER_WAY_S)
        try:
            with broker_stopped(local_stack):
                stop.set()
        finally:
            stop.set()  # also when the broker would not stop
        return [run.result() for run in runs]
