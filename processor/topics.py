"""Creating the topics that pstreams tools produce into (seed load, replay)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(
    kafka: str | Mapping[str, str],
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet; existing topics are left as they are.

    Returns once the broker's metadata lists every topic: Kafka acknowledges a creation
    when its controller has it, a moment before the brokers serve it.

    `kafka` is the bootstrap servers or a full librdkafka configuration (for SASL).
    `config` is the topics' configuration (e.g. `cleanup.policy`); the broker's defaults
    apply to the rest, as for topics a connector creates.
    """
    new_topics = [NewTopic(name, partitions, config=dict(config or {})) for name in names]
    if not new_topics:
        return
    admin_config = {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)
    admin = AdminClient(admin_config)  # kept referenced: its futures die with it
    futures = admin.create_topics(new_topics, request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    wanted = {topic.topic for topic in new_topics}
    deadline = time.monotonic() + timeout_s
    while not wanted <= admin.list_topics(timeout=timeout_s).topics.keys():
        if time.monotonic() > deadline:
            raise KafkaException(f"created topics not in the metadata after {timeout_s} s")
        time.sleep(0.05)
