"""A consumer that keeps polling out of its group is taken for an outage in time."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException

from processor.membership import MembershipWatch
from processor.metrics import KafkaStatistics
from processor.runner import broker_outage


def report(state: str, join_state: str) -> str:
    return orjson.dumps({"cgrp": {"state": state, "join_state": join_state}}).decode()


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_out_of_its_group_past_the_timeout_raises_an_outage() -> None:
    clock = Clock()
    watch = MembershipWatch(KafkaStatistics("t"), timeout_s=150, clock=clock)
    watch.on_consumer(report("query-coord", "init"))
    clock.now = 149.0
    watch.on_consumer(report("wait-coord", "init"))
    clock.now = 150.0
    with pytest.raises(KafkaException) as raised:
        watch.on_consumer(report("wait-coord", "init"))
    found = broker_outage(raised.value)
    assert found is not None and found.code() == KafkaError._TIMED_OUT
    assert "150 s" in found.str() and "wait-coord/init" in found.str()


def test_a_membership_regained_in_time_starts_the_count_again() -> None:
    clock = Clock()
    watch = MembershipWatch(KafkaStatistics("t"), timeout_s=150, clock=clock)
    watch.on_consumer(report("up", "wait-join"))  # a rebalance
    clock.now = 100.0
    watch.on_consumer(report("up", "steady"))
    clock.now = 200.0
    watch.on_consumer(report("up", "wait-sync"))
    clock.now = 340.0
    watch.on_consumer(report("up", "wait-sync"))  # 140 s out: not yet


def test_the_report_still_reaches_the_statistics() -> None:
    statistics = KafkaStatistics("t")
    MembershipWatch(statistics).on_consumer(report("up", "steady"))
    assert statistics.group_state() == ("up", "steady")
