"""Integration fixtures: topologies run as real processes against the real local stack."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from processor.settings import Settings
from processor.supervisor import STOP_GRACE_S
from tests.conftest import private_directory
from tests.integration.faults import SinkDatabase
from tests.integration.support import STACKS_FILE
from tests.integration.transaction_logs import transaction_evidence

LOG_TAIL_LINES = 60


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test's report ends with the last lines of each `pstreams` process it ran,
    so that a failure on CI shows what the processes said, not only the assertion."""
    report = yield
    arguments = getattr(item, "funcargs", {})
    tmp_path = arguments.get("tmp_path")
    if report.failed and tmp_path is not None:
        for log in sorted(Path(tmp_path).glob("pstreams-*.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"{log.name}, last {len(lines)} lines", "\n".join(lines)))
        stacks = Path(tmp_path) / STACKS_FILE
        if stacks.exists():
            report.sections.append(("where each child was", stacks.read_text()))
    if report.failed and "local_stack" in arguments:
        for server in ("broker", "connect"):
            lines = server_notices(arguments["local_stack"].root / "logs" / f"{server}.log")
            report.sections.append((f"{server}.log, last {len(lines)} notices", "\n".join(lines)))
        if "stack_env" in arguments:
            kafka_data = arguments["local_stack"].root / "kafka" / "data"
            prefix = arguments["stack_env"]["PG_TOPIC_PREFIX"]
            lines = transaction_evidence(kafka_data, prefix, LOG_TAIL_LINES * 4)
            title = f"__consumer_offsets and __transaction_state naming {prefix}, last lines"
            report.sections.append((title, "\n".join(lines)))
    return report


def server_notices(log: Path) -> list[str]:
    """A server's last warnings, errors and transaction and group coordinator lines: what
    the broker did with the transactions and offsets a stalled topology waits on, or why
    a connector failed."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()[-20_000:]
    wanted = (" WARN ", " ERROR ", "Transaction", "GroupCoordinator", "txn")
    return [line for line in lines if any(word in line for word in wanted)][-LOG_TAIL_LINES:]


@pytest.fixture
def stack_env(local_stack, tmp_path: Path) -> dict[str, str]:
    """Environment of one test: the shared stack, with names no other test uses."""
    run = uuid.uuid4().hex[:8]
    # A database of its own: the source tables live in the fixed schema `user_data`.
    with psycopg.connect(local_stack.postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE t{run}")
    return local_stack.env() | {
        "POSTGRES_URL": local_stack.postgres_url.rsplit("/", 1)[0] + f"/t{run}",
        "STATE_DIR": str(tmp_path / "state"),
        "PG_TOPIC_PREFIX": f"t{run}",
        "DYNAMODB_TOPIC": f"t{run}-user-personalization",
        "INTERACTIONS_TOPIC": f"t{run}-interaction_data",
        "DEAD_LETTER_TOPIC": f"t{run}-dead-letter-{{topology}}",
        "CONSUMER_GROUP_PREFIX": f"t{run}-",
        "POSTGRES_SCHEMA": f"t{run}",
        "LOG_LEVEL": "INFO",
        # Tests run side by side: each topology process listens on a port the OS picks.
        "OPS_PORT": "0",
    }


@pytest.fixture
def settings(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def pstreams(
    stack_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts `pstreams ARGS...` in the background; every process is stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (tmp_path / f"pstreams-{len(started)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "processor", *args],
            env=os.environ | (env or stack_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            # Longer than `pstreams run --all` gives its children before it SIGKILLs
            # them: killed sooner, it would leave a hung child running on its own.
            process.wait(timeout=STOP_GRACE_S + 15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def sink_database() -> Iterator[SinkDatabase]:
    """A PostgreSQL server of the test's own for the topologies to write to, which it can
    stop without stopping the stack's (the registry's storage)."""
    directory = private_directory("pstreams-test-sink-")
    database = SinkDatabase(directory)
    try:
        yield database
    finally:
        database.stop()
        shutil.rmtree(directory, ignore_errors=True)
