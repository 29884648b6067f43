"""The local stack as a whole: `up`, `down`, `status` and the environment pointing at it.

Everything lives under one root directory (`.local/` by default, `$PSTREAMS_LOCAL_DIR`
or an explicit path otherwise):

    stack.json   the ports, and the pids of the servers this root started
    logs/        broker.log, postgres.log, registry.log
    postgres/    the PostgreSQL cluster (the registry keeps its schemas there too)
    state/       STATE_DIR of the topologies

The ports of a root are fixed from its first `up` until `down`, so that components
restarted on their own still find each other.
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
from processor.local.broker import PRODUCER_CONFIG, Broker
from processor.local.ports import HOST, port_in_use
from processor.local.postgres import Postgres, postgres_url
from processor.local.registry.launcher import RegistryServer

ROOT_ENV = "PSTREAMS_LOCAL_DIR"
DEFAULT_ROOT = ".local"
DEFAULT_PORTS: Mapping[str, int] = {"broker": 9092, "registry": 8081, "postgres": 54329}
START_TIMEOUT_S = 60.0
_RECORD = "stack.json"


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message names the component and its log."""


class Component(Protocol):
    """One server of the stack, recognisable by its pid across `pstreams` invocations."""

    name: ClassVar[str]
    port: int

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
    broker_port: int = DEFAULT_PORTS["broker"]
    registry_port: int = DEFAULT_PORTS["registry"]
    postgres_port: int = DEFAULT_PORTS["postgres"]

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def registry_url(self) -> str:
        return f"http://{HOST}:{self.registry_port}"

    @property
    def postgres_url(self) -> str:
        return postgres_url(self.postgres_port)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def env(self) -> dict[str, str]:
        """The environment variables of `processor.settings` that select this stack."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.registry_url,
            "POSTGRES_URL": self.postgres_url,
            "STATE_DIR": str(self.state_dir),
            "KAFKA_PRODUCER_CONFIG": json.dumps(PRODUCER_CONFIG),
        }

    def components(self) -> tuple[Component, ...]:
        """The servers in start order: the registry keeps its schemas in PostgreSQL."""
        return (
            Postgres(self.postgres_port, self.root / "postgres"),
            Broker(self.broker_port),
            RegistryServer(self.registry_port, self.postgres_url),
        )

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
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> _Record | None:
        try:
            data = json.loads((root / _RECORD).read_text())
        except FileNotFoundError:
            return None
        return cls(ports=data["ports"], pids=data["pids"])

    def write(self, root: Path) -> None:
        temporary = root / f".{_RECORD}.tmp"
        temporary.write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=2))
        temporary.replace(root / _RECORD)

    def stack(self, root: Path) -> LocalStack:
        return LocalStack(
            root,
            broker_port=self.ports["broker"],
            registry_port=self.ports["registry"],
            postgres_port=self.ports["postgres"],
        )


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
    *,
    broker_port: int | None = None,
    registry_port: int | None = None,
    postgres_port: int | None = None,
    echo: Callable[[str], None] = lambda message: None,
) -> LocalStack:
    """Start whatever is not running yet and wait until every component answers.

    Idempotent: running components are reused. If a component cannot start, those this
    call started are stopped again and `StackError` names the component and its log.
    """
    resolved = resolve_root(root)
    requested = {"broker": broker_port, "registry": registry_port, "postgres": postgres_port}
    record = _Record.read(resolved) or _Record(
        ports={name: requested[name] or port for name, port in DEFAULT_PORTS.items()}
    )
    _refuse_port_changes(resolved, record, requested)
    stack = record.stack(resolved)
    running = {
        c.name for c in stack.components() if c.name in record.pids and c.owns(record.pids[c.name])
    }
    to_start = [c for c in stack.components() if c.name not in running]
    _refuse_busy_ports(to_start)
    if "broker" in {c.name for c in to_start} and (resolved / "postgres" / "PG_VERSION").exists():
        echo(
            "warning: the broker starts empty (it keeps topics in memory) while PostgreSQL "
            "keeps its tables; `pstreams local down` first for a consistent fresh stack"
        )
    stack.logs_dir.mkdir(parents=True, exist_ok=True)
    stack.state_dir.mkdir(exist_ok=True)
    record.pids = {name: pid for name, pid in record.pids.items() if name in running}
    record.write(resolved)

    started: list[Component] = []
    try:
        for component in stack.components():
            if component.name in running:
                pid = record.pids[component.name]
                _await_answer(stack, component, pid)
                echo(f"{component.name:<9}already running at {component.address} (pid {pid})")
                continue
            began = time.monotonic()
            pid = _start(stack, component)
            record.pids[component.name] = pid
            record.write(resolved)
            started.append(component)
            _await_answer(stack, component, pid)
            took_s = time.monotonic() - began
            echo(f"{component.name:<9}started at {component.address} (pid {pid}, {took_s:.1f} s)")
    except BaseException:
        for component in reversed(started):
            component.stop(record.pids.pop(component.name))
        record.write(resolved)
        raise
    return stack


def down(root: Path | str | None = None) -> None:
    """Stop every component of the root and remove the root with all its data.

    Everything goes: the broker keeps topics only in memory, so tables and state derived
    from them would no longer match their (now empty) inputs.
    """
    resolved = resolve_root(root)
    if not resolved.exists():
        return
    record = _Record.read(resolved)
    if record is None:
        if any(resolved.iterdir()):
            raise StackError(
                f"{resolved} has no {_RECORD}: not removing a directory that "
                "`pstreams local up` did not create"
            )
        resolved.rmdir()
        return
    for component in reversed(record.stack(resolved).components()):
        pid = record.pids.get(component.name)
        if pid is not None and component.owns(pid) and not component.stop(pid):
            raise StackError(f"{component.name}: pid {pid} did not stop; {resolved} kept")
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


def _refuse_busy_ports(components: list[Component]) -> None:
    busy = [f"{c.name} port {c.port}" for c in components if port_in_use(c.port)]
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
    log_path = stack.log_path(component)

    def answers() -> bool:
        if component.answers():
            return True
        if not process.is_running(pid):
            raise StackError(
                f"{component.name} exited during start-up; see {log_path}{_tail(log_path)}"
            )
        return False

    if not process.wait_until(answers, START_TIMEOUT_S, interval_s=0.1):
        raise StackError(
            f"{component.name} did not answer at {component.address} within "
            f"{START_TIMEOUT_S:.0f} s; see {log_path}{_tail(log_path)}"
        )


def _tail(log_path: Path, lines: int = 15) -> str:
    """The end of a log, to quote in an error message."""
    try:
        last = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in last)
