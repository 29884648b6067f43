"""`pstreams run TOPOLOGY | --all`: topologies in the foreground.

`--all` supervises one child process per topology, as an orchestrator would run one
container each: a child that exits is started again after a growing delay (back to the
shortest once a child has run for `STABLE_RUN_S`, so crashes hours apart are not
treated as a crash loop), and
SIGINT/SIGTERM stop them all gracefully. Each child serves its operations endpoints on
`OPS_PORT` + its index in name order (`OPS_PORT=0`: each on a port the OS picks).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from processor.backoff import Backoff
from processor.errors import ConfigurationError
from processor.logs import configure_logging
from processor.settings import load_settings
from processor.topology import all_topologies

logger = logging.getLogger(__name__)
STABLE_RUN_S = 60.0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run one topology, or all of them")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("topology", nargs="?", choices=sorted(all_topologies()))
    target.add_argument("--all", action="store_true", help="every topology, each in a process")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    if args.all:
        return supervise(sorted(all_topologies()), settings.ops_port)
    from processor.runner import run_topology

    try:
        run_topology(all_topologies()[args.topology], settings)
    except ConfigurationError as error:
        raise SystemExit(f"pstreams run {args.topology}: {error}") from None
    return 0


def child_ops_port(base: int, index: int) -> int:
    """The operations port of the `index`th child: consecutive ports, or all OS-picked."""
    return base + index if base else 0


def restart_delay(backoff: Backoff, ran_for_s: float) -> float:
    """How long to wait before starting again a child that ran for `ran_for_s`."""
    if ran_for_s >= STABLE_RUN_S:
        backoff.reset()
    return backoff.next_delay()


def _start(topology: str, ops_port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "processor", "run", topology],
        env=os.environ | {"OPS_PORT": str(ops_port)},
    )


def supervise(names: list[str], ops_port: int) -> int:
    """Run each topology in a child process until a signal stops the supervisor."""
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    ports = {name: child_ops_port(ops_port, index) for index, name in enumerate(names)}
    children = {name: _start(name, ports[name]) for name in names}
    started_at = dict.fromkeys(names, time.monotonic())
    backoffs = {name: Backoff(maximum=60.0, initial=1.0) for name in names}
    restart_at: dict[str, float] = {}
    while not stopping:
        time.sleep(0.5)
        for name, child in children.items():
            if child.poll() is None or stopping:
                continue
            if name not in restart_at:
                delay = restart_delay(backoffs[name], time.monotonic() - started_at[name])
                logger.error(
                    "topology %s exited with %s; restarting in %.0f s",
                    name,
                    child.returncode,
                    delay,
                )
                restart_at[name] = time.monotonic() + delay
            elif time.monotonic() >= restart_at[name]:
                del restart_at[name]
                children[name] = _start(name, ports[name])
                started_at[name] = time.monotonic()
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
