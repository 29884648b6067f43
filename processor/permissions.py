"""Kafka refusing the topology's principal: one line naming what to grant, not a retry.

A missing ACL never heals by itself, and librdkafka reports it in as many shapes as there
are calls (a consumer error, a fatal producer error, a failed admin future). Whatever
the shape, `denial` finds the authorization error in an exception's chain and words it
as the permission the topology lacks, with the ACLs of `pstreams acl` as the remedy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from confluent_kafka import KafkaError, KafkaException
from quixstreams.kafka.exceptions import KafkaBrokerUnavailableError
from quixstreams.models.topics.exceptions import TopicPermissionError

from processor.errors import ConfigurationError

_TOPIC = KafkaError.TOPIC_AUTHORIZATION_FAILED
_GROUP = KafkaError.GROUP_AUTHORIZATION_FAILED
_TRANSACTIONAL_ID = KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
_CLUSTER = KafkaError.CLUSTER_AUTHORIZATION_FAILED
AUTHORIZATION_FAILURES = frozenset({_TOPIC, _GROUP, _TRANSACTIONAL_ID, _CLUSTER})


class PermissionDenied(ConfigurationError):
    """The broker refused an operation for want of an ACL."""


def topic_denied(topic: str, operations: str) -> PermissionDenied:
    """A refusal whose topic and operations the caller knows."""
    return PermissionDenied(
        f"Kafka denied {operations} on topic {topic}: grant it to this topology's principal"
    )


def kafka_errors(exception: BaseException) -> Iterator[KafkaError]:
    """The `KafkaError`s in the exception's chain, outermost first (Quix wraps
    librdkafka's, and an error while closing can wrap the one that stopped the run).

    Quix's own `KafkaBrokerUnavailableError` (librdkafka's clients found no broker for
    `broker_availability_timeout`, 120 s) carries none, and counts as `_ALL_BROKERS_DOWN`.
    """
    seen: BaseException | None = exception
    while seen is not None:
        if isinstance(seen, KafkaException) and isinstance(seen.args[0], KafkaError):
            yield seen.args[0]
        elif isinstance(seen, KafkaBrokerUnavailableError):
            yield KafkaError(KafkaError._ALL_BROKERS_DOWN, str(seen))
        elif isinstance(error := getattr(seen, "error", None), KafkaError):
            yield error
        seen = seen.__cause__ or seen.__context__


def kafka_error(exception: BaseException) -> KafkaError | None:
    """The first `KafkaError` in the exception's chain."""
    return next(kafka_errors(exception), None)


def denial(exception: BaseException, group: str) -> PermissionDenied | None:
    """What `exception` says the principal of consumer group `group` may not do, if it
    is an authorization failure at all."""
    if isinstance(exception, PermissionDenied):
        return exception
    if isinstance(exception, TopicPermissionError):
        return PermissionDenied(str(exception))
    error = kafka_error(exception)
    if error is None or error.code() not in AUTHORIZATION_FAILURES:
        return None
    text = error.str()
    if error.code() == _GROUP:
        return PermissionDenied(f"Kafka denied READ on consumer group {group} ({text})")
    if error.code() == _TRANSACTIONAL_ID:
        return PermissionDenied(
            f"Kafka denied WRITE on transactional ids prefixed {group}- ({text})"
        )
    if error.code() == _CLUSTER:
        return PermissionDenied(f"Kafka denied a cluster operation ({text})")
    named = re.search(r"[Tt]opic[^:]*: ([^\s:,]+)", text)
    where = f"topic {named.group(1)}" if named else "a topic"
    return PermissionDenied(f"Kafka denied access to {where} ({text})")
