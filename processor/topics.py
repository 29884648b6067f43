"""Creating topics: those that pstreams tools produce into (seed load, replay), and those
a topology's Quix application creates for itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams.models import Topic
from quixstreams.models.topics.admin import TopicAdmin

logger = logging.getLogger(__name__)


def create_topics(
    kafka: str | Mapping[str, str],
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet; existing topics are left as they are.

    `kafka` is the bootstrap servers or a full librdkafka configuration (for SASL).
    `config` is the topics' configuration (e.g. `cleanup.policy`); the broker's defaults
    apply to the rest, as for topics a connector creates.
    """
    admin_config = {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)
    new_topics = [NewTopic(name, partitions, config=dict(config or {})) for name in names]
    create_new_topics(AdminClient(admin_config), new_topics, timeout_s)


def create_new_topics(admin: AdminClient, new_topics: list[NewTopic], timeout_s: float) -> None:
    """Create `new_topics` (one that exists already is left as it is), and return once
    the broker's metadata lists them all: Kafka acknowledges a creation when its
    controller has it, a moment before the brokers serve it."""
    if not new_topics:
        return
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


class PromptTopicAdmin(TopicAdmin):
    """Quix's topic admin, returning as soon as its topics exist.

    Quix's own waits a whole second before it first looks at a creation's result, and a
    topology creates its topics one at a time as its stream is built: a topology with
    six new topics took six seconds to start.
    """

    def create_topics(
        self, topics: list[Topic], timeout: float = 30, finalize_timeout: float = 60
    ) -> None:
        existing = self.list_topics(timeout=timeout)
        new_topics = [_new_topic(topic) for topic in topics if topic.name not in existing]
        create_new_topics(self.admin_client, new_topics, max(timeout, finalize_timeout))


def _new_topic(topic: Topic) -> NewTopic:
    """The creation request for a Quix topic: its create config, else the broker's defaults."""
    config = topic.create_config
    logger.info("creating topic %s (%s)", topic.name, config.as_dict() if config else {})
    if config is None:
        return NewTopic(topic.name)
    return NewTopic(
        topic.name,
        config.num_partitions,
        config.replication_factor,
        config=dict(config.extra_config),
    )
