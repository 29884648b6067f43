"""`pstreams demo`: the whole pipeline on the embedded stack, from dataset to tables.

The demo always starts from a fresh stack of its own (under `.local/demo`, on free
ports), so it never meets a developer's stack and every run shows the same tables. The
stack is left running at the end so the tables can be explored with psql.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from processor.topology import Topology, all_topologies

DEMO_ROOT = Path(".local/demo")
DEMO_DATASET = Path(__file__).resolve().parents[2] / "seed" / "demo"
# How each table is best shown: its most telling rows first.
TOP_ROWS = {
    "interaction_data": "ORDER BY event_time_ltz DESC, source_offset DESC",
    "co_purchase_counts": 'ORDER BY co_purchase_count DESC, "item_id_A", "item_id_B"',
    "user_purchase_totals": "ORDER BY total_purchases DESC, user_id",
    "highly_rated_item_details": "ORDER BY rating_score DESC, user_id, item_id",
    "item_shared_by_user_pair": 'ORDER BY shared_item_count DESC, "user_A", "user_B"',
    "purchase_windowed_counts": "ORDER BY purchase_count DESC, window_start, user_id",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run the whole pipeline on a fresh embedded stack and show the tables"
    )
    parser.add_argument("--dataset", type=Path, default=DEMO_DATASET, help="dataset directory")
    parser.add_argument("--rows", type=int, default=5, help="rows shown per table")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from processor.local.ports import free_ports
    from processor.local.stack import StackError, down, recorded, up

    console = Console()
    console.rule("[bold]personalization-streams demo")
    if recorded(DEMO_ROOT) is not None:
        console.print("stopping the previous demo stack")
        down(DEMO_ROOT)
    broker, registry, postgres = free_ports(3)
    with console.status("starting the embedded stack (broker, schema registry, PostgreSQL)"):
        try:
            stack = up(
                DEMO_ROOT, broker_port=broker, registry_port=registry, postgres_port=postgres
            )
        except StackError as error:
            console.print(f"[red]the local stack could not start:[/red] {error}")
            return 1
    console.print(f"stack up: broker {stack.bootstrap_servers}, registry {stack.registry_url}")
    # Operations endpoints on ports the OS picks: a demo never meets another process's.
    env = os.environ | stack.env() | {"OPS_PORT": "0"}
    os.environ.update(env)

    from processor.progress import wait_until_caught_up
    from processor.seed.load import DatasetLoader
    from processor.settings import load_settings

    settings = load_settings()
    with console.status(f"loading {args.dataset} as the CDC connectors would"):
        started = time.perf_counter()
        counts = DatasetLoader(settings).load(args.dataset)
    console.print(
        f"loaded {sum(counts.per_topic.values()):,} CDC records into "
        f"{len(counts.per_topic)} topics in {time.perf_counter() - started:.1f} s"
    )
    topologies = all_topologies()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "processor", "run", "--all"],
        env=env,
        stdout=(stack.logs_dir / "topologies.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        with console.status(f"processing with {len(topologies)} topologies"):
            started = time.perf_counter()
            lags = wait_until_caught_up(settings, list(topologies.values()), timeout=300)
        if lags:
            console.print("[red]the topologies did not catch up:[/red]")
            for lag in lags:
                console.print(f"  {lag}")
            console.print(f"see {stack.logs_dir / 'topologies.log'}")
            return 1
        console.print(f"all topologies caught up in {time.perf_counter() - started:.1f} s")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=90)
    _show_tables(console, settings.sqlalchemy_url, settings.postgres_schema, topologies, args.rows)
    console.print(
        f"\nexplore further: psql {stack.postgres_url}\n"
        f"stop the demo stack: pstreams local down --root {DEMO_ROOT}"
    )
    return 0


def _show_tables(
    console: Console, url: str, schema: str, topologies: dict[str, Topology], rows: int
) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        for name, topology in topologies.items():
            count = connection.scalar(sa.text(f"SELECT count(*) FROM {schema}.{name}"))
            columns = [
                c.name
                for c in topology.table.columns
                if not c.name.startswith("source_") or name != "interaction_data"
            ]
            quoted = ", ".join(f'"{column}"' for column in columns)
            result = connection.execute(
                sa.text(f"SELECT {quoted} FROM {schema}.{name} {TOP_ROWS[name]} LIMIT {rows}")
            )
            table = Table(title=f"{name}: {count:,} rows", title_justify="left")
            for column in columns:
                table.add_column(column)
            for row in result:
                table.add_row(*("NULL" if value is None else str(value) for value in row))
            console.print(table)
