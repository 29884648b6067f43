"""A consumer that stays out of its group while it keeps polling is an outage, not a run.

After a broker restart, librdkafka 2.12's consumer was seen (1 run in 12 of the outage
test) to go on polling without ever rejoining its group: the coordinator removed the
member when its session expired, and nothing more came from it. The processing loop
looked alive (`/healthz`), the partitions had no owner, and the table stopped for good.
A restart of the clients mends it, so once the consumer's own statistics have said
for `GROUP_ABSENCE_TIMEOUT_S` that it is not a steady member, the statistics callback
raises, from the loop's poll, an error the runner takes for an outage: it rejoins.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from processor.metrics import KafkaStatistics

# Longer than a rebalance takes here (a member rejoins within seconds of its poll), and
# than Quix's own wait for an unreachable broker (120 s), so that a true outage is
# reported as Quix reports it.
GROUP_ABSENCE_TIMEOUT_S = 150.0
_MEMBER = ("up", "steady")  # librdkafka's cgrp state and join state of a member


class MembershipWatch:
    """Watches the consumer's group state in each statistics report it delivers."""

    def __init__(
        self,
        statistics: KafkaStatistics,
        timeout_s: float = GROUP_ABSENCE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._statistics = statistics
        self._timeout_s = timeout_s
        self._clock = clock
        self._absent_since: float | None = None

    def on_consumer(self, report_json: str) -> None:
        """The consumer's `stats_cb`: records the report, then raises if the consumer
        has been out of its group too long (confluent-kafka raises it from `poll`)."""
        self._statistics.on_consumer(report_json)
        state = self._statistics.group_state()
        if state is None or state == _MEMBER:
            self._absent_since = None
            return
        now = self._clock()
        if self._absent_since is None:
            self._absent_since = now
        elif now - self._absent_since >= self._timeout_s:
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT,
                    f"the consumer has not been a member of its group for"
                    f" {now - self._absent_since:.0f} s (group state {'/'.join(state)})",
                )
            )
