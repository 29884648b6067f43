"""A checkpoint ends at the live interval once its inputs are read to the end, and runs up
to the backlog interval while they are not."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_INVALID, TopicPartition

from processor.pacing import LOOK_EVERY_S, PacedCheckpoint, caught_up

INPUT = "interaction_data"
CHANGELOG = "changelog__group--interaction_data--default"


class Consumer:
    """Positions and cached watermarks of assigned partitions, as librdkafka reports them."""

    def __init__(self, partitions: dict[tuple[str, int], tuple[int, int, int]]) -> None:
        # (topic, partition) -> (position, low watermark, high watermark)
        self.partitions = partitions

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in self.partitions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.partitions[(tp.topic, tp.partition)][0])
            for tp in partitions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached, "a look must not cost a broker round trip"
        _, low, high = self.partitions[(tp.topic, tp.partition)]
        return low, high


def test_a_consumer_at_the_end_of_its_inputs_has_caught_up() -> None:
    consumer = Consumer({(INPUT, 0): (120, 0, 120), (INPUT, 1): (7, 0, 7)})
    assert caught_up(consumer, {INPUT})


def test_one_partition_with_records_left_is_behind() -> None:
    consumer = Consumer({(INPUT, 0): (120, 0, 120), (INPUT, 1): (7, 0, 9)})
    assert not caught_up(consumer, {INPUT})


def test_partitions_of_other_topics_do_not_count() -> None:
    """Quix assigns changelog partitions too; their positions say nothing about a backlog."""
    consumer = Consumer({(INPUT, 0): (120, 0, 120), (CHANGELOG, 0): (0, 0, 5000)})
    assert caught_up(consumer, {INPUT})


def test_a_partition_not_read_yet_is_behind_only_if_it_holds_records() -> None:
    assert not caught_up(Consumer({(INPUT, 0): (OFFSET_INVALID, 0, 5)}), {INPUT})
    assert caught_up(Consumer({(INPUT, 0): (OFFSET_INVALID, 0, 0)}), {INPUT})
    # Everything before offset 5 was deleted by retention: nothing is left to read.
    assert caught_up(Consumer({(INPUT, 0): (OFFSET_INVALID, 5, 5)}), {INPUT})


def checkpoint(consumer: Consumer, live_s: float, backlog_s: float) -> PacedCheckpoint:
    quix_parts: dict[str, Any] = dict.fromkeys(
        ("producer", "state_manager", "sink_manager", "dataframe_registry")
    )
    return PacedCheckpoint(
        live_s, {INPUT}, commit_interval=backlog_s, consumer=consumer, **quix_parts
    )


def test_a_live_checkpoint_ends_at_the_live_interval() -> None:
    consumer = Consumer({(INPUT, 0): (120, 0, 120)})
    assert checkpoint(consumer, live_s=0, backlog_s=3600).expired()
    assert not checkpoint(consumer, live_s=3600, backlog_s=3600).expired()


def test_a_checkpoint_behind_runs_on_until_the_backlog_interval() -> None:
    consumer = Consumer({(INPUT, 0): (100, 0, 120)})
    assert not checkpoint(consumer, live_s=0, backlog_s=3600).expired()
    assert checkpoint(consumer, live_s=0, backlog_s=0).expired()


def test_a_checkpoint_ends_soon_after_it_catches_up() -> None:
    consumer = Consumer({(INPUT, 0): (100, 0, 120)})
    paced = checkpoint(consumer, live_s=0, backlog_s=3600)
    assert not paced.expired()
    consumer.partitions[(INPUT, 0)] = (120, 0, 120)
    deadline = time.monotonic() + 10 * LOOK_EVERY_S
    while not paced.expired():
        assert time.monotonic() < deadline, "a caught-up checkpoint kept running"
