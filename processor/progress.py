"""Has a topology consumed everything? The check behind `pstreams wait`.

A topology's consumer group commits offsets only after its sinks flushed (Quix flushes
sinks first at every checkpoint), so "caught up" is read from committed offsets:
a partition is caught up when no committed record lies between the group's committed
offset and the end the partition had when we looked. Under exactly-once the end of a
partition is often a transaction marker, not a record; a read_committed probe from the
committed offset tells the two apart.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from processor.settings import Settings
from processor.topology import Topology

T = TypeVar("T")

logger = logging.getLogger(__name__)

# The group coordinator is elsewhere or not ready yet: asking again will succeed.
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


@dataclass(frozen=True)
class Lag:
    """A partition a consumer group has not finished: `committed` < `end`."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int

    def __str__(self) -> str:
        committed = "nothing" if self.committed < 0 else f"offset {self.committed}"
        return f"{self.group}: {self.topic}[{self.partition}] committed {committed}, end {self.end}"


class ProgressProbe:
    """Reads ends of partitions and committed offsets of groups on one broker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._reader = Consumer(self._config(f"pstreams-wait-{uuid.uuid4()}"))

    def _config(self, group: str) -> dict[str, object]:
        return self._settings.kafka_config | {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # A look for a record past a group's offset ends at the partition's end (EOF)
            # on the first empty fetch: a broker holding it for 500 ms, librdkafka's
            # default, made one `pstreams wait` pass take 11 s on six topologies.
            "fetch.wait.max.ms": 10,
        }

    def close(self) -> None:
        self._reader.close()

    def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        metadata = self._reader.list_topics(timeout=10)
        return [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in metadata.topics
            for partition in sorted(metadata.topics[topic].partitions)
        ]

    def topics_with_prefix(self, prefix: str) -> list[str]:
        return sorted(
            t for t in self._reader.list_topics(timeout=10).topics if t.startswith(prefix)
        )

    def ends(self, partitions: Iterable[TopicPartition]) -> dict[tuple[str, int], int]:
        return {
            (tp.topic, tp.partition): self._reader.get_watermark_offsets(tp, timeout=10)[1]
            for tp in partitions
        }

    def committed(
        self, group: str, partitions: Iterable[tuple[str, int]], timeout_s: float = 60.0
    ) -> list[TopicPartition]:
        """The offsets `group` has committed on the partitions (`OFFSET_INVALID`: none).

        Read by a consumer of the group, not the admin API: librdkafka 2.12's
        ListConsumerGroupOffsets crashes the process when the broker answers
        NOT_COORDINATOR (confluentinc/librdkafka#5040), as Kafka does while it loads the
        group's offsets partition. A coordinator that moves or is still loading (after
        a broker restart, or on a new broker) is asked again for up to `timeout_s`.
        """
        wanted = [TopicPartition(t, p) for t, p in partitions]
        deadline = time.monotonic() + timeout_s
        reader = Consumer(self._config(group))
        try:
            while True:
                try:
                    return reader.committed(wanted, timeout=10)
                except KafkaException as exception:
                    code = exception.args[0].code()
                    if code not in _COORDINATOR_NOT_READY or time.monotonic() > deadline:
                        raise
                time.sleep(0.5)
        finally:
            reader.close()

    def lags(
        self,
        group: str,
        external_ends: dict[tuple[str, int], int],
        internal: list[TopicPartition],
    ) -> list[Lag]:
        """Partitions on which `group` has records left to commit: of its external inputs
        (ends taken earlier), and of the topics it writes for itself (`internal`).

        The committed offsets are read before the internal topics' ends: a stage commits
        its input offsets in the transaction that writes its output, so read the other
        way round, a transaction committing between the two reads would show the input
        done and the output not yet there, all caught up.
        """
        partitions = [*external_ends, *((tp.topic, tp.partition) for tp in internal)]
        if not partitions:
            return []
        committed = self.committed(group, partitions)
        ends = external_ends | self.ends(internal)
        lags = []
        for tp in committed:
            end = ends[(tp.topic, tp.partition)]
            start = tp.offset if tp.offset != OFFSET_INVALID else 0
            if start < end and self._has_record_before(tp.topic, tp.partition, start, end):
                lags.append(Lag(group, tp.topic, tp.partition, tp.offset, end))
        return lags

    def _has_record_before(self, topic: str, partition: int, start: int, end: int) -> bool:
        """Is there a committed (non-marker, non-aborted) record in [start, end)?"""
        self._reader.assign([TopicPartition(topic, partition, start)])
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = self._reader.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                # A record before `end` is one left to process. So is an end (EOF) before
                # `end`: a read_committed reader's end is the last stable offset, and below
                # `end` a transaction is still open, or its commit markers are still being
                # written after the group's offsets already show; its records may count.
                if error is None or error.code() == KafkaError._PARTITION_EOF:
                    return message.offset() < end
            return True
        finally:
            self._reader.unassign()


# Pause between two passes of a wait: one pass (a consumer per group) costs more.
LOOK_EVERY_S = 0.1


def wait_until_caught_up(
    settings: Settings, topologies: list[Topology], timeout: float
) -> list[Lag]:
    """Poll until no topology lags; return the lags left when `timeout` runs out.

    The ends of the external inputs are taken once, at the call. Topics the topologies
    write themselves (the interactions topic, Quix repartition topics) are re-read on
    every pass, after the topologies that feed them, so a chain is waited for whole.
    """
    feeders_first = sorted(
        topologies, key=lambda t: settings.interactions_topic in t.inputs(settings)
    )
    probe = ProgressProbe(settings)
    try:
        external = [
            topic
            for topology in topologies
            for topic in topology.inputs(settings)
            if topic != settings.interactions_topic
        ]
        deadline = time.monotonic() + timeout
        external_ends = _answered(lambda: probe.ends(probe.partitions(external)), deadline)
        while True:
            lags = _answered(
                lambda: [
                    lag
                    for topology in feeders_first
                    for lag in _lags(probe, settings, topology, external_ends)
                ],
                deadline,
            )
            if not lags or time.monotonic() > deadline:
                return lags
            time.sleep(LOOK_EVERY_S)
    finally:
        probe.close()


def _answered(ask: Callable[[], T], deadline: float) -> T:
    """What `ask()` returns, asked again while the broker does not answer (a broker
    restarting) until `deadline` (monotonic)."""
    while True:
        try:
            return ask()
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise
            logger.info("the broker did not answer (%s); looking again", error)
            time.sleep(1.0)


def _lags(
    probe: ProgressProbe,
    settings: Settings,
    topology: Topology,
    external_ends: dict[tuple[str, int], int],
) -> list[Lag]:
    group = settings.consumer_group(topology.name)
    internal = [t for t in topology.inputs(settings) if t == settings.interactions_topic]
    internal += repartition_topics(probe, settings, topology)
    ends = {tp: end for tp, end in external_ends.items() if tp[0] in topology.inputs(settings)}
    return probe.lags(group, ends, probe.partitions(internal))


def repartition_topics(probe: ProgressProbe, settings: Settings, topology: Topology) -> list[str]:
    """The repartition topics a topology reads besides its inputs (named after its group)."""
    return probe.topics_with_prefix(f"repartition__{settings.consumer_group(topology.name)}--")
