"""`pstreams seed ACTION`: synthetic datasets in the SPEC section 6 directory format.

Each action is registered by one `_register_*` function on the `seed` parser.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from datetime import date
from pathlib import Path

from processor.seed import DATASET_FILES, SeedOptions, generate, write_dataset
from processor.seed.options import ORDERS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("seed", help="synthetic datasets (SPEC section 6 format)")
    actions = parser.add_subparsers(dest="seed_action", required=True, metavar="ACTION")
    _register_generate(actions)
    _register_load(actions)


def _register_generate(actions: argparse._SubParsersAction) -> None:
    defaults = SeedOptions()
    parser = actions.add_parser(
        "generate",
        help="write a deterministic synthetic dataset",
        description="Write a dataset shaped like the seed scripts' data; the same options "
        "always give byte-identical files. See docs/seed-data.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset directory")
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--interactions", type=int, default=defaults.interactions)
    parser.add_argument("--reviews", type=int, default=defaults.reviews)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--order",
        choices=ORDERS,
        default=defaults.order,
        help="interactions in event-time order, or shuffled as a DynamoDB snapshot delivers",
    )
    parser.add_argument(
        "--bursts",
        type=int,
        default=defaults.bursts,
        help="bursts of repeated purchases of one item within one 30-minute window",
    )
    parser.add_argument(
        "--skew",
        type=float,
        default=defaults.skew,
        help="popularity of users and items: weight 1/rank**SKEW (0 = uniform)",
    )
    parser.add_argument(
        "--changes", type=int, default=defaults.changes, help="entries of changes.jsonl"
    )
    parser.add_argument(
        "--faker", action="store_true", help="realistic names, emails, locations and texts"
    )
    parser.add_argument(
        "--no-edge-cases",
        dest="edge_cases",
        action="store_false",
        help="leave out the few records the analytics treat specially",
    )
    parser.add_argument(
        "--reference-date",
        type=date.fromisoformat,
        default=defaults.reference_date,
        help="stands in for 'now': interactions fall in the year before it (UTC)",
    )
    parser.set_defaults(handler=lambda args: _generate(parser, args))


def _generate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        # Every option's dest is the name of its SeedOptions field.
        options = SeedOptions(
            **{field.name: getattr(args, field.name) for field in fields(SeedOptions)}
        )
        dataset = generate(options)
    except (ValueError, ImportError) as error:
        parser.error(str(error))
    write_dataset(dataset, args.out)
    sizes = ", ".join(f"{len(getattr(dataset, name)):,} {name}" for name in DATASET_FILES)
    print(f"wrote {args.out}: {sizes} in {time.perf_counter() - started:.2f} s")
    return 0


def _register_load(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "load",
        help="load a dataset into the running stack as the CDC connectors would",
        description="Write the rows into the PostgreSQL source tables (schema user_data) and "
        "produce the matching CDC records, in order: snapshot, interactions, changes.",
    )
    parser.add_argument("directory", type=Path, help="dataset directory (SPEC section 6)")
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions of input topics created now"
    )
    parser.add_argument(
        "--only",
        choices=("rows", "interactions"),
        help="rows: source rows only, for a real CDC connector to capture; interactions: only "
        "the DynamoDB connector's records (default: everything)",
    )
    parser.add_argument(
        "--cdc",
        choices=("emulated", "debezium"),
        default="emulated",
        help="who writes the PostgreSQL CDC records: an emulation of the Confluent connector, "
        "or a Debezium connector on the Kafka Connect at CONNECT_URL that captures the rows "
        "(`pstreams local up --with-connect`); the DynamoDB records are always emulated",
    )
    parser.add_argument(
        "--shape",
        choices=("after-state", "rewrite", "envelope"),
        help="shape of the PostgreSQL CDC records (SPEC 1.1): the flat row of the production "
        "connector, ExtractNewRecordState with __deleted, or the full envelope (default: "
        "after-state when emulated, envelope under Debezium, which has no after-state)",
    )
    parser.set_defaults(handler=lambda args: _load(parser, args))


def _load(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from processor.connect_api import ConnectorError
    from processor.debezium import SHAPES
    from processor.seed.load import DatasetLoader
    from processor.settings import load_settings

    if not args.directory.is_dir():
        raise SystemExit(f"seed load: {args.directory} is not a directory")
    debezium = args.cdc == "debezium"
    shape = args.shape or ("envelope" if debezium else "after-state")
    if debezium and shape not in SHAPES:
        parser.error(f"--cdc debezium writes --shape {' or '.join(SHAPES)}")
    started = time.perf_counter()
    try:
        loader = DatasetLoader(
            load_settings(), args.partitions, shape, only=args.only, capture=args.cdc
        )
        counts = loader.load(args.directory)
    except ConnectorError as error:
        raise SystemExit(f"seed load: {error}") from None
    for topic, count in sorted(counts.per_topic.items()):
        print(f"{count:>9,} records  {topic}")
    print(f"loaded {args.directory} in {time.perf_counter() - started:.1f} s")
    return 0
