"""The `interaction_data` topic as the analytics topologies read it: decoded, deduplicated.

Every interaction carries the identity of its DynamoDB CDC record (source topic,
partition, offset). The `interaction_data` topology handles each source partition in
order, so within one partition of the interactions topic the offsets of a source
partition only grow, except where records were produced twice. Under exactly-once (the
default) Kafka hides a killed transaction's records from these read_committed readers,
so that does not happen; under `PROCESSING_GUARANTEE=at-least-once` a replay after a
crash publishes a checkpoint's records again. A record whose source offset is not above
the highest one already taken is such a repeat and is dropped, so no interaction is
counted twice under either guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass

from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from processor import storable
from processor.avro import SchemaRegistry
from processor.errors import DecodeError
from processor.pipeline import Pipeline, SourceRecord


@dataclass(frozen=True, slots=True)
class Interaction:
    """The columns of SPEC 2.1 the analytics use, plus the record's identity."""

    user_id: str | None
    item_id: str | None
    action_type: str | None
    event_time_ms: int
    source_topic: str
    source_partition: int
    source_offset: int
    captured_ms: int = 0
    """The Kafka timestamp of its record: when the DynamoDB connector captured it."""

    @property
    def is_purchase(self) -> bool:
        return self.action_type == "purchase"

    @property
    def source(self) -> str:
        """The DynamoDB CDC partition the interaction came from."""
        return source_partition_name(self.source_topic, self.source_partition)


def source_partition_name(topic: str, partition: int) -> str:
    return f"{topic}[{partition}]"


def decode_interaction(registry: SchemaRegistry, record: SourceRecord) -> Interaction:
    if record.value is None:
        raise DecodeError("an interactions record has no value")
    value, _ = registry.decode(record.value, record.headers)
    return Interaction(
        # Ids are keys of the analytics tables: too long for an index is bad input.
        user_id=storable.key_text(value["user_id"], "user_id"),
        item_id=storable.key_text(value["item_id"], "item_id"),
        action_type=value["action_type"],
        event_time_ms=int(value["event_time_ltz"].timestamp() * 1000),
        source_topic=value["source_topic"],
        source_partition=value["source_partition"],
        source_offset=value["source_offset"],
        captured_ms=record.timestamp_ms,
    )


def interactions(pipeline: Pipeline) -> StreamingDataFrame:
    """Each interaction of the interactions topic, once."""
    registry = pipeline.registry
    stream = pipeline.source(
        pipeline.settings.interactions_topic, lambda record: decode_interaction(registry, record)
    )
    store = pipeline.store(stream)

    def first_time(interaction: Interaction) -> bool:
        partition = message_context().partition
        # The next source offset to take: 0 (nothing taken) is the default, because
        # the checkpointed store keeps no empty values.
        next_offset = store.table(partition, "next offset", factory=int)
        if interaction.source_offset < next_offset[interaction.source]:
            return False
        next_offset[interaction.source] = interaction.source_offset + 1
        return True

    return stream.filter(first_time)
