"""`pstreams local up|down|status|env` and the stack's Python API, on real servers."""

from __future__ import annotations

import json
import shlex
import socket
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from processor.cli import build_parser
from processor.local import process
from processor.local.ports import free_ports, port_in_use
from processor.local.stack import (
    LocalStack,
    StackError,
    down,
    free_stack_ports,
    recorded,
    status,
    up,
)
from processor.topics import create_topics

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
        "CONNECT_URL",
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
    assert [message.split()[0] for message in messages] == [
        "postgres",
        "broker",
        "registry",
        "connect",
    ]
    assert all("already running" in message for message in messages)
    assert "Apache Kafka 4." in messages[1]
    assert "Apicurio Registry 3." in messages[2]


def test_up_refuses_to_move_a_running_stack_to_other_ports(local_stack: LocalStack) -> None:
    (other_port,) = free_ports(1)

    with pytest.raises(StackError, match="pstreams local down"):
        up(local_stack.root, {"broker": other_port})
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
        ["connect", "running"],
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
    assert {name: after[name] for name in ("postgres", "broker", "connect")} == {
        name: before[name] for name in ("postgres", "broker", "connect")
    }
    fresh = SchemaRegistryClient({"url": local_stack.registry_url})
    assert json.loads(fresh.get_schema(schema_id).schema_str)["name"] == "Kept"
    assert fresh.register_schema(subject, schema("Kept")) == schema_id
    assert fresh.register_schema(subject, schema("New")) > schema_id


def write_committed_and_aborted(bootstrap_servers: str, topic: str) -> None:
    """Records 0-2 in a committed transaction, then 3-5 in an aborted one."""
    create_topics(bootstrap_servers, [topic])
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "transactional.id": f"test-{topic}"}
    )
    producer.init_transactions(30)
    for values, finish in (
        (range(3), producer.commit_transaction),
        (range(3, 6), producer.abort_transaction),
    ):
        producer.begin_transaction()
        for value in values:
            producer.produce(topic, value=str(value).encode())
        producer.flush(30)
        finish(30)


def read_committed(bootstrap_servers: str, topic: str, group: str) -> list[bytes]:
    """What a read_committed consumer of `group` gets from its committed offset on."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    values = []
    try:
        consumer.subscribe([topic])
        while (message := consumer.poll(30)) is not None:
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                break
            values.append(message.value())
    finally:
        consumer.close()
    return values


def commit_offset(bootstrap_servers: str, topic: str, group: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_stop_keeps_every_server_s_data_for_up_and_down_removes_it(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    ports = free_stack_ports()
    first = up(root, ports)
    topic, group, subject = "kept", "kept-group", "kept-value"
    write_committed_and_aborted(first.bootstrap_servers, topic)
    commit_offset(first.bootstrap_servers, topic, group, 1)
    schema_id = SchemaRegistryClient({"url": first.registry_url}).register_schema(
        subject, schema("Kept")
    )
    with psycopg.connect(first.postgres_url, autocommit=True) as connection:
        connection.execute("create table kept as select 42 as answer")
    running = pids(root)

    assert pstreams("local", "stop", "--root", str(root)) == 0

    assert not any(process.is_running(pid) for pid in running.values() if pid is not None)
    assert not any(port_in_use(port) for port in ports.values())
    assert [component.state for component in status(root)] == ["stopped"] * 3
    again = up(root)
    assert again == first
    # The group resumes after its committed offset; the aborted records stay invisible.
    assert read_committed(again.bootstrap_servers, topic, group) == [b"1", b"2"]
    assert read_committed(again.bootstrap_servers, topic, "new-group") == [b"0", b"1", b"2"]
    fresh = SchemaRegistryClient({"url": again.registry_url})
    assert json.loads(fresh.get_schema(schema_id).schema_str)["name"] == "Kept"
    with psycopg.connect(again.postgres_url) as connection:
        assert connection.execute("select answer from kept").fetchone() == (42,)
    running = pids(root)

    assert pstreams("local", "down", "--root", str(root)) == 0

    assert not root.exists()
    assert not any(process.is_running(pid) for pid in running.values() if pid is not None)
    assert not any(port_in_use(port) for port in ports.values())
    assert [component.state for component in status(root)] == ["stopped"] * 3
    assert pstreams("local", "status", "--root", str(root)) == 1
    assert pstreams("local", "env", "--root", str(root)) == 1


def test_down_leaves_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(StackError, match="did not create"):
        down(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_up_starts_nothing_when_a_port_is_taken(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    ports = free_stack_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["controller"]))
        squatter.listen()

        with pytest.raises(StackError, match=f"controller port {ports['controller']} already"):
            up(root, ports)

    assert [component.state for component in status(root)] == ["stopped"] * 3
    assert not port_in_use(ports["postgres"])
    down(root)


def test_a_component_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    # A data directory of another PostgreSQL version: initdb is skipped, pg_ctl fails.
    (root / "postgres").mkdir(parents=True)
    (root / "postgres" / "PG_VERSION").write_text("9\n")
    with pytest.raises(StackError) as raised:
        up(root, free_stack_ports())

    message = str(raised.value)
    assert message.startswith("postgres could not start: pg_ctl exited with status 1")
    assert str(root / "logs" / "postgres.log") in message
    assert "could not access the server configuration file" in message  # the log's tail
    assert [component.state for component in status(root)] == ["stopped"] * 3
    down(root)
