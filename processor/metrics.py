"""Prometheus metrics every topology reports; served by `/metrics` (docs/deployment.md).

Counters that the code increments live here as module constants. What librdkafka
already measures (records produced per topic, consumer lag, the group assignment,
changelog restore position) is read from its statistics callback by `KafkaStatistics`
rather than counted a second time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

RECORDS_IN = Counter(
    "pstreams_records_in",
    "Input records read, by topology and source topic.",
    ["topology", "topic"],
)
RECORDS_SKIPPED = Counter(
    "pstreams_records_skipped",
    "Input records that are not data and are skipped on purpose (e.g. DynamoDB REMOVE).",
    ["topology", "topic"],
)
DEAD_LETTERS = Counter(
    "pstreams_dead_letters",
    "Input records sent to the dead-letter topic, by topology, source topic and error type.",
    ["topology", "topic", "error"],
)
LATE_EVENTS = Counter(
    "pstreams_late_events",
    "Events dropped because their event-time window had already closed, by topology.",
    ["topology"],
)
ROWS_REFUSED = Counter(
    "pstreams_rows_refused",
    "Derived rows PostgreSQL refused to store (a data error), kept out of the table, by"
    " table and SQLSTATE.",
    ["table", "sqlstate"],
)
REJOINS = Counter(
    "pstreams_rejoins",
    "Times a topology stopped on a broker outage (a lost group membership, a broker that"
    " did not answer), dropped its checkpoint and rejoined in-process, by Kafka error.",
    ["topology", "error"],
)
SINK_BATCH_ROWS = Histogram(
    "pstreams_sink_batch_rows",
    "Rows (upserts plus deletes) written to PostgreSQL per flush, by table.",
    ["table"],
    buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
)
SINK_FLUSH_SECONDS = Histogram(
    "pstreams_sink_flush_seconds",
    "Duration of one PostgreSQL flush (one transaction), by table; failed flushes included.",
    ["table"],
)


@contextmanager
def measured_flush(table: str, rows: int) -> Iterator[None]:
    """Time one sink flush of `rows` rows into `table` (failed ones too: they are retried)."""
    SINK_BATCH_ROWS.labels(table).observe(rows)
    with SINK_FLUSH_SECONDS.labels(table).time():
        yield


# How often librdkafka reports its statistics: the freshness of lag and output counts.
STATISTICS_INTERVAL_MS = 5000
CHANGELOG_PREFIX = "changelog__"


@dataclass(frozen=True)
class PartitionView:
    """What one statistics report says about one topic partition."""

    topic: str
    partition: int
    stats: dict[str, Any]

    @property
    def assigned(self) -> bool:
        return bool(self.stats.get("desired")) and self.stats.get("fetch_state") != "none"

    def remaining(self, position_unknown_from_start: bool = False) -> int | None:
        """Records between this process's position and the end of the partition.

        The end is the last stable offset (what a read_committed consumer can reach).
        The position is the next record the application gets; with nothing prefetched
        it is the fetch position, which has stepped over transaction markers (so an idle
        transactional topic shows 0, not 1). Without any position (nothing consumed or
        committed yet) the partition counts from its start if asked, else is unknown.
        """
        stats = self.stats
        end = stats.get("ls_offset", -1)
        if end < 0:
            end = stats.get("hi_offset", -1)
        position = max(stats.get("app_offset", -1), stats.get("committed_offset", -1))
        if stats.get("fetchq_cnt", 0) == 0:
            position = max(position, stats.get("next_offset", -1))
        if position < 0 and position_unknown_from_start:
            position = stats.get("lo_offset", 0)
        if end < 0 or position < 0:
            return None
        return max(end - position, 0)


def _partitions(report: dict[str, Any]) -> Iterator[PartitionView]:
    for topic, topic_stats in report.get("topics", {}).items():
        for number, stats in topic_stats.get("partitions", {}).items():
            if int(number) >= 0:  # -1 is librdkafka's internal "unassigned" partition
                yield PartitionView(topic, int(number), stats)


class KafkaStatistics(Collector):
    """The latest librdkafka statistics of a topology's consumer and producer, as metrics.

    `on_consumer` / `on_producer` are the `stats_cb`s; they run on the processing thread
    inside `poll`, so their arrival also shows that the processing loop is alive. The
    HTTP thread reads them, hence the lock.
    """

    def __init__(self, topology: str) -> None:
        self.topology = topology
        self._consumer: dict[str, Any] = {}
        self._producer: dict[str, Any] = {}
        self._last_report: float | None = None
        self._lock = threading.Lock()

    def on_consumer(self, report_json: str) -> None:
        with self._lock:
            self._consumer = orjson.loads(report_json)
            self._last_report = time.monotonic()

    def on_producer(self, report_json: str) -> None:
        with self._lock:
            self._producer = orjson.loads(report_json)
            self._last_report = time.monotonic()

    def seconds_since_report(self) -> float | None:
        """Seconds since the processing loop last delivered statistics; None before any."""
        with self._lock:
            return None if self._last_report is None else time.monotonic() - self._last_report

    def group_state(self) -> tuple[str, str] | None:
        """(state, join_state) of the consumer group membership; None before any report."""
        with self._lock:
            group = self._consumer.get("cgrp")
        return None if group is None else (group.get("state", ""), group.get("join_state", ""))

    def assigned_partitions(self) -> list[tuple[str, int]]:
        """Input and internal topic partitions assigned to this process (changelogs aside)."""
        with self._lock:
            views = list(_partitions(self._consumer))
        return sorted(
            (view.topic, view.partition)
            for view in views
            if view.assigned and not view.topic.startswith(CHANGELOG_PREFIX)
        )

    def restoring(self) -> dict[tuple[str, int], int]:
        """Changelog partitions being replayed into state, with the records still to go."""
        with self._lock:
            views = list(_partitions(self._consumer))
        return {
            (view.topic, view.partition): remaining
            for view in views
            if view.topic.startswith(CHANGELOG_PREFIX)
            and view.assigned
            and (remaining := view.remaining(position_unknown_from_start=True)) is not None
        }

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._lock:
            consumed = list(_partitions(self._consumer))
            produced = list(_partitions(self._producer))
        labels = ["topology", "topic", "partition"]
        lag = GaugeMetricFamily(
            "pstreams_consumer_lag",
            "Records not yet processed in each assigned partition (librdkafka statistics).",
            labels=labels,
        )
        for view in consumed:
            behind = view.remaining() if view.assigned else None
            if behind is not None and not view.topic.startswith(CHANGELOG_PREFIX):
                lag.add_metric([self.topology, view.topic, str(view.partition)], behind)
        assigned = GaugeMetricFamily(
            "pstreams_assigned_partitions",
            "Input and internal topic partitions assigned to this process.",
            labels=["topology"],
        )
        assigned.add_metric([self.topology], len(self.assigned_partitions()))
        restore = GaugeMetricFamily(
            "pstreams_state_restore_remaining",
            "Changelog records still to replay into local state, per changelog partition.",
            labels=labels,
        )
        for (topic, partition), remaining in self.restoring().items():
            restore.add_metric([self.topology, topic, str(partition)], remaining)
        out = CounterMetricFamily(
            "pstreams_records_out",
            "Records produced per topic since the process started (librdkafka txmsgs; "
            "records of aborted transactions included).",
            labels=["topology", "topic"],
        )
        totals: dict[str, int] = {}
        for view in produced:
            totals[view.topic] = totals.get(view.topic, 0) + view.stats.get("txmsgs", 0)
        for topic, total in sorted(totals.items()):
            out.add_metric([self.topology, topic], total)
        yield from (lag, assigned, restore, out)
