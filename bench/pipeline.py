"""The whole pipeline on the benchmark dataset, topics to PostgreSQL, beside Apache Flink.

Run `make bench` or `.venv/bin/python bench/pipeline.py [--only NAME...] [--all-at-once]
[--flink-python .venv-flink/bin/python] [--scale]`. With `--flink-python` (as `make bench`
passes it), Apache Flink first runs the replaced SQL on the same dataset
(`parity.flink_tables`: compute only, file in, no sink, parallelism 1), so that both sides
are timed in one run on one machine load. It then starts a fresh embedded stack of its
own on free ports in a temporary directory, loads the dataset as the CDC connectors
would, then runs each topology as a real process (`python -m processor run NAME`), one
at a time: `interaction_data` first, because the others read the topic it writes, then
each of the others alone on that topic. A topology is timed from its process start until
its committed offsets show it has consumed and flushed everything (`processor.progress`),
so the figures include Kafka, decoding, state and the PostgreSQL writes.

`--all-at-once` then times the whole pipeline end to end as the issue defines it:
`pstreams run --all` is started on input topics of its own, still empty, and once all six
processes are up, the dataset is loaded into them; the time runs from the first record
loaded until every table is final. `--scale` instead runs each topology alone at 30,000,
100,000 and 300,000 interactions (one fresh stack per point; no Flink), and prints the
time per joined pair of the pair tables. Figures only, no assertions: a benchmark on a
shared machine is for reading, not for failing builds. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from processor.local.stack import LocalStack, down, free_stack_ports, up
from processor.progress import wait_until_caught_up
from processor.runner import STARTED_LOG_LINE as STARTED
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader
from processor.settings import Settings, load_settings
from processor.topology import Topology, all_topologies

# The tables Flink is timed on: `interaction_data` is a projection there, no job of its own.
FLINK_TABLES = (
    "co_purchase_counts",
    "user_purchase_totals",
    "highly_rated_item_details",
    "item_shared_by_user_pair",
    "purchase_windowed_counts",
)
# The parity check's 1 GB heap is too small for `item_shared_by_user_pair` on the
# benchmark dataset: measured, Flink spent 482 s of a 10-minute run in 439 full collections.
FLINK_JVM_ARGS = "-Xmx6g -XX:+UseParallelGC"
FEEDER = "interaction_data"
# The tables whose cost grows with the joined pairs rather than with the records.
PAIR_TABLES = ("co_purchase_counts", "item_shared_by_user_pair")
# Interactions at each point of `--scale` (users, items and reviews as given).
SCALE_POINTS = (30_000, 100_000, 300_000)
# How often a waiting loop looks at whether the process it waits for is still alive.
LIVENESS_CHECK_S = 5.0
# Where the all-at-once run keeps its consumer groups, topics, tables and state, apart
# from those of the one-at-a-time runs on the same stack (values relative to the root).
ALL_AT_ONCE = {
    "PG_TOPIC_PREFIX": "all",
    "DYNAMODB_TOPIC": "all-interactions-cdc",
    "CONSUMER_GROUP_PREFIX": "pstreams-all-",
    "INTERACTIONS_TOPIC": "interaction_data_all",
    "DEAD_LETTER_TOPIC": "pstreams-all-dead-letter-{topology}",
    "POSTGRES_SCHEMA": "all_at_once",
}


class BenchError(RuntimeError):
    """A run could not be measured: a process exited or did not catch up in time."""


@dataclass(frozen=True)
class Measurement:
    """One topology run alone, from process start until caught up."""

    name: str
    total_s: float
    startup_s: float
    cpu_s: float
    input_events: int | None
    rows: int
    peak_rss_mb: float

    @property
    def processing_s(self) -> float:
        return self.total_s - self.startup_s


class Child:
    """A process whose merged output is read on a thread, to time its log lines.

    The output is kept only as a short tail, quoted when the process fails; the times at
    which lines containing `STARTED` appeared give the start-up time.
    """

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.began = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.started_at: list[float] = []
        self.tail: deque[str] = deque(maxlen=80)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if STARTED in line:
                self.started_at.append(time.perf_counter())
            self.tail.append(line.rstrip())

    def tree(self) -> list[psutil.Process]:
        """The process and its descendants (`pstreams run --all` has one per topology)."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def peak_rss_mb(self) -> dict[int, float]:
        """Peak resident memory (VmHWM) of each live process of the tree, by pid; one
        that exited while it was read (a zombie has no memory) is left out."""
        peaks = {process.pid: _vm_hwm_mb(process.pid) for process in self.tree()}
        return {pid: peak for pid, peak in peaks.items() if peak is not None}

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the whole tree."""
        return sum(sum(process.cpu_times()[:2]) for process in self.tree())

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a container; a kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)

    def failure(self, message: str) -> BenchError:
        tail = "".join(f"\n  | {line}" for line in self.tail)
        return BenchError(f"{message}; its last output:{tail}")


def _vm_hwm_mb(pid: int) -> float | None:
    """VmHWM of a process; None once it has exited (gone, or a zombie without memory)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[Child]:
    """A child that is stopped however the block ends, Ctrl-C included."""
    child = Child(command, env)
    try:
        yield child
    finally:
        child.stop()


