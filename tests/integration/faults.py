"""Faults the crash and soak tests inject into running topologies: SIGKILLs at planned
moments (some during a sink's write, some wiping the state, some hitting a restart), and
the processes they hit, under the supervisor or on their own; PostgreSQL outages; and
the session broker's clean stops."""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import psycopg

from processor.local.ports import free_ports
from processor.local.postgres import Postgres
from processor.local.stack import LocalStack, status, up
from processor.progress import wait_until_caught_up
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import SNAPSHOT_ORDER
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.support import supervised_child

# First words of the statements of a sink's flush, after which a kill is mid-checkpoint.
WRITES = (["COPY"], ["INSERT"], ["DELETE"], ["COMMIT"])
WARM_UP_INTERACTIONS = 100


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: where in the load, which topology, and how it comes back."""

    after_record: int  # the number of records loaded when it happens
    pause_s: float  # time the topologies get on the records loaded so far
    topology: str
    # Wait for the topology's sink to write, then kill this soon after: in the
    # checkpoint's commit (its PostgreSQL transaction, then its Kafka transaction).
    at_flush_s: float | None
    wipe_state: bool  # come back as a new replica, restoring from the changelogs
    # Kill the restarted process again this long after it connected to PostgreSQL.
    again_after_s: float | None

    def __str__(self) -> str:
        flush = f", {self.at_flush_s * 1000:.0f} ms into a sink write" if self.at_flush_s else ""
        wipe = ", state wiped" if self.wipe_state else ""
        again = (
            f", killed again {self.again_after_s:.1f} s into the restart"
            if self.again_after_s
            else ""
        )
        return (
            f"{self.topology} after record {self.after_record} + {self.pause_s:.1f} s"
            f"{flush}{wipe}{again}"
        )


def kill_plan(rng: random.Random, topologies: list[str], records: range, kills: int) -> list[Kill]:
    """`kills` kills in load order, after records drawn from `records`; every topology and
    every variation (at a sink write, state wiped, killed again while starting) at least
    once when there are enough. The last kill falls after the whole load, while the
    topologies catch up."""
    victims = rng.sample(topologies, min(kills, len(topologies)))
    victims += [rng.choice(topologies) for _ in range(kills - len(victims))]
    ways = [(n % 2 == 0, n % 3 == 1, n % 3 == 2) for n in range(kills)]
    rng.shuffle(ways)
    points = [*sorted(rng.sample(records, kills - 1)), records.stop]
    return [
        Kill(
            after_record=point,
            pause_s=rng.uniform(0.2, 2.0),
            topology=victim,
            at_flush_s=rng.uniform(0.001, 0.05) if at_flush else None,
            wipe_state=wipe,
            again_after_s=rng.uniform(0.5, 6.0) if again else None,
        )
        for point, victim, (at_flush, wipe, again) in zip(points, victims, ways, strict=True)
    ]


def postgres_backends(settings: Settings, process: int) -> list[int]:
    """The PostgreSQL backends serving `process` (its sink's connection), matched by the
    client ports of the process's TCP sockets to the PostgreSQL port (Linux /proc)."""
    server_port = urlsplit(settings.postgres_url).port
    try:
        sockets = {os.readlink(fd) for fd in Path(f"/proc/{process}/fd").iterdir()}
        ports = []
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{process}/net/{table}").read_text().splitlines()[1:]:
                local, remote, inode = (line.split()[i] for i in (1, 2, 9))
                if f"socket:[{inode}]" in sockets and int(remote[-4:], 16) == server_port:
                    ports.append(int(local[-4:], 16))
    except OSError:  # the process is gone
        return []
    try:
        with psycopg.connect(settings.postgres_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,)
            )
            return [pid for (pid,) in rows]
    except psycopg.OperationalError:  # PostgreSQL is away (an outage the test made)
        return []


