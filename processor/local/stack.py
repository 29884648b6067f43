"""The local stack as a whole: `up`, `stop`, `down`, `status` and the environment for it.

Everything lives under one root directory (`.local/` by default, `$PSTREAMS_LOCAL_DIR`
or an explicit path otherwise):

    stack.json   the ports, whether Connect is part of it, and the pids of its servers
    logs/        postgres.log, broker.log, registry.log, connect.log
    postgres/    the PostgreSQL cluster (the registry keeps its schemas there too)
    kafka/       the broker's configuration and log directory (topics, offsets)
    connect/     the Connect worker's configuration and plugin path
    state/       STATE_DIR of the topologies

The ports of a root are fixed from its first `up` until `down`, so that components
restarted on their own still find each other. Every component keeps its data under the
root, so `stop` then `up` resumes the same stack; `down` deletes it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from processor.local import process
from processor.local.broker import Broker
from processor.local.connect import Connect
from processor.local.ports import free_ports, port_in_use
from processor.local.postgres import Postgres, postgres_url
from processor.local.registry import Registry

ROOT_ENV = "PSTREAMS_LOCAL_DIR"
DEFAULT_ROOT = ".local"
DEFAULT_PORTS: Mapping[str, int] = {
    "postgres": 54329,
    "broker": 9092,
    "controller": 9093,
    "registry": 8081,
    "connect": 8083,
}
# What each component needs answering before it starts: the registry keeps its schemas
# in PostgreSQL; Connect keeps its state in Kafka and its converter writes to the registry.
NEEDS: Mapping[str, frozenset[str]] = {
    "postgres": frozenset(),
    "broker": frozenset(),
    "registry": frozenset({"postgres"}),
    "connect": frozenset({"broker", "registry"}),
}
# A JVM's first start on a 2-core machine, with the other servers starting beside it.
START_TIMEOUT_S = 120.0
_RECORD = "stack.json"


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message names the component and its log."""


class Component(Protocol):
    """One server of the stack, recognisable by its pid across `pstreams` invocations."""

    name: ClassVar[str]

    @property
    def product(self) -> str:
        """What it is, with its version, as `up` reports it."""
        ...

    @property
    def address(self) -> str: ...

    def start(self, log_path: Path) -> int: ...

    def answers(self) -> bool: ...

    def owns(self, pid: int) -> bool: ...

    def stop(self, pid: int) -> bool: ...


@dataclass(frozen=True)
class LocalStack:
    """Where a local stack lives and listens; `env()` points pstreams commands at it."""

    root: Path
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    connect: bool = False
    """Whether Kafka Connect (with Debezium) is one of the servers."""

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.address

    @property
    def registry_url(self) -> str:
        """The registry's Confluent-compatible API."""
        return self.registry.address

    @property
    def postgres_url(self) -> str:
        return postgres_url(self.ports["postgres"])

    @property
    def connect_url(self) -> str:
        return self.connect_worker.address

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def broker(self) -> Broker:
        return Broker(self.ports["broker"], self.ports["controller"], self.root / "kafka")

    @property
    def registry(self) -> Registry:
        return Registry(self.ports["registry"], self.ports["postgres"])

    @property
    def connect_worker(self) -> Connect:
        return Connect(self.ports["connect"], self.bootstrap_servers, self.root / "connect")

    def env(self) -> dict[str, str]:
        """The environment variables of `processor.settings` that select this stack."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.registry_url,
            "POSTGRES_URL": self.postgres_url,
            "STATE_DIR": str(self.state_dir),
        }
        return env | ({"CONNECT_URL": self.connect_url} if self.connect else {})

    def components(self) -> tuple[Component, ...]:
        """The servers, each after those it needs (`NEEDS`)."""
        postgres = Postgres(self.ports["postgres"], self.root / "postgres")
        servers: tuple[Component, ...] = (postgres, self.broker, self.registry)
        return (*servers, self.connect_worker) if self.connect else servers

    def log_path(self, component: Component) -> Path:
        return self.logs_dir / f"{component.name}.log"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    state: Literal["running", "not answering", "stopped"]
    pid: int | None = None


@dataclass
class _Record:
    """The contents of `stack.json`."""

    ports: dict[str, int]
    connect: bool = False
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> _Record | None:
        try:
            data = json.loads((root / _RECORD).read_text())
        except FileNotFoundError:
            return None
        return cls(ports=data["ports"], connect=data["connect"], pids=data["pids"])

    def write(self, root: Path) -> None:
        temporary = root / f".{_RECORD}.tmp"
        content = {"ports": self.ports, "connect": self.connect, "pids": self.pids}
        temporary.write_text(json.dumps(content, indent=2))
        temporary.replace(root / _RECORD)

    def stack(self, root: Path) -> LocalStack:
        return LocalStack(root, ports=dict(self.ports), connect=self.connect)


def free_stack_ports() -> dict[str, int]:
    """A port for each component that was free a moment ago (tests, the demo, benchmarks:
    never the defaults, so they cannot meet a developer's stack or each other)."""
    return dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))


