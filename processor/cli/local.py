"""`pstreams local up|down|status|env`: the embedded local stack (see docs/local-stack.md)."""

from __future__ import annotations

import argparse
import shlex
import sys

from processor.local import stack
from processor.local.jvm import JavaNotFound


def register(commands: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        help=f"directory of the stack's state (default: ${stack.ROOT_ENV} or {stack.DEFAULT_ROOT})",
    )
    parser = commands.add_parser(
        "local",
        help="the embedded local stack: Kafka, schema registry, PostgreSQL, Connect",
        description="Run Apache Kafka, Apicurio Registry, PostgreSQL and, if asked for, "
        "Kafka Connect with Debezium on this machine, without Docker.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    start = actions.add_parser(
        "up", parents=[common], help="start what is not running and wait until it answers"
    )
    for name, port in stack.DEFAULT_PORTS.items():
        start.add_argument(
            f"--{name}-port", type=int, metavar="PORT", help=f"{name} port (default {port})"
        )
    start.add_argument(
        "--with-connect",
        action="store_true",
        help="also run Kafka Connect with Debezium (kept for this stack from then on)",
    )
    start.set_defaults(handler=_up)

    actions.add_parser(
        "stop", parents=[common], help="stop everything, keep the data (`up` resumes)"
    ).set_defaults(handler=_stop)
    actions.add_parser(
        "down", parents=[common], help="stop everything and delete the stack's directory"
    ).set_defaults(handler=_down)
    actions.add_parser(
        "status", parents=[common], help="one line per component; exit 1 if any is down"
    ).set_defaults(handler=_status)
    actions.add_parser(
        "env", parents=[common], help='shell exports for `eval "$(pstreams local env)"`'
    ).set_defaults(handler=_env)


def _up(args: argparse.Namespace) -> int:
    try:
        ports = {
            name: port
            for name in stack.DEFAULT_PORTS
            if (port := getattr(args, f"{name}_port")) is not None
        }
        running = stack.up(args.root, ports, connect=args.with_connect, echo=print)
    except (stack.StackError, JavaNotFound) as error:
        print(f"pstreams local up: {error}", file=sys.stderr)
        return 1
    root_option = "" if args.root is None else f" --root {shlex.quote(args.root)}"
    print(f'\npoint pstreams at it with: eval "$(pstreams local env{root_option})"')
    print(f"state and logs: {running.root}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    try:
        stopped = stack.stop(args.root)
    except stack.StackError as error:
        print(f"pstreams local stop: {error}", file=sys.stderr)
        return 1
    root = stack.resolve_root(args.root)
    print(f"stopped {', '.join(stopped)}; data kept in {root}" if stopped else "nothing running")
    return 0


def _down(args: argparse.Namespace) -> int:
    root = stack.resolve_root(args.root)
    if not root.exists():
        print(f"no stack under {root}")
        return 0
    try:
        stack.down(root)
    except stack.StackError as error:
        print(f"pstreams local down: {error}", file=sys.stderr)
        return 1
    print(f"stopped; removed {root}")
    return 0


def _status(args: argparse.Namespace) -> int:
    statuses = stack.status(args.root)
    for component in statuses:
        pid = "" if component.pid is None else f"pid {component.pid}"
        print(f"{component.name:<9}{component.state:<14}{component.address:<50}{pid}".rstrip())
    return 0 if all(component.state == "running" for component in statuses) else 1


def _env(args: argparse.Namespace) -> int:
    running = stack.recorded(args.root)
    if running is None:
        print(
            f"pstreams local env: no stack under {stack.resolve_root(args.root)}; "
            "start one with `pstreams local up`",
            file=sys.stderr,
        )
        return 1
    for name, value in running.env().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