def await_caught_up(
    settings: Settings, topologies: list[Topology], child: Child, timeout_s: float
) -> float:
    """The `perf_counter` time at which `topologies` were seen caught up.

    A caught-up answer is confirmed by one more look: the progress probe reads the end of
    an internal topic before the group's committed offsets, so a transaction committing
    between the two reads can look caught up for a moment. Waiting in slices checks that
    the process is still alive instead of waiting out the whole timeout for a dead one.
    """
    deadline = child.began + timeout_s
    while True:
        remaining = deadline - time.perf_counter()
        lags = wait_until_caught_up(
            settings, topologies, timeout=max(0.0, min(LIVENESS_CHECK_S, remaining))
        )
        if not lags:
            seen = time.perf_counter()
            if not wait_until_caught_up(settings, topologies, timeout=0):
                return seen
        elif child.process.poll() is not None:
            raise child.failure(f"the process exited with {child.process.returncode}")
        elif time.perf_counter() >= deadline:
            raise child.failure(
                f"not caught up after {timeout_s:.0f} s: {'; '.join(map(str, lags))}"
            )


@dataclass(frozen=True)
class FlinkRun:
    """Flink's seconds per table (its own timing of each job), and its whole process tree."""

    seconds: dict[str, float]
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def run_flink(flink_python: Path, dataset: Path, out: Path, timeout_s: float) -> FlinkRun:
    """`parity.flink_tables` on the dataset; its per-table lines are `table rows seconds`."""
    command = [str(flink_python), "-m", "parity.flink_tables", str(dataset), "--out", str(out)]
    command += ["--discard", "--tables", *FLINK_TABLES]
    with running(command, os.environ | {"JVM_ARGS": FLINK_JVM_ARGS}) as child:
        peak: dict[int, float] = {}
        cpu: dict[int, float] = {}
        while child.process.poll() is None:
            if time.perf_counter() - child.began > timeout_s:
                raise child.failure(f"Flink did not finish within {timeout_s:.0f} s")
            try:  # the JVM is a child of the Python process; sample both while they live
                for process in child.tree():
                    if (mb := _vm_hwm_mb(process.pid)) is not None:
                        peak[process.pid] = mb
                    cpu[process.pid] = sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.5)
        wall = time.perf_counter() - child.began
    if child.process.returncode != 0:
        raise child.failure(f"Flink exited with {child.process.returncode}")
    seconds = {}
    for line in child.tail:
        fields = line.split()
        if len(fields) == 3 and fields[0] in FLINK_TABLES:
            seconds[fields[0]] = float(fields[2])
    if set(seconds) != set(FLINK_TABLES):
        raise child.failure(f"Flink reported {sorted(seconds)}, not all of {FLINK_TABLES}")
    return FlinkRun(seconds, wall, sum(cpu.values()), sum(peak.values()))


def print_flink(flink: FlinkRun) -> None:
    print("\n### Apache Flink, compute only, in this run\n")
    print("- per table s: " + ", ".join(f"{n} {s:.1f}" for n, s in flink.seconds.items()))
    print(
        f"- sum {sum(flink.seconds.values()):.1f} s; whole process {flink.wall_s:.1f} s wall "
        f"(JVM start and warm-up included), {flink.cpu_s:.1f} CPU s, "
        f"peak RSS {flink.peak_rss_mb:.0f} MB (Python and JVM)"
    )


