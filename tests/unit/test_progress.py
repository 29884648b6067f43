"""The progress probe's patience with a broker that does not answer."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from processor import progress

NOT_ANSWERING = KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress.time, "sleep", lambda _s: None)


def test_a_question_is_asked_again_until_the_broker_answers() -> None:
    answers = [NOT_ANSWERING, NOT_ANSWERING, {"t": 3}]

    def ask() -> dict[str, int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert progress._answered(ask, deadline=time.monotonic() + 60) == {"t": 3}


def test_the_broker_away_past_the_deadline_is_raised() -> None:
    def ask() -> None:
        raise NOT_ANSWERING

    with pytest.raises(KafkaException):
        progress._answered(ask, deadline=time.monotonic() - 1)
