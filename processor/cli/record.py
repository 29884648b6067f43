"""`pstreams record`: live topics into a fixture directory (SPEC section 7)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "record",
        help="record topics and their writer schemas into a fixture directory",
        description="Record the configured broker's topics (KAFKA_* variables) and the writer "
        "schemas their records reference (SCHEMA_REGISTRY_* variables) into DIR. With "
        "--from-beginning it stops at the partition ends taken at the start; otherwise it "
        "records what arrives from now on until --max per topic or Ctrl-C. "
        "See docs/fixtures.md.",
    )
    parser.add_argument("--topics", nargs="+", required=True, metavar="TOPIC")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="fixture directory")
    parser.add_argument("--max", type=int, metavar="N", help="at most N records per topic")
    parser.add_argument(
        "--from-beginning", action="store_true", help="from each partition's first record"
    )
    parser.set_defaults(handler=lambda args: _record(parser, args))


def _record(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import httpx
    from confluent_kafka import KafkaException

    from processor.fixtures import FixtureError, record
    from processor.settings import load_settings

    if args.max is not None and args.max < 1:
        parser.error("--max must be at least 1")
    settings = load_settings()
    if not args.from_beginning:
        print(
            "recording new records; Ctrl-C to stop"
            + (f" (or {args.max} per topic)" if args.max else "")
        )
    try:
        fixture = record(
            settings, args.topics, max_records=args.max, from_beginning=args.from_beginning
        )
    except (FixtureError, KafkaException, httpx.HTTPError) as error:
        raise SystemExit(f"record: {error}") from None
    fixture.write(args.out)
    for topic, records in fixture.records.items():
        print(f"{len(records):>9,} records  {topic}")
    print(f"{len(fixture.schemas)} writer schemas; fixture written to {args.out}")
    if fixture.unknown_schema_ids:
        ids = ", ".join(map(str, fixture.unknown_schema_ids))
        print(f"schema ids unknown to the registry, left as recorded: {ids}")
    return 0
