"""`pstreams run --all` on the real stack: a hung child is restarted, no child outlives
the supervisor, and the exit status tells whether a child failed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from processor.supervisor import EX_CONFIG
from processor.topology import all_topologies
from tests.integration.support import supervised_child

pytestmark = pytest.mark.integration

NAMES = sorted(all_topologies())


def gone(pid: int) -> bool:
    """Whether the process has exited (reaped, or a zombie of a parent that is gone)."""
    try:
        return (Path(f"/proc/{pid}/stat")).read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_hung_child_is_restarted_and_none_outlives_the_supervisor(
    stack_env: dict[str, str], pstreams
) -> None:
    env = stack_env | {"OPS_PORT": "0", "CHILD_LIVENESS_TIMEOUT_S": "5"}
    supervisor = pstreams("run", "--all", env=env)
    pids = {name: supervised_child(supervisor.pid, name) for name in NAMES}
    assert None not in pids.values()

    hung = pids["user_purchase_totals"]
    os.kill(hung, signal.SIGSTOP)  # alive to the kernel, answering nothing
    assert until(
        lambda: supervised_child(supervisor.pid, "user_purchase_totals", 0) not in (None, hung),
        timeout_s=60,
    ), "the stopped child was not replaced"
    assert gone(hung)
    pids["user_purchase_totals"] = supervised_child(supervisor.pid, "user_purchase_totals", 0)

    supervisor.kill()  # no chance to stop its children itself
    supervisor.wait()
    assert until(lambda: all(gone(pid) for pid in pids.values()), timeout_s=60), [
        name for name, pid in pids.items() if not gone(pid)
    ]


def test_the_exit_status_says_a_child_failed(stack_env: dict[str, str], pstreams) -> None:
    """No input topics yet: the children wait for them. One is killed, so it failed and
    is restarted; SIGTERM then stops the supervisor (its children at once), and it exits 1."""
    env = stack_env | {"OPS_PORT": "0"}
    supervisor = pstreams("run", "--all", env=env)
    child = supervised_child(supervisor.pid, "user_purchase_totals")
    assert child is not None
    os.kill(child, signal.SIGKILL)
    assert until(
        lambda: supervised_child(supervisor.pid, "user_purchase_totals", 0) not in (None, child),
        timeout_s=60,
    ), "the killed child was not restarted"
    began = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=90) == 1
    assert time.monotonic() - began < 30, "the children were not stopped together"


def test_children_stopped_by_their_configuration_are_not_restarted(
    stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    """No input topics and a 1 s wait for them: every child exits EX_CONFIG at start-up,
    which a restart would not mend. None is restarted, and the supervisor exits EX_CONFIG."""
    env = stack_env | {"OPS_PORT": "0", "INPUT_TOPIC_WAIT_S": "1"}
    supervisor = pstreams("run", "--all", env=env)
    assert supervisor.wait(timeout=120) == EX_CONFIG
    log = next(tmp_path.glob("pstreams-*.log")).read_text()
    assert log.count("not restarting it") == len(NAMES), log[-2000:]
    assert "restarted: pid" not in log
