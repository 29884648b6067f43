"""Creating topics (`processor.topics.create_new_topics`) against a stubbed admin client."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from processor import topics

FENCED = KafkaError(
    KafkaError.INVALID_REPLICATION_FACTOR,
    "Unable to replicate the partition 1 time(s): All brokers are currently fenced.",
)


class Admin:
    """Refuses each creation with the next of `refusals` (None: created), then lists
    every topic it created."""

    def __init__(self, *refusals: KafkaError | None) -> None:
        self.refusals = list(refusals)
        self.created: set[str] = set()
        self.asked = 0

    def create_topics(self, new_topics: list[NewTopic], request_timeout: float):
        self.asked += 1
        refusal = self.refusals.pop(0) if self.refusals else None
        futures = {}
        for topic in new_topics:
            future: Future = Future()
            if refusal is None:
                self.created.add(topic.topic)
                future.set_result(None)
            else:
                future.set_exception(KafkaException(refusal))
            futures[topic.topic] = future
        return futures

    def list_topics(self, name: str, timeout: float):
        error = None if name in self.created else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        return SimpleNamespace(topics={name: SimpleNamespace(error=error)})


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topics, "CREATE_AGAIN_AFTER_S", 0.0)


def test_a_creation_refused_while_the_brokers_are_fenced_is_asked_again() -> None:
    admin = Admin(FENCED, FENCED, None)
    topics.create_new_topics(admin, [NewTopic("a"), NewTopic("b")], timeout_s=5)
    assert admin.created == {"a", "b"}
    assert admin.asked == 3


def test_a_replication_factor_never_given_is_refused_once_the_time_is_up() -> None:
    admin = Admin(*[FENCED] * 1000)
    with pytest.raises(KafkaException) as raised:
        topics.create_new_topics(admin, [NewTopic("a")], timeout_s=0.05)
    assert raised.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert admin.created == set()


def test_another_refusal_is_raised_at_once() -> None:
    admin = Admin(KafkaError(KafkaError.POLICY_VIOLATION, "no"), None)
    with pytest.raises(KafkaException):
        topics.create_new_topics(admin, [NewTopic("a")], timeout_s=5)
    assert admin.asked == 1


def test_a_topic_that_exists_is_left_as_it_is() -> None:
    admin = Admin(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS, "exists"))
    admin.created.add("a")
    topics.create_new_topics(admin, [NewTopic("a")], timeout_s=5)
    assert admin.asked == 1
