"""Prometheus metrics every topology reports; served by `/metrics` (see docs/operations.md)."""

from __future__ import annotations

from prometheus_client import Counter

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