def _table_scalar(settings: Settings, table: str, expression: str) -> Any:
    """One aggregate over a derived table in PostgreSQL."""
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            query = f'SELECT {expression} FROM "{settings.postgres_schema}"."{table}"'
            return connection.scalar(sa.text(query))
    finally:
        engine.dispose()


def count_rows(settings: Settings, table: str) -> int:
    return _table_scalar(settings, table, "count(*)")


def input_events(settings: Settings, topology: Topology, records: dict[str, int]) -> int | None:
    """Records in the topology's input topics; None when one of them is not known."""
    counts = [records.get(topic) for topic in topology.inputs(settings)]
    return None if None in counts else sum(c for c in counts if c is not None)


def run_alone(
    topology: Topology,
    settings: Settings,
    env: dict[str, str],
    state_dir: Path,
    records: dict[str, int],
    timeout_s: float,
) -> Measurement:
    """One topology in its own process, with a fresh state directory, until caught up."""
    command = [sys.executable, "-m", "processor", "run", topology.name]
    with running(command, env | {"STATE_DIR": str(state_dir / topology.name)}) as child:
        caught_up = await_caught_up(settings, [topology], child, timeout_s)
        peak = max(child.peak_rss_mb().values())
        cpu = child.cpu_s()
    if not child.started_at:
        raise child.failure(f"{topology.name} never logged {STARTED!r}")
    return Measurement(
        name=topology.name,
        total_s=caught_up - child.began,
        startup_s=child.started_at[0] - child.began,
        cpu_s=cpu,
        input_events=input_events(settings, topology, records),
        rows=count_rows(settings, topology.name),
        peak_rss_mb=peak,
    )


def await_started(child: Child, processes: int, timeout_s: float) -> None:
    """Until `processes` of the child's processes have logged `STARTED`."""
    while len(child.started_at) < processes:
        if child.process.poll() is not None:
            raise child.failure(f"the process exited with {child.process.returncode}")
        if time.perf_counter() - child.began > timeout_s:
            raise child.failure(f"{len(child.started_at)} of {processes} started")
        time.sleep(0.1)


