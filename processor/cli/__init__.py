"""The `pstreams` command line; each sub-command lives in its own module here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from processor.cli import acl, demo, local, record, replay, run, seed, wait


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pstreams",
        description="Stream processor for the personalization CDC analytics pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (acl, demo, local, record, replay, run, seed, wait):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args) or 0)
