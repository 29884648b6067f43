"""Creating topics: those that pstreams tools produce into (seed load, replay), and those
a topology's Quix application creates for itself; and looking for its input topics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams.models import Topic
from quixstreams.models.topics.admin import TopicAdmin

from processor.permissions import topic_denied

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
    controller has it, a moment before the brokers serve it.

    A creation refused for its replication factor is asked again until `timeout_s` has
    passed: a broker shutting down or just started is fenced, and KRaft then refuses
    every creation so ("all brokers are currently fenced") for a moment. A factor the
    cluster can never give is still refused once the time is up.
    """
    if not new_topics:
        return
    deadline = time.monotonic() + timeout_s
    refused = _create(admin, new_topics, timeout_s)
    while refused:
        name, refusal = next(iter(refused.items()))
        if time.monotonic() > deadline:
            raise KafkaException(refusal)
        logger.warning("creating topic %s again: %s", name, refusal.str())
        time.sleep(CREATE_AGAIN_AFTER_S)
        refused = _create(admin, [t for t in new_topics if t.topic in refused], timeout_s)
    deadline = time.monotonic() + timeout_s  # the metadata get their own time, as before
    # One that is created but may not be described never shows: `topic_exists` says so.
    while not all(topic_exists(admin, topic.topic) for topic in new_topics):
        if time.monotonic() > deadline:
            raise KafkaException(f"created topics not in the metadata after {timeout_s} s")
        time.sleep(0.05)


# Pause before a creation refused for its replication factor is asked again.
CREATE_AGAIN_AFTER_S = 0.5


def _create(
    admin: AdminClient, new_topics: list[NewTopic], timeout_s: float
) -> dict[str, KafkaError]:
    """Ask for the topics; return those refused for their replication factor, with the
    error. Any other refusal, but that the topic exists, is raised."""
    refused = {}
    futures = admin.create_topics(new_topics, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exception:
            error = exception.args[0]
            code = error.code()
            if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                # Also what a topic that exists looks like to a principal that may not
                # describe it: it was missing from the list, so its creation was asked.
                raise topic_denied(name, "CREATE (or DESCRIBE, if it exists)") from None
            if code == KafkaError.INVALID_REPLICATION_FACTOR:
                refused[name] = error
            elif code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return refused


def topic_exists(admin: AdminClient, name: str) -> bool:
    """Whether the topic exists; a principal that may not describe it is told so at once
    (Kafka answers it alike whether or not the topic exists) instead of waiting for it."""
    error = admin.list_topics(name, timeout=30).topics[name].error
    if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        raise topic_denied(name, "DESCRIBE (which READ and WRITE imply)")
    return error is None


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
