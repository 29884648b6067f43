"""`pstreams run TOPOLOGY | --all`: topologies in the foreground; `--all` supervises one
child process per topology (`processor.supervisor`)."""

from __future__ import annotations

import argparse
import logging

from quixstreams.state.exceptions import StateRecoveryOffsetOutOfRange

from processor.errors import ConfigurationError
from processor.logs import configure_logging
from processor.permissions import denial
from processor.settings import load_settings
from processor.supervisor import EX_CONFIG, supervise
from processor.topology import all_topologies

logger = logging.getLogger("processor.run")


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
        return supervise(
            sorted(all_topologies()), settings.ops_port, settings.child_liveness_timeout_s
        )
    from processor.runner import run_topology

    try:
        run_topology(all_topologies()[args.topology], settings)
    except (ConfigurationError, StateRecoveryOffsetOutOfRange) as error:
        return _stop(args.topology, str(error))
    except Exception as error:
        denied = denial(error, settings.consumer_group(args.topology))
        if denied is None:
            raise
        return _stop(args.topology, f"{denied}; `pstreams acl {args.topology}` lists its ACLs")
    return 0


def _stop(topology: str, reason: str) -> int:
    """End a run that no restart can mend, in one line (logged, so secrets are masked)."""
    logger.critical("pstreams run %s: %s", topology, reason)
    return EX_CONFIG