def run_all_at_once(
    topologies: list[Topology],
    env: dict[str, str],
    dataset: Path,
    state_dir: Path,
    timeout_s: float,
    flink: dict[str, float],
) -> None:
    """`pstreams run --all` end to end, on input topics of its own: started on the empty
    topics, then timed from the first record loaded until every table is final."""
    overrides = ALL_AT_ONCE | {"STATE_DIR": str(state_dir)}
    settings = Settings(**{name.lower(): value for name, value in overrides.items()})
    loader = DatasetLoader(settings)  # creates the input topics, empty
    command = [sys.executable, "-m", "processor", "run", "--all"]
    with running(command, env | overrides) as child:
        await_started(child, len(topologies), timeout_s)
        started = time.perf_counter() - child.began
        began = time.perf_counter()
        records = sum(loader.load(dataset).per_topic.values())
        loaded = time.perf_counter() - began
        caught_up = await_caught_up(settings, topologies, child, timeout_s)
        # The supervisor's command line ends in --all, each child's in its topology.
        names = {p.pid: p.cmdline()[-1].replace("--all", "supervisor") for p in child.tree()}
        peaks = {names[pid]: mb for pid, mb in child.peak_rss_mb().items()}
        cpu = child.cpu_s()
    total = caught_up - began
    print(f"\n### End to end: `pstreams run --all`, {len(topologies)} processes\n")
    print(
        f"- all {len(topologies)} started in {started:.1f} s; then {records:,} CDC records "
        f"loaded in {loaded:.1f} s; every table final {total:.1f} s after the first record "
        f"was loaded; CPU {cpu:.1f} s (start-up included)"
    )
    compared = sum(flink.get(t.name, 0.0) for t in topologies)
    if compared:
        print(
            f"- Flink, sum over the same tables: {compared:.1f} s; "
            f"speed ratio Flink / ours {compared / total:.2f}"
        )
    print("- peak RSS MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in peaks.items()))
    print("- rows: " + ", ".join(f"{t.name} {count_rows(settings, t.name):,}" for t in topologies))


def print_table(measurements: list[Measurement], flink: dict[str, float]) -> None:
    print(
        "\n| topology | total s | start-up s | processing s | CPU s | input events "
        "| events/s | rows | peak RSS MB | Flink s | Flink / ours |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for m in measurements:
        events = "-" if m.input_events is None else f"{m.input_events:,}"
        rate = "-" if m.input_events is None else f"{m.input_events / m.processing_s:,.0f}"
        theirs = flink.get(m.name)
        versus = "- | -" if theirs is None else f"{theirs:.1f} | {theirs / m.processing_s:.2f}"
        print(
            f"| {m.name} | {m.total_s:.1f} | {m.startup_s:.1f} | {m.processing_s:.1f} "
            f"| {m.cpu_s:.1f} | {events} | {rate} | {m.rows:,} | {m.peak_rss_mb:.0f} "
            f"| {versus} |"
        )
    compared = [m for m in measurements if m.name in flink]
    if compared:
        ours = sum(m.processing_s for m in compared)
        theirs = sum(flink[m.name] for m in compared)
        print(
            f"\nSum over the {len(compared)} tables Flink ran: processing "
            f"{ours:.1f} s, Flink {theirs:.1f} s, Flink / ours {theirs / ours:.2f}"
        )


def prepare_dataset(args: argparse.Namespace, scratch: Path) -> Path:
    """The dataset directory: `--dataset` reused when it holds one, else generated."""
    directory = args.dataset or scratch / "dataset"
    if (directory / "interactions.jsonl").exists():
        print(f"reusing the dataset in {directory} (size options ignored)", file=sys.stderr)
        return directory
    options = SeedOptions(
        users=args.users,
        items=args.items,
        interactions=args.interactions,
        reviews=args.reviews,
        seed=args.seed,
    )
    began = time.perf_counter()
    write_dataset(generate(options), directory)
    print(f"generate: {time.perf_counter() - began:.1f} s into {directory}", file=sys.stderr)
    return directory


def start_stack(scratch: Path) -> dict[str, str]:
    """A fresh embedded stack; returns the environment of the processes run against it."""
    began = time.perf_counter()
    stack: LocalStack = up(scratch / "stack", free_stack_ports())
    print(f"stack up: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    env = os.environ | stack.env() | {"PYTHONUNBUFFERED": "1"}
    # The loader and the progress probe read the same environment as the topologies.
    os.environ.update(env)
    return env


def run_each_alone(
    topologies: dict[str, Topology],
    wanted: set[str],
    settings: Settings,
    env: dict[str, str],
    state_dir: Path,
    records: dict[str, int],
    timeout_s: float,
) -> list[Measurement]:
    """`interaction_data` first, then each wanted topology alone on the topic it wrote."""
    order = [topologies[FEEDER], *(t for n, t in topologies.items() if n != FEEDER and n in wanted)]
    measurements = []
    for topology in order:
        print(f"running {topology.name} alone ...", file=sys.stderr)
        measurement = run_alone(topology, settings, env, state_dir, records, timeout_s)
        print(f"  caught up in {measurement.total_s:.1f} s", file=sys.stderr)
        measurements.append(measurement)
        if topology.name == FEEDER:
            # It publishes one record per row to the topic the others read.
            records[settings.interactions_topic] = measurement.rows
    return measurements


def bench(args: argparse.Namespace, scratch: Path) -> None:
    dataset = prepare_dataset(args, scratch)
    print(f"load average at the start: {_load_average()}")
    flink_run = None
    if args.flink_python:
        print("running Apache Flink on the dataset ...", file=sys.stderr)
        flink_run = run_flink(args.flink_python, dataset, scratch / "flink", args.timeout)
    flink = flink_run.seconds if flink_run else {}
    env = start_stack(scratch)
    settings = load_settings()

    began = time.perf_counter()
    records = dict(DatasetLoader(settings).load(dataset).per_topic)
    load_s = time.perf_counter() - began
    topologies = all_topologies()
    wanted = set(args.only or topologies)
    measurements = run_each_alone(
        topologies, wanted, settings, env, scratch / "state", records, args.timeout
    )

    print(f"\n## Pipeline benchmark: {dataset}\n")
    print(f"- load: {sum(records.values()):,} CDC records in {load_s:.1f} s")
    print(f"- {os.cpu_count()} CPUs; topologies run one at a time")
    print_table(measurements, flink)
    if args.all_at_once:
        print("running all topologies at once ...", file=sys.stderr)
        chosen = [m.name for m in measurements]
        run_all_at_once(
            [topologies[name] for name in chosen],
            env,
            dataset,
            scratch / "state-all",
            args.timeout,
            flink,
        )
    if flink_run:
        print_flink(flink_run)
    print(f"\nload average at the end: {_load_average()}")


def joined_pairs(settings: Settings, topology: Topology) -> int | None:
    """A pair table's sum of counts: the rows its SQL self-join produces; None for the
    other tables."""
    if topology.name not in PAIR_TABLES:
        return None
    count = list(topology.table.columns)[-1].name
    return int(_table_scalar(settings, topology.name, f'sum("{count}")') or 0)


def scale(args: argparse.Namespace, scratch: Path) -> None:
    """Each topology alone at each scale point, the other sizes fixed."""
    print(f"load average at the start: {_load_average()}")
    topologies = all_topologies()
    wanted = set(args.only or topologies)
    rows = []
    for interactions in SCALE_POINTS:
        point_dir = scratch / f"scale-{interactions}"
        try:
            rows += scale_point(args, point_dir, interactions, topologies, wanted)
        finally:
            down(point_dir / "stack")
    print(f"\n## Scale: {args.users:,} users, {args.items:,} items, {args.reviews:,} reviews\n")
    print(
        "| interactions | topology | processing s | CPU s | rows | joined pairs "
        "| µs per joined pair | peak RSS MB |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|--:|")
    for interactions, m, pairs in rows:
        per_pair = f"{m.processing_s / pairs * 1e6:.2f}" if pairs else "-"
        print(
            f"| {interactions:,} | {m.name} | {m.processing_s:.1f} | {m.cpu_s:.1f} | {m.rows:,} "
            f"| {'-' if pairs is None else f'{pairs:,}'} | {per_pair} | {m.peak_rss_mb:.0f} |"
        )
    print(f"\nload average at the end: {_load_average()}")


def scale_point(
    args: argparse.Namespace,
    directory: Path,
    interactions: int,
    topologies: dict[str, Topology],
    wanted: set[str],
) -> list[tuple[int, Measurement, int | None]]:
    """One point of `--scale` on a stack of its own: the source tables of two datasets
    would collide in one database."""
    options = SeedOptions(
        users=args.users,
        items=args.items,
        interactions=interactions,
        reviews=args.reviews,
        seed=args.seed,
    )
    write_dataset(generate(options), directory / "dataset")
    env = start_stack(directory)
    settings = load_settings()
    records = dict(DatasetLoader(settings).load(directory / "dataset").per_topic)
    measurements = run_each_alone(
        topologies, wanted, settings, env, directory / "state", records, args.timeout
    )
    return [(interactions, m, joined_pairs(settings, topologies[m.name])) for m in measurements]


def _load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg()) + " (1, 5, 15 min)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        type=Path,
        help="reuse the dataset in DIR, or generate it there and keep it if DIR has none",
    )
    defaults = SeedOptions(users=1_000, items=500, interactions=100_000, reviews=2_000)
    for size in ("users", "items", "interactions", "reviews", "seed"):
        parser.add_argument(f"--{size}", type=int, default=getattr(defaults, size))
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds each run may take to catch up"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="TOPOLOGY", help=f"time these after {FEEDER} (default: all)"
    )
    parser.add_argument("--all-at-once", action="store_true", help="also time `pstreams run --all`")
    parser.add_argument(
        "--scale",
        action="store_true",
        help=f"instead: each topology alone at {', '.join(map(str, SCALE_POINTS))} interactions "
        "(no Flink, no --dataset)",
    )
    parser.add_argument(
        "--flink-python",
        type=Path,
        help="the Python of a virtualenv with apache-flink: time Flink on the dataset first",
    )
    args = parser.parse_args()

    # SIGTERM unwinds like Ctrl-C, so the children and the stack are stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = Path(tempfile.mkdtemp(prefix="pstreams-bench-"))
    try:
        (scale if args.scale else bench)(args, scratch)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        down(scratch / "stack")
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