def wait_for_connection(settings: Settings, process: int, timeout: float) -> bool:
    """Wait until `process` is connected to PostgreSQL."""
    deadline = time.monotonic() + timeout
    while not postgres_backends(settings, process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_for_sink_write(settings: Settings, process: int, timeout: float) -> bool:
    """Wait until `process`'s sink writes: one of its PostgreSQL backends runs a statement
    other than the pool's ping, or commits, after the call (pg_stat_activity)."""
    deadline = time.monotonic() + timeout
    seen: dict[int, datetime] = {}
    backends: list[int] = []
    try:
        with psycopg.connect(settings.postgres_url, autocommit=True) as connection:
            while time.monotonic() < deadline:
                if not backends:  # not connected yet
                    backends = postgres_backends(settings, process)
                    time.sleep(0.1)
                    continue
                rows = connection.execute(
                    "SELECT pid, state_change, query FROM pg_stat_activity WHERE pid = ANY(%s)",
                    (backends,),
                )
                for pid, changed, query in rows:
                    if seen.setdefault(pid, changed) != changed and query.split()[:1] in WRITES:
                        return True
                time.sleep(0.001)
            return False
    except psycopg.OperationalError:  # PostgreSQL went away: no write to see
        return False


class Processes(Protocol):
    """The running topologies, as the test kills and brings them back."""

    def pid(self, topology: str) -> int:
        """The process id of the topology's running process."""

    def kill(self, topology: str) -> None:
        """SIGKILL the topology's process; returns once it is dead."""

    def restart(self, topology: str) -> None:
        """Returns once a new process of the topology runs."""


class Supervised:
    """`pstreams run --all`: the test kills its children, the supervisor restarts them."""

    def __init__(self, pstreams: Callable, env: dict[str, str] | None = None) -> None:
        self.supervisor = pstreams("run", "--all", env=env)
        self._killed: dict[str, int] = {}

    def pid(self, topology: str) -> int:
        pid = supervised_child(self.supervisor.pid, topology)
        assert pid is not None, f"{topology} is not running under the supervisor"
        return pid

    def kill(self, topology: str) -> None:
        pid = self.pid(topology)
        os.kill(pid, signal.SIGKILL)
        self._killed[topology] = pid
        # The supervisor reaps it within 0.5 s and waits at least 1 s before a restart.
        while supervised_child(self.supervisor.pid, topology, timeout=0) == pid:
            time.sleep(0.05)

    def restart(self, topology: str) -> None:
        killed = self._killed.pop(topology)
        deadline = time.monotonic() + 120
        while supervised_child(self.supervisor.pid, topology, timeout=0) in (None, killed):
            assert time.monotonic() < deadline, f"the supervisor did not restart {topology}"
            time.sleep(0.1)


class Separate:
    """One `pstreams run NAME` per topology, restarted by the test."""

    def __init__(self, pstreams: Callable, topologies: list[str]) -> None:
        self._pstreams = pstreams
        self._processes = {name: pstreams("run", name) for name in topologies}

    def pid(self, topology: str) -> int:
        return self._processes[topology].pid

    def kill(self, topology: str) -> None:
        process = self._processes[topology]
        assert process.poll() is None, f"{topology} exited by itself with {process.returncode}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, topology: str) -> None:
        self._processes[topology] = self._pstreams("run", topology)


def execute_kill(settings: Settings, running: Processes, kill: Kill) -> str:
    """Carry out `kill` on `running` (whose sinks write to `settings.postgres_url`); what
    happened, for the test's report."""
    time.sleep(kill.pause_s)
    outcome = str(kill)
    if kill.at_flush_s is not None:
        if wait_for_sink_write(settings, running.pid(kill.topology), timeout=10):
            time.sleep(kill.at_flush_s)
        else:
            outcome += " (no sink write came within 10 s)"
    running.kill(kill.topology)
    if kill.wipe_state:
        shutil.rmtree(settings.state_dir / kill.topology, ignore_errors=True)
    running.restart(kill.topology)
    if kill.again_after_s is not None:
        # Measured from its connection to PostgreSQL (the sink's set-up), made once it
        # has started: then it joins its group, restores state and replays.
        if not wait_for_connection(settings, running.pid(kill.topology), timeout=60):
            outcome += " (no connection to PostgreSQL within 60 s)"
        time.sleep(kill.again_after_s)
        running.kill(kill.topology)
        running.restart(kill.topology)
    return outcome


class FaultSchedule:
    """Faults at points of a dataset's load: `on_record` is the loader's callback (the
    load waits while a fault happens), `finish` runs those planned after the last record.

    Once the warm-up records are loaded it waits until every topology processed them,
    so that the faults meet running topologies. Each fault returns what it did.
    """

    def __init__(
        self, settings: Settings, warm_up: int, faults: list[tuple[int, Callable[[], str]]]
    ) -> None:
        self._settings = settings
        self._warm_up = warm_up
        self._faults = sorted(faults, key=lambda fault: fault[0])
        self._loaded = 0
        self.done: list[str] = []

    def on_record(self) -> None:
        self._loaded += 1
        if self._loaded == self._warm_up:
            time.sleep(1)  # the loader's producer delivers in the background
            topologies = list(all_topologies().values())
            lags = wait_until_caught_up(self._settings, topologies, timeout=300)
            assert not lags, f"not started: {[str(lag) for lag in lags]}"
        while self._faults and self._faults[0][0] == self._loaded:
            self._run(*self._faults.pop(0))

    def finish(self) -> None:
        while self._faults:
            self._run(*self._faults.pop(0))

    def _run(self, point: int, fault: Callable[[], str]) -> None:
        self.done.append(f"{point}: {fault()}")


def warm_up_records(dataset: Path) -> int:
    """The records loaded before faults begin: the snapshot and the first interactions,
    which the topologies have processed once they started (20-40 s on a busy machine)."""
    snapshot = sum(map(count_records, (dataset / f"{t}.jsonl" for t in SNAPSHOT_ORDER)))
    return snapshot + WARM_UP_INTERACTIONS


def count_records(path: Path) -> int:
    """Lines of a dataset file (SPEC 6), as the loader counts records."""
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def dataset(tmp_path: Path, interactions: int, seed: int) -> Path:
    """An event-time-ordered dataset with bursts and changes (updates and deletes)."""
    options = SeedOptions(
        users=60, items=25, interactions=interactions, reviews=120, seed=seed, changes=80
    )
    write_dataset(generate(options), tmp_path / "dataset")
    return tmp_path / "dataset"


class SinkDatabase:
    """The topologies' own PostgreSQL, apart from the stack's (whose registry would go
    down with it), stopped for an outage and started again on a timer."""

    def __init__(self, directory: Path) -> None:
        (port,) = free_ports(1)
        self._server = Postgres(port, directory / "data")
        self._log = directory / "postgres.log"
        self._pid = self._server.start(self._log)
        self._back: threading.Timer | None = None

    @property
    def address(self) -> str:
        return self._server.address

    def outage(self, seconds: float) -> str:
        assert self._server.stop(self._pid)
        self._back = threading.Timer(seconds, self._start)
        self._back.start()
        return f"PostgreSQL stopped for {seconds:.0f} s"

    def _start(self) -> None:
        self._pid = self._server.start(self._log)

    def wait_until_back(self) -> None:
        if self._back is not None:
            self._back.join()

    def stop(self) -> None:
        self.wait_until_back()
        self._server.stop(self._pid)


@contextmanager
def broker_stopped(stack: LocalStack) -> Iterator[None]:
    """The stack's broker stopped cleanly (a controlled shutdown) for the block, then
    started again by `pstreams local up`'s own code, even if the block fails."""
    (broker,) = [c for c in status(stack.root) if c.name == "broker"]
    assert broker.pid is not None
    try:
        assert stack.broker.stop(broker.pid)
        yield
    finally:
        up(stack.root)
