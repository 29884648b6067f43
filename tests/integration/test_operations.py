"""Operations endpoints and logs of a running topology process on the real local stack."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from quixstreams.internal_consumer import InternalConsumer

from processor.local.ports import free_ports, port_in_use
from processor.progress import wait_until_caught_up
from processor.runner import run_topology
from processor.settings import Settings
from processor.supervisor import EX_CONFIG
from processor.topology import all_topologies
from tests.integration.support import dynamodb_source, generated_items, produce

pytestmark = pytest.mark.integration

SECRET = "not-to-be-logged-7f3a"


def eventually(probe: Callable[[], object], timeout_s: float = 60.0) -> object:
    """The first truthy answer of `probe` within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (answer := probe()):
        assert time.monotonic() < deadline, f"{probe.__doc__ or probe} never held"
        time.sleep(0.5)
    return answer


def get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    except httpx.TransportError:
        return None


def samples(port: int) -> dict[tuple[str, frozenset], float]:
    text = get(port, "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_endpoints_of_a_running_topology(
    settings: Settings, stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    emulator = dynamodb_source(settings, partitions=2)
    items = generated_items(40, seed=11)
    produce(settings, [tuple(emulator.insert(item)) for item in items] + [(b"k", b"\x07bad")])

    port, unreachable_db = free_ports(2)
    pstreams(
        "run",
        "interaction_data",
        env=stack_env | {"OPS_PORT": str(port), "LOG_FORMAT": "json"},
    )
    assert eventually(lambda: get(port, "/healthz")).status_code == 200
    ready = eventually(lambda: (r := get(port, "/readyz")) and r.status_code == 200 and r)
    detail = ready.json()
    assert detail["group"] == "up/steady" and detail["sink"] == "ok"
    assert sorted(detail["assigned_partitions"]) == [
        f"{settings.dynamodb_topic}[0]",
        f"{settings.dynamodb_topic}[1]",
    ]
    assert get(port, "/nothing").status_code == 404

    assert not wait_until_caught_up(settings, [all_topologies()["interaction_data"]], 120)
    topology, source = ("topology", "interaction_data"), ("topic", settings.dynamodb_topic)
    out = frozenset({topology, ("topic", settings.interactions_topic)})

    def caught_up() -> dict[tuple[str, frozenset], float] | None:
        """the next statistics report shows every record out and no lag"""
        found = samples(port)
        lags = [v for (name, labels), v in found.items() if name == "pstreams_consumer_lag"]
        done = found.get(("pstreams_records_out_total", out)) == len(items) and lags == [0, 0]
        return found if done else None

    found = eventually(caught_up, timeout_s=30)
    assert found[("pstreams_records_in_total", frozenset({topology, source}))] == len(items) + 1
    dead = frozenset({topology, source, ("error", "DecodeError")})
    assert sum(v for (n, labels), v in found.items() if n == "pstreams_dead_letters_total") == 1
    assert found.get(("pstreams_dead_letters_total", dead), 1) == 1
    assert found[("pstreams_assigned_partitions", frozenset({topology}))] == 2
    sink_rows = ("pstreams_sink_batch_rows_sum", frozenset({("table", "interaction_data")}))
    assert found[sink_rows] == len(items)
    flushes = ("pstreams_sink_flush_seconds_count", frozenset({("table", "interaction_data")}))
    assert found[flushes] >= 1

    # PostgreSQL unreachable: alive, not ready, and the reason is given without the password.
    broken_port = free_ports(1)[0]
    broken = pstreams(
        "run",
        "interaction_data",
        env=stack_env
        | {
            "OPS_PORT": str(broken_port),
            "LOG_FORMAT": "json",
            "CONSUMER_GROUP_PREFIX": stack_env["CONSUMER_GROUP_PREFIX"] + "broken-",
            "POSTGRES_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:{unreachable_db}/none",
        },
    )
    assert eventually(lambda: get(broken_port, "/healthz")).status_code == 200
    not_ready = eventually(
        lambda: (r := get(broken_port, "/readyz")) and r.json()["sink"] != "ok" and r
    )
    assert not_ready.status_code == 503
    assert SECRET not in not_ready.text
    time.sleep(2)  # a sink retry or two in the log
    # Waiting for the database does not keep it from stopping as an orchestrator asks.
    broken.send_signal(signal.SIGTERM)
    assert broken.wait(timeout=10) == 0

    for log in sorted(tmp_path.glob("pstreams-*.log")):
        text = log.read_text()
        assert SECRET not in text
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert {"time", "level", "logger", "message"} <= set(entries[0])
        assert any("operations endpoints on" in entry["message"] for entry in entries)


def test_a_stop_asked_for_as_the_run_starts_ends_it_cleanly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM as Quix's run subscribes (a replica told to leave as it joins), after
    Quix's signal handler is in place and before it marks its loop running: the
    topology stops at once and cleanly, instead of running on until another signal."""
    dynamodb_source(settings, partitions=2)
    subscribe = InternalConsumer.subscribe

    def subscribe_then_sigterm(consumer: InternalConsumer, *args, **kwargs) -> None:
        subscribe(consumer, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(InternalConsumer, "subscribe", subscribe_then_sigterm)
    ran_on: list[bool] = []

    def second_sigterm(*_) -> None:
        ran_on.append(True)
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGALRM, second_sigterm)
    signal.alarm(60)
    try:
        topology = all_topologies()["interaction_data"]
        run_topology(topology, settings.model_copy(update={"ops_port": free_ports(1)[0]}))
    finally:
        signal.alarm(0)
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert not ran_on, "the first SIGTERM was forgotten: the loop ran on until a second"


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free now."""
    for base in range(free_ports(1)[0], 65535 - count, count):
        if not any(port_in_use(port) for port in range(base, base + count)):
            return base
    raise AssertionError("no consecutive free ports")


@pytest.mark.slow  # six topology processes on a shared 2-core machine: about a minute
def test_run_all_serves_each_topology_on_its_own_port(stack_env: dict[str, str], pstreams) -> None:
    names = sorted(all_topologies())
    base = consecutive_free_ports(len(names))
    pstreams("run", "--all", env=stack_env | {"OPS_PORT": str(base)})
    for index, name in enumerate(names):
        answer = eventually(lambda port=base + index: get(port, "/readyz"))
        assert answer.status_code == 503, "no input topics yet: alive, not ready"
        metrics = get(base + index, "/metrics").text
        assert f'pstreams_assigned_partitions{{topology="{name}"}}' in metrics


def test_an_input_topic_that_never_appears_stops_the_topology_naming_its_variable(
    stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    """A misspelt PG_TOPIC_PREFIX: after INPUT_TOPIC_WAIT_S the topology exits non-zero
    with one line naming the variable and the topic, instead of waiting for ever."""
    env = stack_env | {"PG_TOPIC_PREFIX": "pg-misspelt", "INPUT_TOPIC_WAIT_S": "3"}
    process = pstreams("run", "highly_rated_item_details", env=env)
    assert process.wait(timeout=90) == EX_CONFIG
    (log,) = tmp_path.glob("pstreams-*.log")
    last = log.read_text().strip().splitlines()[-1]
    assert "PG_TOPIC_PREFIX" in last and "pg-misspelt.user_data.reviews" in last, last


def test_a_registry_url_that_is_not_a_registry_stops_the_topology(
    stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    """SCHEMA_REGISTRY_URL with a wrong path: the registry's server answers 404 to
    everything, which would turn every good record into a dead letter; the topology stops
    at start-up naming the variable instead."""
    wrong = stack_env["SCHEMA_REGISTRY_URL"].rstrip("/") + "/not-the-api"
    process = pstreams("run", "interaction_data", env=stack_env | {"SCHEMA_REGISTRY_URL": wrong})
    assert process.wait(timeout=90) == EX_CONFIG
    (log,) = tmp_path.glob("pstreams-*.log")
    last = log.read_text().strip().splitlines()[-1]
    assert "SCHEMA_REGISTRY_URL" in last and "not-the-api" in last, last
