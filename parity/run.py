"""Run Apache Flink, our pipeline and the reference model on the same datasets; report
every difference, table by table, row by row (docs/parity.md).

    .venv/bin/python -m parity.run [DATASET_DIR ...] [--flink-python .venv-flink/bin/python]

Without datasets it runs the shipped ones: `seed/demo` and a generated shuffled, skewed
dataset with changes. Per dataset:

- Flink: `parity.flink_tables` in the Flink virtualenv (a subprocess: apache-flink is
  never installed beside the project) runs the SQL transcription `parity/sql/`;
- the pipeline: a fresh embedded stack of its own, the dataset loaded as the connectors
  would (`DatasetLoader`), `pstreams run --all` until caught up, the tables read back
  from PostgreSQL;
- the reference model of `tests/reference/model.py`.

Three comparisons per table attribute a difference: Flink vs model (the transcription or
Flink itself), pipeline vs Flink (the product's parity), pipeline vs model. Exit status 1
on any difference, including a table the pipeline does not produce.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.jsonl import read_table, table_path
from processor.local.processes import pstreams_running
from processor.local.stack import LocalStack, down, free_stack_ports, up
from processor.progress import wait_until_caught_up
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader
from processor.settings import load_settings
from processor.topology import all_topologies
from tests.reference.compare import TABLES, diff, read_tables
from tests.reference.model import SourceState, derived_tables, simulate_purchase_windows

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "seed" / "demo"
WINDOWED = "purchase_windowed_counts"
# The generated datasets of `make parity`: name -> (options, the largest arrival delay in
# seconds). Both have popular users and items, purchase bursts (so windows have rows) and
# updates and deletes in every source table; sizes suit Flink's pair self-joins.
# "shuffled-skewed" delivers the interactions in random order, as a DynamoDB snapshot
# does (almost every purchase is late); "delayed-bursts" delivers each interaction up to
# three hours after its event time, so only some purchases miss their window.
SHUFFLED_SKEWED = SeedOptions(
    users=60,
    items=25,
    interactions=3000,
    reviews=150,
    seed=11,
    order="shuffled",
    skew=1.0,
    bursts=20,
    changes=120,
)
GENERATED: dict[str, tuple[SeedOptions, int]] = {
    "shuffled-skewed": (SHUFFLED_SKEWED, 0),
    "delayed-bursts": (
        dataclasses.replace(SHUFFLED_SKEWED, seed=12, order="event-time", bursts=40),
        3 * 3600,
    ),
}
CATCH_UP_TIMEOUT_S = 600


@dataclass
class Comparison:
    """One table of one dataset: the three sides and the differences between them."""

    table: str
    sides: dict[str, int | None] = field(default_factory=dict)  # rows per side
    findings: dict[str, list[str]] = field(default_factory=dict)  # per pairing

    @property
    def differs(self) -> bool:
        return any(self.findings.values())


def flink_tables(dataset: Path, out: Path, flink_python: Path) -> dict[str, list[tuple]]:
    """The tables Flink computes, rows in SPEC 3 column order; a table whose statement
    names other columns is an error (the transcription must produce the SPEC's table)."""
    command = [str(flink_python), "-m", "parity.flink_tables", str(dataset), "--out", str(out)]
    if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
        raise SystemExit(f"Flink failed on {dataset}: see its output above")
    tables = {}
    for name, spec in TABLES.items():
        table = read_table(table_path(out, name))
        if set(table.columns) != set(spec.columns):
            raise SystemExit(f"parity/sql/{name}.sql returns {table.columns}, not {spec.columns}")
        order = [table.columns.index(column) for column in spec.columns]
        tables[name] = [tuple(row[i] for i in order) for row in table.rows]
    return tables


@contextmanager
def fresh_stack() -> Iterator[LocalStack]:
    """An embedded stack of its own on free ports, in a directory PostgreSQL's service
    user can reach (not under a 0700 tree), removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="pstreams-parity-"))
    try:
        yield up(root, free_stack_ports())
    finally:
        down(root)
        shutil.rmtree(root, ignore_errors=True)


def pipeline_tables(dataset: Path, log: Path) -> dict[str, list[tuple]]:
    """The tables our topologies produce from the dataset, read back from PostgreSQL."""
    with fresh_stack() as stack:
        # Operations endpoints on ports the OS picks: other stacks may run beside this one.
        os.environ.update(stack.env() | {"OPS_PORT": "0"})
        env = dict(os.environ)
        settings = load_settings()
        DatasetLoader(settings).load(dataset)
        with pstreams_running("run", "--all", env=env, log=log):
            started = time.perf_counter()
            lags = wait_until_caught_up(
                settings, list(all_topologies().values()), CATCH_UP_TIMEOUT_S
            )
            if lags:
                raise SystemExit(
                    f"the pipeline did not catch up on {dataset} (see {log}): "
                    + "; ".join(map(str, lags))
                )
            print(f"pipeline caught up in {time.perf_counter() - started:.1f} s", flush=True)
        return read_tables(settings.sqlalchemy_url, settings.postgres_schema)


def closed_before_end(rows: list[tuple], state: SourceState) -> list[tuple]:
    """Window rows the stream itself closed: window_end at or before the final watermark
    (the latest event time, allowed lateness 0). Flink's bounded source also fires the
    windows still open at the end (MAX_WATERMARK); an unbounded pipeline never does."""
    if not state.interactions:
        return []
    watermark = max(interaction.event_time for interaction in state.interactions)
    end = TABLES[WINDOWED].columns.index("window_end")
    return [row for row in rows if row[end] <= watermark]


def compare_dataset(dataset: Path, out: Path, flink_python: Path) -> list[Comparison]:
    """Every table of one dataset, compared three ways."""
    state = SourceState.from_directory(dataset)
    model: dict[str, Any] = derived_tables(state)
    flink = flink_tables(dataset, out / "flink", flink_python)
    ours = pipeline_tables(dataset, out / "pipeline.log")
    produced = all_topologies()

    # Table 6 depends on arrival order: Flink judges late rows in file order and its
    # bounded input closes every window; the pipeline, one partition per topic (multiple
    # partitions merge watermarks, docs/windows.md), reads the same order but keeps its
    # last windows open.
    flink_model = dict(model)
    flink_model[WINDOWED] = simulate_purchase_windows(state, 0, end_of_input=True).rows
    ours_model = dict(model)
    ours_model[WINDOWED] = simulate_purchase_windows(state, 0).rows
    ours_flink = dict(flink)
    ours_flink[WINDOWED] = closed_before_end(flink[WINDOWED], state)

    comparisons = []
    for table in TABLES:
        comparison = Comparison(table)
        comparison.sides = {
            "model": len(model[table]),
            "flink": len(flink[table]),
            "pipeline": len(ours[table]) if table in ours else None,
        }
        comparison.findings["flink vs model"] = _diff(table, flink_model, flink)
        if table not in produced or table not in ours:
            comparison.findings["pipeline"] = ["not produced by the pipeline"]
        else:
            comparison.findings["pipeline vs flink"] = _diff(table, ours_flink, ours)
            comparison.findings["pipeline vs model"] = _diff(table, ours_model, ours)
        comparisons.append(comparison)
    return comparisons


def _diff(table: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    return diff({table: expected[table]}, {table: actual[table]})


def report(dataset: Path, comparisons: list[Comparison]) -> None:
    print(f"\n== {dataset}")
    print(f"{'table':<28}{'model':>8}{'flink':>8}{'pipeline':>10}  result")
    for c in comparisons:
        ours = "-" if c.sides["pipeline"] is None else c.sides["pipeline"]
        verdict = ", ".join(f"{pairing} DIFFERS" for pairing, f in c.findings.items() if f)
        print(
            f"{c.table:<28}{c.sides['model']:>8}{c.sides['flink']:>8}{ours:>10}  "
            f"{verdict or 'same'}"
        )
    for c in comparisons:
        for pairing, lines in c.findings.items():
            if lines:
                print(f"-- {c.table}, {pairing}:")
                print("\n".join(f"   {line}" for line in lines))


def delayed(interactions: list[dict], max_delay_s: int, seed: int) -> list[dict]:
    """The interactions in the order they arrive when each is delayed by a random 0 to
    `max_delay_s` seconds after its event time: bounded, local disorder."""
    rng = random.Random(seed)
    arrival = {
        id(item): int(item["timestamp"]["S"]) + rng.uniform(0, max_delay_s) for item in interactions
    }
    return sorted(interactions, key=lambda item: arrival[id(item)])


def shipped_datasets(out: Path) -> list[Path]:
    """`seed/demo` and the generated datasets (written under `out`)."""
    paths = [DEMO]
    for name, (options, max_delay_s) in GENERATED.items():
        dataset = generate(options)
        if max_delay_s:
            interactions = delayed(dataset.interactions, max_delay_s, options.seed)
            dataset = dataclasses.replace(dataset, interactions=interactions)
        write_dataset(dataset, out / "datasets" / name)
        paths.append(out / "datasets" / name)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("datasets", nargs="*", type=Path, help="default: the shipped datasets")
    parser.add_argument(
        "--flink-python", type=Path, default=ROOT / ".venv-flink" / "bin" / "python"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "state" / "parity")
    args = parser.parse_args(argv)
    if not args.flink_python.exists():
        raise SystemExit(f"{args.flink_python} not found: run `make flink-venv` first")

    for dataset in args.datasets:
        if not (dataset / "interactions.jsonl").exists():
            raise SystemExit(
                f"{dataset} is not a dataset directory (SPEC 6): no interactions.jsonl"
            )
    datasets = args.datasets or shipped_datasets(args.out)
    failed = False
    for number, dataset in enumerate(datasets):
        print(f"\n### {dataset}", flush=True)
        comparisons = compare_dataset(
            dataset, args.out / f"{number}-{dataset.name}", args.flink_python
        )
        report(dataset, comparisons)
        failed |= any(c.differs for c in comparisons)
    print("\nparity: " + ("DIFFERENCES FOUND" if failed else "no difference"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
