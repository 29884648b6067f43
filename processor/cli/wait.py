"""`pstreams wait`: return once every topology has consumed and flushed what exists now."""

from __future__ import annotations

import argparse

from processor.progress import wait_until_caught_up
from processor.settings import load_settings
from processor.topology import all_topologies


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "wait", help="wait until every topology has consumed all input that exists now"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.set_defaults(handler=_wait)


def _wait(args: argparse.Namespace) -> int:
    lags = wait_until_caught_up(load_settings(), list(all_topologies().values()), args.timeout)
    if not lags:
        return 0
    print(f"timed out after {args.timeout:.0f} s; still behind:")
    for lag in lags:
        print(f"  {lag}")
    return 1
