"""Reading topics back in tests, as a read_committed consumer sees them."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from processor.settings import Settings


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
