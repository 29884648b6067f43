"""`pstreams local up|down|status|env` and the stack's Python API, on real servers."""

from __future__ import annotations

import json
import shlex
import socket
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from processor.cli import build_parser
from processor.local import process
from processor.local.ports import free_ports, port_in_use
from processor.local.stack import LocalStack, StackError, down, recorded, status, up

pytestmark = pytest.mark.integration


def pids(root: Path) -> dict[str, int | None]:
    return {component.name: component.pid for component in status(root)}


def pstreams(*args: str) -> int:
    parsed = build_parser().parse_args(list(args))
    return parsed.handler(parsed)


def schema(name: str) -> Schema:
    return Schema(json.dumps({"type": "record", "name": name, "fields": []}), "AVRO")


def test_env_points_at_servers_that_answer(local_stack: LocalStack) -> None:
    env = local_stack.env()

    assert set(env) == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "SCHEMA_REGISTRY_URL",
        "POSTGRES_URL",
        "STATE_DIR",
        "KAFKA_PRODUCER_CONFIG",
    }
    with psycopg.connect(env["POSTGRES_URL"]) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
    metadata = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]}).list_topics(
        timeout=10
    )
    assert len(metadata.brokers) == 1
    assert isinstance(
        SchemaRegistryClient({"url": env["SCHEMA_REGISTRY_URL"]}).get_subjects(), list
    )
    assert Path(env["STATE_DIR"]).is_dir()
    assert Path(env["STATE_DIR"]).parent == local_stack.root


def test_up_again_reuses_the_running_stack(local_stack: LocalStack) -> None:
    before = pids(local_stack.root)
    messages: list[str] = []

    again = up(local_stack.root, echo=messages.append)

    assert again == local_stack
    assert pids(local_stack.root) == before
    assert None not in before.values()
    assert len(messages) == 3
    assert all("already running" in message for message in messages)


def test_up_refuses_to_move_a_running_stack_to_other_ports(local_stack: LocalStack) -> None:
    (other_port,) = free_ports(1)

    with pytest.raises(StackError, match="pstreams local down"):
        up(local_stack.root, broker_port=other_port)
    assert recorded(local_stack.root) == local_stack


def test_status_prints_one_running_line_per_component(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = pstreams("local", "status", "--root", str(local_stack.root))

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == 0
    assert [line.split()[:2] for line in lines] == [
        ["postgres", "running"],
        ["broker", "running"],
        ["registry", "running"],
    ]
    assert local_stack.bootstrap_servers in lines[1]


def test_env_prints_exports_for_eval(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = pstreams("local", "env", "--root", str(local_stack.root))

    exports = {}
    for line in capsys.readouterr().out.splitlines():
        keyword, assignment = shlex.split(line)
        assert keyword == "export"
        name, value = assignment.split("=", 1)
        exports[name] = value
    assert exit_code == 0
    assert exports == local_stack.env()


def test_a_restarted_registry_keeps_its_schema_ids(local_stack: LocalStack) -> None:
    subject = f"test-{uuid.uuid4().hex}-value"
    client = SchemaRegistryClient({"url": local_stack.registry_url})
    schema_id = client.register_schema(subject, schema("Kept"))
    before = pids(local_stack.root)
    registry_pid = before["registry"]
    assert registry_pid is not None

    assert process.stop(registry_pid)
    assert pstreams("local", "status", "--root", str(local_stack.root)) == 1
    up(local_stack.root)

    after = pids(local_stack.root)
    assert after["registry"] not in (None, registry_pid)
    assert (after["postgres"], after["broker"]) == (before["postgres"], before["broker"])
    fresh = SchemaRegistryClient({"url": local_stack.registry_url})
    assert json.loads(fresh.get_schema(schema_id).schema_str)["name"] == "Kept"
    assert fresh.register_schema(subject, schema("Kept")) == schema_id
    assert fresh.register_schema(subject, schema("New")) > schema_id


def test_down_stops_everything_and_removes_the_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "stack"
    ports = free_ports(3)
    started = up(root, broker_port=ports[0], registry_port=ports[1], postgres_port=ports[2])
    running = pids(root)

    assert pstreams("local", "down", "--root", str(root)) == 0

    assert not root.exists()
    assert not any(process.is_running(pid) for pid in running.values() if pid is not None)
    assert not any(port_in_use(port) for port in ports)
    assert [component.state for component in status(root)] == ["stopped"] * 3
    assert pstreams("local", "status", "--root", str(root)) == 1
    assert pstreams("local", "env", "--root", str(root)) == 1
    assert started.root == root


def test_down_leaves_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(StackError, match="did not create"):
        down(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_up_starts_nothing_when_a_port_is_taken(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    broker_port, registry_port, postgres_port = free_ports(3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", broker_port))
        squatter.listen()

        with pytest.raises(StackError, match=f"broker port {broker_port} already in use"):
            up(
                root,
                broker_port=broker_port,
                registry_port=registry_port,
                postgres_port=postgres_port,
            )

    assert [component.state for component in status(root)] == ["stopped"] * 3
    assert not port_in_use(postgres_port)
    down(root)


def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    # A data directory of another PostgreSQL version: initdb is skipped, pg_ctl fails.
    (root / "postgres").mkdir(parents=True)
    (root / "postgres" / "PG_VERSION").write_text("9\n")
    ports = free_ports(3)

    with pytest.raises(StackError) as raised:
        up(root, broker_port=ports[0], registry_port=ports[1], postgres_port=ports[2])

    message = str(raised.value)
    assert message.startswith("postgres could not start: pg_ctl exited with status 1")
    assert str(root / "logs" / "postgres.log") in message
    assert "could not access the server configuration file" in message  # the log's tail
    assert [component.state for component in status(root)] == ["stopped"] * 3
    down(root)