def resolve_root(root: Path | str | None = None) -> Path:
    """The absolute root: `root`, else `$PSTREAMS_LOCAL_DIR`, else `.local` here."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).resolve()


def recorded(root: Path | str | None = None) -> LocalStack | None:
    """The stack whose ports are recorded under `root` (running or not), if any."""
    resolved = resolve_root(root)
    record = _Record.read(resolved)
    return None if record is None else record.stack(resolved)


def up(
    root: Path | str | None = None,
    ports: Mapping[str, int] | None = None,
    *,
    connect: bool = False,
    echo: Callable[[str], None] = lambda message: None,
) -> LocalStack:
    """Start whatever is not running yet and wait until every component answers.

    `ports` overrides some or all of `DEFAULT_PORTS` for a new root. `connect` adds Kafka
    Connect to the stack, which then keeps it. Idempotent: running components are
    reused. If a component cannot start, those this call started are stopped again and
    `StackError` names the component and its log.
    """
    resolved = resolve_root(root)
    requested = dict(ports or {})
    unknown = requested.keys() - DEFAULT_PORTS.keys()
    if unknown:
        raise ValueError(f"no component {', '.join(sorted(unknown))}")
    record = _Record.read(resolved) or _Record(ports=dict(DEFAULT_PORTS) | requested)
    _refuse_port_changes(resolved, record, requested)
    record.connect = record.connect or connect
    stack = record.stack(resolved)
    running = {
        c.name for c in stack.components() if c.name in record.pids and c.owns(record.pids[c.name])
    }
    to_start = [c for c in stack.components() if c.name not in running]
    _refuse_busy_ports(stack, to_start)
    stack.logs_dir.mkdir(parents=True, exist_ok=True)
    stack.state_dir.mkdir(exist_ok=True)
    record.pids = {name: pid for name, pid in record.pids.items() if name in running}
    record.write(resolved)

    for component in stack.components():
        if component.name in running:
            pid = record.pids[component.name]
            _await_answer(stack, component, pid)
            echo(
                f"{component.name:<9}{component.product} already running at "
                f"{component.address} (pid {pid})"
            )
    started: list[Component] = []
    try:
        _start_in_dependency_order(stack, to_start, set(running), record, started, echo)
    except BaseException:
        for component in reversed(started):
            component.stop(record.pids.pop(component.name))
        record.write(stack.root)
        raise
    return stack


def _start_in_dependency_order(
    stack: LocalStack,
    to_start: list[Component],
    answering: set[str],
    record: _Record,
    started: list[Component],
    echo: Callable[[str], None],
) -> None:
    """Start each component as soon as those it needs answer, so that independent ones
    (PostgreSQL and Kafka; then the registry beside Kafka) start side by side."""
    pending = list(to_start)
    starting: dict[str, tuple[Component, float]] = {}
    while pending or starting:
        for component in [c for c in pending if NEEDS[c.name] <= answering]:
            pending.remove(component)
            began = time.monotonic()
            record.pids[component.name] = _start(stack, component)
            record.write(stack.root)
            started.append(component)
            starting[component.name] = (component, began)
        for name, (component, began) in list(starting.items()):
            pid = record.pids[name]
            if not _answers(stack, component, pid, began):
                continue
            del starting[name]
            answering.add(name)
            echo(
                f"{name:<9}{component.product} started at {component.address} "
                f"(pid {pid}, {time.monotonic() - began:.1f} s)"
            )
        time.sleep(0.1)


def stop(root: Path | str | None = None) -> list[str]:
    """Stop every component of the root and keep its data; the names of those stopped."""
    resolved = resolve_root(root)
    record = _Record.read(resolved)
    if record is None:
        return []
    stopped = []
    for component in reversed(record.stack(resolved).components()):
        pid = record.pids.get(component.name)
        if pid is None or not component.owns(pid):
            continue
        if not component.stop(pid):
            raise StackError(f"{component.name}: pid {pid} did not stop")
        stopped.append(component.name)
        del record.pids[component.name]
        record.write(resolved)
    return stopped


def down(root: Path | str | None = None) -> None:
    """Stop every component of the root and remove the root with all its data."""
    resolved = resolve_root(root)
    if not resolved.exists():
        return
    if _Record.read(resolved) is None:
        if any(resolved.iterdir()):
            raise StackError(
                f"{resolved} has no {_RECORD}: not removing a directory that "
                "`pstreams local up` did not create"
            )
        resolved.rmdir()
        return
    stop(resolved)
    shutil.rmtree(resolved)


def status(root: Path | str | None = None) -> list[ComponentStatus]:
    """The state of each component of the root, in start order."""
    resolved = resolve_root(root)
    record = _Record.read(resolved) or _Record(ports=dict(DEFAULT_PORTS))
    statuses = []
    for component in record.stack(resolved).components():
        pid = record.pids.get(component.name)
        if pid is None or not component.owns(pid):
            statuses.append(ComponentStatus(component.name, component.address, "stopped"))
        else:
            state = "running" if component.answers() else "not answering"
            statuses.append(ComponentStatus(component.name, component.address, state, pid))
    return statuses


def _refuse_port_changes(root: Path, record: _Record, requested: Mapping[str, int | None]) -> None:
    changed = [
        f"{name} {record.ports[name]} (asked for {port})"
        for name, port in requested.items()
        if port is not None and port != record.ports[name]
    ]
    if changed:
        raise StackError(
            f"the stack under {root} uses ports {', '.join(changed)}; "
            "run `pstreams local down` first to change them"
        )


def _refuse_busy_ports(stack: LocalStack, components: list[Component]) -> None:
    """Every port the components would listen on (the broker has two) must be free."""
    names = {c.name for c in components}
    if "broker" in names:
        names.add("controller")
    busy = [
        f"{name} port {port}"
        for name, port in stack.ports.items()
        if name in names and port_in_use(port)
    ]
    if busy:
        raise StackError(
            f"cannot start: {', '.join(busy)} already in use by another process; "
            "choose other ports (see `pstreams local up --help`)"
        )


def _start(stack: LocalStack, component: Component) -> int:
    log_path = stack.log_path(component)
    try:
        return component.start(log_path)
    except Exception as error:
        raise StackError(
            f"{component.name} could not start: {error}; see {log_path}{_tail(log_path)}"
        ) from error


def _await_answer(stack: LocalStack, component: Component, pid: int) -> None:
    began = time.monotonic()
    while not _answers(stack, component, pid, began):
        time.sleep(0.1)


def _answers(stack: LocalStack, component: Component, pid: int, began: float) -> bool:
    """Whether a starting component answers yet; `StackError` once it cannot any more."""
    log_path = stack.log_path(component)
    if component.answers():
        return True
    if not process.is_running(pid):
        raise StackError(
            f"{component.name} exited during start-up; see {log_path}{_tail(log_path)}"
        )
    if time.monotonic() - began > START_TIMEOUT_S:
        raise StackError(
            f"{component.name} did not answer at {component.address} within "
            f"{START_TIMEOUT_S:.0f} s; see {log_path}{_tail(log_path)}"
        )
    return False


def _tail(log_path: Path, lines: int = 15) -> str:
    """The end of a log, to quote in an error message."""
    try:
        last = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in last)
