"""`pstreams run --all`: one child process per topology, as an orchestrator would run one
container each, and what an orchestrator would do for them.

- **Restarts.** A child that exits is started again after a growing delay, back to the
  shortest once it has run for `STABLE_RUN_S`, so crashes hours apart are not a loop. A
  child that exits with `EX_CONFIG` (a missing topic or ACL, a truncated input) is not:
  it would only stop again. Once every child has so stopped, the supervisor exits
  `EX_CONFIG` too, so that its container shows the failure.
- **Liveness.** Every `PROBE_EVERY_S` the supervisor asks each child's `/healthz`, as a
  Kubernetes liveness probe would; a child that has not answered 200 for
  `CHILD_LIVENESS_TIMEOUT_S` (stopped, deadlocked, or its processing loop silent past
  `processor.operations.STALL_AFTER_S`) is killed and restarted.
- **No orphans.** Each child asks the kernel for SIGTERM when the supervisor dies
  (`PR_SET_PDEATHSIG`), so a killed supervisor leaves no child holding ports and
  partitions that its successor's children need.
- **Stopping.** SIGINT or SIGTERM stops every child at once: SIGTERM to all, then one
  shared grace period of `STOP_GRACE_S`, then SIGKILL for those still running.
- **Exit status.** 0 when no child failed; 1 when one exited on its own, was killed for
  liveness, or did not stop cleanly, so that a wrapper or CI sees the failure.

Each child serves its operations endpoints on `OPS_PORT` + its index in name order;
with `OPS_PORT=0`, on free ports the supervisor picks (and logs), so it can probe them.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from processor.backoff import Backoff
from processor.local.ports import free_ports

logger = logging.getLogger(__name__)

# sysexits.h's EX_CONFIG: a child that stopped for its configuration or permissions (a
# missing topic or ACL, a truncated input) would only stop again, so it is not restarted.
EX_CONFIG = 78
STABLE_RUN_S = 60.0
PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 60.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def child_ops_ports(base: int, count: int) -> list[int]:
    """The operations ports of the children: consecutive from `base`, or free ones."""
    return list(range(base, base + count)) if base else free_ports(count)


def restart_delay(backoff: Backoff, ran_for_s: float) -> float:
    """How long to wait before starting again a child that ran for `ran_for_s`."""
    if ran_for_s >= STABLE_RUN_S:
        backoff.reset()
    return backoff.next_delay()


def _die_with(supervisor: int) -> Callable[[], None]:
    """Runs in the child before it executes: SIGTERM to it when the supervisor dies."""

    def arrange() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except AttributeError:  # not Linux: no such call, the risk of orphans remains
            return
        if os.getppid() != supervisor:  # it died before the call took effect
            os._exit(1)

    return arrange


@dataclass
class Child:
    """One topology's current process and what the supervisor knows of it."""

    name: str
    port: int
    process: subprocess.Popen = field(init=False)
    started_at: float = field(init=False)
    alive_at: float = field(init=False)
    probed_at: float = field(init=False)
    backoff: Backoff = field(default_factory=lambda: Backoff(maximum=60.0, initial=1.0))
    restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "processor", "run", self.name],
            env=os.environ | {"OPS_PORT": str(self.port)},
            preexec_fn=_die_with(os.getpid()),
        )
        self.started_at = self.alive_at = self.probed_at = time.monotonic()
        self.restart_at = None

    @property
    def given_up(self) -> bool:
        """Stopped for its configuration or permissions, and not to be started again."""
        return self.restart_at == math.inf

    def probe(self, now: float) -> None:
        """Ask `/healthz` if it is time; remember when the child last answered 200."""
        if now - self.probed_at < PROBE_EVERY_S:
            return
        self.probed_at = now
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            self.alive_at = now


class Supervisor:
    def __init__(self, names: list[str], ops_port: int, liveness_timeout_s: float) -> None:
        ports = child_ops_ports(ops_port, len(names))
        self.children = [Child(name, port) for name, port in zip(names, ports, strict=True)]
        self.liveness_timeout_s = liveness_timeout_s
        self.failed = False
        self.stopping = False

    def run(self) -> int:
        for child in self.children:
            child.start()
            logger.info(
                "topology %s: pid %d, operations port %d",
                child.name,
                child.process.pid,
                child.port,
            )
        while not self.stopping:
            time.sleep(0.5)
            for child in self.children:
                if not self.stopping:
                    self._look_after(child, time.monotonic())
            if all(child.given_up for child in self.children):
                logger.error("every topology stopped for its configuration or permissions")
                return EX_CONFIG
        self._stop_all()
        return 1 if self.failed else 0

    def _look_after(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.start()
                logger.info("topology %s restarted: pid %d", child.name, child.process.pid)
            return
        if child.process.poll() is None:
            child.probe(now)
            if now - child.alive_at <= self.liveness_timeout_s:
                return
            logger.error(
                "topology %s (pid %d) has not answered /healthz for %.0f s; killing it",
                child.name,
                child.process.pid,
                now - child.alive_at,
            )
            child.process.kill()
            child.process.wait()
        self.failed = True
        if child.process.returncode == EX_CONFIG:
            logger.error(
                "topology %s stopped for its configuration or permissions (its last log line"
                " says which); not restarting it",
                child.name,
            )
            child.restart_at = math.inf
            return
        delay = restart_delay(child.backoff, now - child.started_at)
        logger.error(
            "topology %s exited with %s; restarting in %.0f s",
            child.name,
            child.process.returncode,
            delay,
        )
        child.restart_at = now + delay

    def _stop_all(self) -> None:
        running = [child.process for child in self.children if child.restart_at is None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.returncode != 0:
                self.failed = True


def supervise(names: list[str], ops_port: int, liveness_timeout_s: float) -> int:
    """Run each topology in a child process until a signal stops the supervisor; the exit
    status (see the module docstring)."""
    supervisor = Supervisor(names, ops_port, liveness_timeout_s)

    def stop(_signum: int, _frame: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return supervisor.run()
