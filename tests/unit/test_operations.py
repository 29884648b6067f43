"""Operations endpoints, librdkafka statistics as metrics, log format and secret masking.

The endpoints are also tested against a running topology on the local stack
(tests/integration/test_operations.py); here each part is checked on its own.
"""

from __future__ import annotations

import io
import json
import logging

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from processor.local.ports import free_ports
from processor.logs import JsonFormatter, RedactSecrets, secret_values
from processor.metrics import KafkaStatistics
from processor.operations import OperationsServer, Probes, postgres_check
from processor.settings import Settings, load_settings


def consumer_report(partitions: dict[str, dict[int, dict]], state: str = "steady") -> str:
    """A consumer statistics report shaped like librdkafka's (STATISTICS.md)."""
    topics = {
        topic: {
            "partitions": {str(n): stats for n, stats in parts.items()}
            | {"-1": {"desired": False, "fetch_state": "none"}}
        }
        for topic, parts in partitions.items()
    }
    return orjson.dumps({"cgrp": {"state": "up", "join_state": state}, "topics": topics}).decode()


def assigned(**offsets: int) -> dict[str, object]:
    return {"desired": True, "fetch_state": "active", "fetchq_cnt": 0} | offsets


def test_statistics_give_lag_assignment_restore_and_output() -> None:
    statistics = KafkaStatistics("t")
    assert statistics.group_state() is None and statistics.seconds_since_report() is None
    statistics.on_consumer(
        consumer_report(
            {
                "in": {
                    0: assigned(ls_offset=10, app_offset=4, next_offset=9, fetchq_cnt=5),
                    # Idle transactional topic: the fetch position stepped over the marker.
                    1: assigned(ls_offset=7, app_offset=6, next_offset=7),
                    2: {"desired": False, "fetch_state": "none", "ls_offset": 3},
                },
                "changelog__g--store": {0: assigned(hi_offset=500, lo_offset=0, next_offset=-1)},
            }
        )
    )
    statistics.on_producer(
        orjson.dumps(
            {"topics": {"out": {"partitions": {"0": {"txmsgs": 3}, "1": {"txmsgs": 4}}}}}
        ).decode()
    )
    assert statistics.group_state() == ("up", "steady")
    assert statistics.assigned_partitions() == [("in", 0), ("in", 1)]
    assert statistics.restoring() == {("changelog__g--store", 0): 500}
    assert statistics.seconds_since_report() < 5

    registry = CollectorRegistry()
    registry.register(statistics)
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    lag = "pstreams_consumer_lag"
    assert values[(lag, (("partition", "0"), ("topic", "in"), ("topology", "t")))] == 6
    assert values[(lag, (("partition", "1"), ("topic", "in"), ("topology", "t")))] == 0
    assert not [
        key for key in values if key[0] == lag and ("topic", "changelog__g--store") in key[1]
    ]
    assert values[("pstreams_assigned_partitions", (("topology", "t"),))] == 2
    restore = (("partition", "0"), ("topic", "changelog__g--store"), ("topology", "t"))
    assert values[("pstreams_state_restore_remaining", restore)] == 500
    assert values[("pstreams_records_out_total", (("topic", "out"), ("topology", "t")))] == 7


class FakeStatistics(KafkaStatistics):
    def __init__(self) -> None:
        super().__init__("t")
        self.silent: float | None = None

    def seconds_since_report(self) -> float | None:
        return self.silent


@pytest.fixture
def served() -> tuple[FakeStatistics, dict[str, str | None], str]:
    statistics = FakeStatistics()
    sink: dict[str, str | None] = {"problem": None}
    probes = Probes(statistics, lambda: sink["problem"], stall_after_s=60)
    registry = CollectorRegistry()
    registry.register(statistics)
    server = OperationsServer("127.0.0.1", 0, probes, registry).start()
    yield statistics, sink, f"http://127.0.0.1:{server.port}"
    server.stop()


def test_probes_follow_group_restore_sink_and_loop(served) -> None:
    statistics, sink, url = served
    assert httpx.get(f"{url}/healthz").status_code == 200
    not_ready = httpx.get(f"{url}/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["group"] == "no report yet"

    statistics.on_consumer(consumer_report({"in": {0: assigned(ls_offset=1, app_offset=1)}}))
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "group": "up/steady",
        "assigned_partitions": ["in[0]"],
        "restoring": {},
        "sink": "ok",
    }

    statistics.on_consumer(
        consumer_report({"changelog__g--s": {0: assigned(hi_offset=9, next_offset=4)}})
    )
    assert httpx.get(f"{url}/readyz").json()["restoring"] == {"changelog__g--s[0]": 5}
    statistics.on_consumer(consumer_report({}, state="wait-join"))
    assert httpx.get(f"{url}/readyz").status_code == 503
    statistics.on_consumer(consumer_report({}))
    sink["problem"] = "OperationalError: connection refused"
    answer = httpx.get(f"{url}/readyz")
    assert answer.status_code == 503 and answer.json()["sink"] == sink["problem"]

    statistics.silent = 61
    assert httpx.get(f"{url}/healthz").status_code == 503
    statistics.silent = 1
    assert httpx.get(f"{url}/healthz").json()["alive"] is True
    assert httpx.get(f"{url}/other").status_code == 404


def test_metrics_are_prometheus_text(served) -> None:
    statistics, _, url = served
    statistics.on_consumer(consumer_report({"in": {0: assigned(ls_offset=3, app_offset=1)}}))
    response = httpx.get(f"{url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"pstreams_consumer_lag", "pstreams_assigned_partitions"} <= names


def test_a_taken_port_fails_naming_the_variable() -> None:
    probes = Probes(KafkaStatistics("t"), lambda: None)
    first = OperationsServer("127.0.0.1", 0, probes, CollectorRegistry())
    try:
        with pytest.raises(SystemExit, match="OPS_PORT"):
            OperationsServer("127.0.0.1", first.port, probes, CollectorRegistry())
    finally:
        first.server_close()


def test_secrets_never_reach_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "KEY")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-secret")
    monkeypatch.setenv("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "srkey:sr-secret")
    monkeypatch.setenv("POSTGRES_URL", "postgresql://app:p%40ss@db:5432/analytics")
    settings = Settings()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(secret_values(settings)))
    logger = logging.getLogger("test-secrets")
    logger.addHandler(handler)
    try:
        logger.error("config %s", settings.kafka_config)
        logger.error("url %s and %s", settings.postgres_url, "p@ss")
        try:
            raise RuntimeError(f"registry said no to {settings.schema_registry_config}")
        except RuntimeError:
            logger.exception("registry")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("kafka-secret", "sr-secret", "p%40ss", "p@ss"):
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert [entry["level"] for entry in entries] == ["ERROR"] * 3
    assert "'sasl.username': 'KEY'" in entries[0]["message"]
    assert "postgresql://app:***@db:5432/analytics" in entries[1]["message"]
    assert "RuntimeError: registry said no" in entries[2]["error"]


@pytest.mark.parametrize(("name", "value"), [("OPS_PORT", "70000"), ("LOG_FORMAT", "xml")])
def test_operations_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        load_settings()


def test_postgres_check_names_the_problem_without_connection_details() -> None:
    """/readyz answers anyone who can reach it: no host, port, user or password."""
    (port,) = free_ports(1)
    for scheme in ("postgresql", "postgresql+psycopg"):
        problem = postgres_check(f"{scheme}://someuser:pw@127.0.0.1:{port}/db")()
        assert problem == "PostgreSQL does not answer (OperationalError)"
