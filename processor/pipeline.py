"""What a topology builds its stream from: decoded sources with a dead-letter topic, outputs.

Every input is consumed as raw bytes and parsed inside the dataframe, so a record that
cannot be parsed becomes a value like any other, which the stream produces to the
topology's dead-letter topic with the checkpoint's producer: written in the same
checkpoint (and, under exactly-once, the same transaction) as everything else, never lost
and never stopping the stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka.admin import AdminClient
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic, TopicConfig
from quixstreams.models.topics import TopicManager

from processor.avro import SchemaRegistry
from processor.backoff import Backoff
from processor.cdc.postgres import PostgresCdcDecoder, RowChange
from processor.checkpointed import CheckpointedStore, CheckpointHook, Outbox
from processor.errors import DecodeError, MissingInputTopic, RegistryUnavailable
from processor.metrics import DEAD_LETTERS, RECORDS_IN, RECORDS_SKIPPED
from processor.serialization import RegistryAvroSerializer
from processor.settings import Settings
from processor.sources import checked
from processor.topics import topic_exists

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Longest wait for the schema registry inside one record (below max.poll.interval.ms).
REGISTRY_PATIENCE_S = 60.0

# Headers added to a dead letter, beside the record's own headers.
ERROR_HEADER = "pstreams.error"
ERROR_TYPE_HEADER = "pstreams.error.type"
SOURCE_TOPIC_HEADER = "pstreams.source.topic"
SOURCE_PARTITION_HEADER = "pstreams.source.partition"
SOURCE_OFFSET_HEADER = "pstreams.source.offset"
TOPOLOGY_HEADER = "pstreams.topology"
# Set, to the value's size in bytes, on a dead letter sent without its value.
VALUE_DROPPED_HEADER = "pstreams.value.dropped"
# A dead letter stays under Kafka's default 1 MB message limit (librdkafka's and the
# broker's), whatever its source topic allowed: a larger one is sent without its value,
# which its source coordinates locate, and an error text is cut at 1,000 characters.
MAX_DEAD_LETTER_BYTES = 900_000
MAX_ERROR_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One input record as it was read, with the coordinates that identify it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed to parse, on its way to the dead-letter topic."""

    record: SourceRecord
    error: DecodeError


class Parser(Generic[T]):
    """Turns raw records into values; `None` means "not data, skip it"."""

    def __init__(self, topology: str, parse: Callable[[SourceRecord], T | None]) -> None:
        self._topology = topology
        self._parse = parse

    def __call__(self, value: bytes | None, key: bytes | None, timestamp: int, headers: Any) -> Any:
        context = message_context()
        record = SourceRecord(
            context.topic, context.partition, context.offset, timestamp, key, value, headers or []
        )
        RECORDS_IN.labels(self._topology, record.topic).inc()
        try:
            parsed = self._parse_waiting_for_registry(record)
        except DecodeError as error:
            DEAD_LETTERS.labels(self._topology, record.topic, type(error).__name__).inc()
            logger.warning(
                "dead letter %s[%d]@%d: %s", record.topic, record.partition, record.offset, error
            )
            return Rejected(record, error)
        if parsed is None:
            RECORDS_SKIPPED.labels(self._topology, record.topic).inc()
        return parsed

    def _parse_waiting_for_registry(self, record: SourceRecord) -> T | None:
        """Parse, retrying while the schema registry cannot answer.

        The record may be fine, so it must not become a dead letter. Short outages are
        ridden out here; a long one (past `REGISTRY_PATIENCE_S`) stops the topology with
        the error, and its supervisor restarts it from the last checkpoint.
        """
        backoff = Backoff(maximum=10.0)
        deadline = time.monotonic() + REGISTRY_PATIENCE_S
        while True:
            try:
                return self._parse(record)
            except RegistryUnavailable as error:
                if time.monotonic() > deadline:
                    raise
                delay = backoff.next_delay()
                logger.warning("%s; retrying in %.1f s", error, delay)
                time.sleep(delay)


