"""Starting, recognising and stopping detached processes; free and busy ports."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

from processor.local import process
from processor.local.ports import accepts_connections, free_ports, port_in_use

SLEEPER = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(600)"]


def test_a_detached_process_is_recognised_by_its_arguments_and_stopped(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    pid = process.spawn_detached(SLEEPER, log)
    try:
        assert process.wait_until(lambda: log.read_text() == "sleeping\n", 30)
        assert process.runs_command(pid, ["-c"], [SLEEPER[-1]])
        assert not process.runs_command(pid, ["--port", "1"])
    finally:
        assert process.stop(pid)

    assert not process.is_running(pid)
    assert not process.runs_command(pid, ["-c"])


def test_stop_escalates_when_the_polite_signal_is_ignored(tmp_path: Path) -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ready', flush=True); time.sleep(600)",
    ]
    log = tmp_path / "stubborn.log"
    pid = process.spawn_detached(stubborn, log)
    assert process.wait_until(lambda: log.read_text() == "ready\n", 30)

    assert process.stop(pid, [(signal.SIGTERM, 0.2), (signal.SIGKILL, 10.0)])
    assert not process.is_running(pid)


def test_ports_are_busy_while_something_listens() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    assert not any(port_in_use(port) for port in ports)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports[0]))
        listener.listen()
        assert port_in_use(ports[0])
        assert accepts_connections(ports[0])
    assert not accepts_connections(ports[0])
