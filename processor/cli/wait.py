"""`pstreams wait [TOPOLOGY...]`: return once every topology (or the named ones) has
consumed and flushed what exists now."""

from __future__ import annotations

import argparse

from processor.progress import wait_until_caught_up
from processor.settings import load_settings
from processor.topology import all_topologies


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "wait", help="wait until every topology has consumed all input that exists now"
    )
    parser.add_argument(
        "topologies",
        nargs="*",
        metavar="TOPOLOGY",
        help=f"only these, of {', '.join(sorted(all_topologies()))} (default: all)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.set_defaults(handler=_wait)


def _wait(args: argparse.Namespace) -> int:
    topologies = all_topologies()
    unknown = sorted(set(args.topologies) - topologies.keys())
    if unknown:
        print(f"pstreams wait: no such topology: {', '.join(unknown)}")
        return 2
    chosen = [topologies[name] for name in args.topologies] or list(topologies.values())
    lags = wait_until_caught_up(load_settings(), chosen, args.timeout)
    if not lags:
        return 0
    print(f"timed out after {args.timeout:.0f} s; still behind:")
    for lag in lags:
        print(f"  {lag}")
    return 1