def row_by_row(change: RowChange | None) -> RowChange | None:
    """The change, unless it is a TRUNCATE: no derived table is kept by key through one
    (the rows it removes are unknown), so it is bad input for the dead letters rather than
    an error that would stop the topology at every restart."""
    if change is not None and change.op == "truncate":
        raise DecodeError(f"a TRUNCATE of {change.table} cannot be applied row by row")
    return change


class Pipeline:
    """The Quix application of one topology plus the project's conventions around it."""

    def __init__(
        self, app: Application, settings: Settings, topology: str, registry: SchemaRegistry
    ) -> None:
        self.app = app
        self.settings = settings
        self.topology = topology
        self.registry = registry
        self._sources: list[Topic] = []
        self._dead_letter_topic: Topic | None = None
        self._stores: dict[str, CheckpointedStore] = {}
        self.hook = CheckpointHook()
        self._hook_registered = False

    def source(
        self, topic_name: str, parse: Callable[[SourceRecord], T | None]
    ) -> StreamingDataFrame:
        """A stream of `parse`d values of one input topic; failures go to the dead letters.

        The topic must exist: its producer (a connector, or an upstream topology) creates
        it with the configuration it needs, so it is awaited, never created here.
        """
        self._await_topic(topic_name)
        topic = self.app.topic(
            topic_name,
            key_deserializer="bytes",
            value_deserializer="bytes",
        )
        self._sources.append(topic)
        parsed = self.app.dataframe(topic).apply(Parser(self.topology, parse), metadata=True)
        dead_letters = self._dead_letters()

        def parsed_data(value: Any) -> bool:
            """Whether `value` is data; a rejection is sent on to the dead letters here,
            not on a branch of its own: Quix copies every value at a branch (pickling
            it), which cost more than the parsing."""
            if isinstance(value, Rejected):
                self._dead_letter(parsed, dead_letters, value)
                return False
            return value is not None

        return parsed.filter(parsed_data)

    def _await_topic(self, name: str) -> None:
        """Wait up to `INPUT_TOPIC_WAIT_S` for the topic; then stop, naming its variable."""
        admin = AdminClient(self.settings.kafka_config)
        backoff = Backoff(maximum=5.0)
        variable = self.settings.variable_naming(name)
        deadline = time.monotonic() + self.settings.input_topic_wait_s
        while not topic_exists(admin, name):
            if time.monotonic() > deadline:
                raise MissingInputTopic(
                    f"input topic {name} does not exist after {self.settings.input_topic_wait_s:g}"
                    f" s (INPUT_TOPIC_WAIT_S); check {variable}, which names it, and that its"
                    " producer runs"
                )
            delay = backoff.next_delay()
            logger.info(
                "waiting for input topic %s (named by %s) to be created; next look in %.1f s",
                name,
                variable,
                delay,
            )
            time.sleep(delay)

    def partitions_of(self, topic_name: str) -> int:
        """The number of partitions of a topic, once it exists."""
        self._await_topic(topic_name)
        metadata = AdminClient(self.settings.kafka_config).list_topics(topic_name, timeout=30)
        return len(metadata.topics[topic_name].partitions)

    def row_changes(self, table: str) -> StreamingDataFrame:
        """The CDC stream of a captured PostgreSQL table as row `RowChange`s (SPEC 1.1),
        each checked against what the derived tables need of it (`processor.sources`)."""
        decoder = PostgresCdcDecoder(self.registry)
        return self.source(
            self.settings.pg_topic(table),
            lambda record: checked(
                row_by_row(decoder.decode(record.topic, record.key, record.value, record.headers))
            ),
        )

    def store(self, stream: StreamingDataFrame) -> CheckpointedStore:
        """The checkpointed state store of a stream (one per input topic)."""
        store = self._stores.get(stream.stream_id)
        if store is None:
            store = self._stores[stream.stream_id] = CheckpointedStore(stream)
            self.hook.persist(store)
            self._register_hook(stream)
        return store

    def outbox(self, stream: StreamingDataFrame, topic: Topic, levels: int = 1) -> Outbox:
        """Messages from `stream` to an internal topic, sent once per checkpoint."""
        outbox = Outbox(stream, topic.name, levels)
        self.hook.on_checkpoint(outbox.send)
        self._register_hook(stream)
        return outbox

    def internal_topic(self, name: str) -> Topic:
        """A topic between two stages of this topology, JSON-valued and keyed by a string.

        Named like Quix's own repartition topics (`repartition__<group>--<name>`), with the
        sources' partitions, replication and retention.
        """
        return self.app.topic(
            f"repartition__{self.settings.consumer_group(self.topology)}--{name}",
            key_serializer="str",
            key_deserializer="str",
            value_serializer="json",
            value_deserializer="json",
            config=TopicManager.derive_topic_config(self._sources),
        )

    def _register_hook(self, stream: StreamingDataFrame) -> None:
        """Quix flushes registered sinks at every commit; the hook is one, and goes first."""
        if not self._hook_registered:
            stream.processing_context.sink_manager.register(self.hook)
            self._hook_registered = True

    def avro_topic(self, name: str, schema: dict[str, Any]) -> Topic:
        """An output topic of Avro values registered under `<name>-value`, keyed by a string.

        Partitions, replication and retention are those of the sources (as Quix does for
        its internal topics), so it fits the cluster the inputs live on.
        """
        return self.app.topic(
            name,
            key_serializer="str",
            value_serializer=RegistryAvroSerializer(self.registry, f"{name}-value", schema),
            config=TopicManager.derive_topic_config(self._sources),
        )

    def json_topic(self, name: str) -> Topic:
        """An output topic of JSON values that keeps each input record's key, configured
        like the sources (as `avro_topic`)."""
        return self.app.topic(
            name,
            key_serializer="bytes",
            value_serializer="json",
            config=TopicManager.derive_topic_config(self._sources),
        )

    def compacted_topic(self, name: str) -> Topic:
        """A topic of absolute values by key, created compacted when missing: a reader
        from its start gets the latest value of each key, and no key deleted since."""
        config = TopicManager.derive_topic_config(self._sources)
        config.extra_config["cleanup.policy"] = "compact"
        return self.app.topic(name, key_serializer="bytes", value_serializer="bytes", config=config)

    def _dead_letters(self) -> Topic:
        if self._dead_letter_topic is None:
            config = TopicManager.derive_topic_config(self._sources)
            self._dead_letter_topic = self.app.topic(
                self.settings.dead_letter_topic_for(self.topology),
                key_serializer="bytes",
                value_serializer="bytes",
                config=TopicConfig(
                    num_partitions=1,
                    replication_factor=config.replication_factor,
                    extra_config=config.extra_config,
                ),
            )
        return self._dead_letter_topic

    def _dead_letter(self, stream: StreamingDataFrame, topic: Topic, rejection: Rejected) -> None:
        """Produce the rejected record, as it was read (unless over `MAX_DEAD_LETTER_BYTES`),
        to the dead-letter topic within the checkpoint's (transactional) producer."""
        record = rejection.record
        ours = self._dead_letter_headers(rejection)
        key, value, headers = record.key, record.value, [*record.headers, *ours]
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > MAX_DEAD_LETTER_BYTES:
            logger.warning(
                "dead letter %s[%d]@%d is %d bytes; sent without its key, value and headers",
                record.topic,
                record.partition,
                record.offset,
                size,
            )
            key, value = None, None
            headers = [*ours, (VALUE_DROPPED_HEADER, str(len(record.value or b"")).encode())]
        stream.processing_context.producer.produce(
            topic=topic.name, key=key, value=value, headers=headers, timestamp=record.timestamp_ms
        )

    def _dead_letter_headers(self, rejection: Rejected) -> list[tuple[str, bytes]]:
        """The headers a dead letter gets beside the record's own."""
        record = rejection.record
        return [
            (ERROR_HEADER, str(rejection.error)[:MAX_ERROR_CHARS].encode()),
            (ERROR_TYPE_HEADER, type(rejection.error).__name__.encode()),
            (SOURCE_TOPIC_HEADER, record.topic.encode()),
            (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
            (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
            (TOPOLOGY_HEADER, self.topology.encode()),
        ]
