"""`pstreams local up|down|status|env` (placeholder until the local stack lands)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("local", help="the embedded local stack")
    parser.set_defaults(handler=lambda args: parser.print_help())
