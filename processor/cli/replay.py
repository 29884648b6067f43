"""`pstreams replay DIR`: a recorded fixture into the configured broker and registry."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "replay",
        help="produce a recorded fixture, registering its schemas and rewriting their ids",
        description="Produce every record of the fixture DIR to the configured broker, to its "
        "recorded partition with its recorded timestamp, after registering the writer "
        "schemas in the configured registry and rewriting the schema ids. Missing topics "
        "are created with the recorded partition counts. See docs/fixtures.md.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="fixture directory")
    parser.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="RECORDED=TARGET",
        help="produce the records of topic RECORDED to topic TARGET (repeatable)",
    )
    parser.set_defaults(handler=lambda args: _replay(parser, args))


def _replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import httpx
    from confluent_kafka import KafkaException

    from processor.fixtures import Fixture, FixtureError, replay
    from processor.settings import load_settings

    rename = dict(pair.split("=", 1) for pair in args.rename if "=" in pair)
    if len(rename) != len(args.rename):
        parser.error("--rename takes RECORDED=TARGET")
    settings = load_settings()
    try:
        fixture = Fixture.read(args.directory)
        unknown = set(rename) - set(fixture.records)
        if unknown:
            parser.error(f"--rename names topics the fixture lacks: {', '.join(sorted(unknown))}")
        counts = replay(settings, fixture, rename)
    except (FixtureError, KafkaException, httpx.HTTPError) as error:
        raise SystemExit(f"replay: {error}") from None
    for topic, count in sorted(counts.items()):
        print(f"{count:>9,} records  {topic}")
    return 0
