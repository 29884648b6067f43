"""Checkpoints that grow while a backlog is worked off: fresh when live, cheap when behind.

Every checkpoint pays for its length once: one PostgreSQL transaction, one Kafka
transaction, and the write-back of each state value, outbox entry and table row it
touched, however often it touched them. So the fewer checkpoints a backlog takes, the
less is written: on the benchmark dataset, `item_shared_by_user_pair` wrote 5.8 million
rows with 1 s checkpoints and 1.0 million, the table's final size, with 10 s ones. When a
topology keeps up with its inputs, long checkpoints would only make the tables stale.

So a checkpoint ends `COMMIT_INTERVAL_S` after it began if the consumer has by then read
every assigned input partition to its end, and otherwise runs on until it has, or until
`BACKLOG_COMMIT_INTERVAL_S` has passed. Internal topics count as inputs: a stage whose
upstream just committed a large checkpoint is behind too.

Quix Streams has one fixed interval, so its checkpoint factory is replaced on the
application's processing context; everything else about the checkpoint is Quix's own.
"""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from quixstreams.checkpointing import Checkpoint
from quixstreams.kafka import BaseConsumer
from quixstreams.processing import ProcessingContext

# How often a checkpoint past its live interval asks the consumer whether it is behind:
# each look is a few C calls per partition, too dear for every message.
LOOK_EVERY_S = 0.1


def caught_up(consumer: BaseConsumer, topics: set[str]) -> bool:
    """Whether the consumer has read each of its partitions of `topics` to the end, as far
    as its last fetch knows (cached watermarks: no broker round trip)."""
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    for position in consumer.position(assigned):
        if position.offset < 0:  # nothing consumed yet: behind if there is anything
            position = TopicPartition(position.topic, position.partition, 0)
        low, high = consumer.get_watermark_offsets(position, cached=True)
        if high > max(position.offset, low):
            return False
    return True


class PacedCheckpoint(Checkpoint):
    """A Quix checkpoint whose interval is the backlog one, ending early once caught up."""

    def __init__(self, live_interval_s: float, topics: set[str], **quix_arguments) -> None:
        super().__init__(**quix_arguments)
        self._live_until = time.monotonic() + live_interval_s
        self._next_look = self._live_until
        self._topics = topics

    def expired(self) -> bool:
        if super().expired():
            return True
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + LOOK_EVERY_S
        return caught_up(self._consumer, self._topics)


def pace_checkpoints(context: ProcessingContext, backlog_interval_s: float) -> None:
    """Make `context` start `PacedCheckpoint`s: its `commit_interval` becomes the live
    interval, `backlog_interval_s` the longest a checkpoint may run while behind."""
    live_interval_s = context.commit_interval
    # The topology is built by now, so its input topics are known and stay the same.
    topics = {topic.name for topic in context.dataframe_registry.consumer_topics}

    def init_checkpoint() -> None:
        context._checkpoint = PacedCheckpoint(
            live_interval_s,
            topics,
            commit_interval=max(backlog_interval_s, live_interval_s),
            commit_every=context.commit_every,
            producer=context.producer,
            consumer=context.consumer,
            state_manager=context.state_manager,
            sink_manager=context.sink_manager,
            dataframe_registry=context.dataframe_registry,
            exactly_once=context.exactly_once,
            revoke_flush_timeout=context.revoke_flush_timeout,
        )

    context.init_checkpoint = init_checkpoint  # type: ignore[method-assign]
