"""`pstreams acl TOPOLOGY --principal User:NAME [--apply]`: the Kafka ACLs a topology
needs (`processor.acl`), printed, or granted with the configured credentials."""

from __future__ import annotations

import argparse

from processor.acl import apply, grants
from processor.settings import load_settings
from processor.topology import all_topologies


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("acl", help="print or grant the Kafka ACLs of a topology")
    parser.add_argument("topology", choices=sorted(all_topologies()))
    parser.add_argument(
        "--principal",
        default="User:<principal>",
        help="whom the ACLs allow, e.g. User:sa-abc123 (required with --apply)",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="create them on the configured cluster (the credentials need ALTER on it)",
    )
    parser.set_defaults(handler=_acl)


def _acl(args: argparse.Namespace) -> int:
    settings = load_settings()
    wanted = grants(all_topologies()[args.topology], settings)
    if not args.apply:
        print(f"# ACLs of {args.topology} for {args.principal} (allow, any host)")
        for grant in wanted:
            print(grant)
        return 0
    if not args.principal.startswith("User:") or args.principal == "User:<principal>":
        print("pstreams acl: --apply needs --principal User:NAME")
        return 2
    created = apply(settings, args.principal, wanted)
    print(f"granted {created} ACLs to {args.principal} for {args.topology}")
    return 0
