"""Compute the six SPEC 2 tables of a dataset with Apache Flink itself (PyFlink).

    .venv-flink/bin/python -m parity.flink_tables DATASET_DIR --out OUT_DIR [--tables ...]

Why: the project replaces Flink SQL statements, so the most direct parity oracle is
Flink running a transcription of them (`parity/sql/`) on the same input, and the same
run gives Flink's timings on this machine. Each table is one bounded STREAMING job at
parallelism 1, fed the dataset as the CDC topics carried it (`parity.dataset`): the
PostgreSQL tables as retract changelogs with primary keys, the DynamoDB documents as an
append-only stream with rowtime `event_time_ltz` and a zero-delay watermark. Bounded
sources end with MAX_WATERMARK, so the windows still open at the end fire too.

Results leave Flink through a Java FileSink (no per-row Python round trip): every change
as `+I[<json>]`, `-U[...]`, `+U[...]`, `-D[...]`, the row serialized by Flink's own
JSON_OBJECT. Applying that changelog gives the table's final contents, written as
`OUT_DIR/<table>.jsonl` (`parity.jsonl`).

`--discard` times compute only, as the benchmark wants it: each job's changelog goes to
Flink's DiscardingSink, with no JSON and no files, and no table is written. Writing the
files is not free: `item_shared_by_user_pair` emits tens of millions of changelog rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter

from pyflink.common import Row, RowKind, Types
from pyflink.common.serialization import Encoder
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, RollingPolicy
from pyflink.java_gateway import get_gateway
from pyflink.table import Schema, StreamTableEnvironment, Table
from pyflink.table.changelog_mode import ChangelogMode
from pyflink.table.types import LocalZonedTimestampType, TimestampType

from parity.dataset import PG_TABLES, Dataset, read_dataset
from parity.jsonl import table_path, write_table

SQL_DIR = Path(__file__).parent / "sql"
TABLES = sorted(path.stem for path in SQL_DIR.glob("*.sql"))

# The source tables each statement reads; only those are fed to its job.
TABLE_SOURCES: dict[str, tuple[str, ...]] = {
    "interaction_data": ("interactions",),
    "co_purchase_counts": ("interactions",),
    "user_purchase_totals": ("interactions", "users"),
    "highly_rated_item_details": ("reviews", "items", "categories"),
    "item_shared_by_user_pair": ("interactions",),
    "purchase_windowed_counts": ("interactions",),
}

# PostgreSQL columns that are INT; the other kept columns are VARCHAR (STRING).
INT_COLUMNS = frozenset(
    {"user_id", "category_id", "item_id", "brand_id", "review_id", "rating_score"}
)

ROW_KINDS = {
    "+I": RowKind.INSERT,
    "-U": RowKind.UPDATE_BEFORE,
    "+U": RowKind.UPDATE_AFTER,
    "-D": RowKind.DELETE,
}

# DATE_FORMAT pattern of an ISO 8601 UTC instant (the session time zone is UTC).
ISO_UTC = "'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''"

# The gateway JVM runs the whole local cluster; keep it modest on a shared 2-core machine.
DEFAULT_JVM_ARGS = "-Xmx1g -XX:+UseSerialGC"


def _statement(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8").strip().rstrip(";")


def _register_sources(
    env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, dataset: Dataset, table: str
) -> None:
    """Create the views the statement reads, from the dataset's in-memory streams."""
    for source in TABLE_SOURCES[table]:
        if source == "interactions":
            records = env.from_collection(
                [(document,) for document in dataset.documents],
                Types.ROW_NAMED(["document"], [Types.STRING()]),
            )
            rowtime = "TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(document, '$.timestamp.S') AS BIGINT), 0)"
            schema = (
                Schema.new_builder()
                .column("document", "STRING")
                .column_by_expression("event_time_ltz", rowtime)
                .watermark("event_time_ltz", "event_time_ltz")
                .build()
            )
            t_env.create_temporary_view("dynamodb_records", t_env.from_data_stream(records, schema))
            view = t_env.sql_query(_statement("sources/interactions.sql"))
        else:
            columns, key = PG_TABLES[source]
            types = [Types.INT() if c in INT_COLUMNS else Types.STRING() for c in columns]
            rows = []
            for kind, values in dataset.changelogs[source]:
                row = Row(*values)
                row.set_row_kind(ROW_KINDS[kind])
                rows.append(row)
            stream = env.from_collection(rows, Types.ROW_NAMED(list(columns), types))
            view = t_env.from_changelog_stream(
                stream, Schema.new_builder().primary_key(key).build(), ChangelogMode.all()
            )
        t_env.create_temporary_view(source, view)


def _environments() -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """A streaming execution environment at parallelism 1 and its table environment (UTC)."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    return env, t_env


def warm_up(dataset: Dataset) -> None:
    """Run one small job untimed, so that the first table's time does not include
    loading the planner, the code generator, the connectors and the local cluster."""
    sample = Dataset(changelogs={}, documents=dataset.documents[:10])
    with tempfile.TemporaryDirectory(prefix="parity-warm-up-") as sink_dir:
        run_job(sample, "interaction_data", Path(sink_dir))


def _query(
    dataset: Dataset, table: str
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment, Table]:
    """A fresh job's environments and the table's statement over its sources."""
    env, t_env = _environments()
    _register_sources(env, t_env, dataset, table)
    return env, t_env, t_env.sql_query(_statement(f"{table}.sql"))


def run_discarded(dataset: Dataset, table: str) -> None:
    """One bounded streaming job whose changelog is dropped inside the JVM: compute only."""
    env, t_env, result = _query(dataset, table)
    sinks = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2
    t_env.to_changelog_stream(result).sink_to(Sink(sinks.DiscardingSink()))
    env.execute(f"compute only {table}")


def run_job(dataset: Dataset, table: str, sink_dir: Path) -> tuple[list[str], list[str]]:
    """One bounded streaming job: the table's statement, its changelog into `sink_dir`.

    Returns the result's column names and which of them are timestamps.
    """
    env, t_env, result = _query(dataset, table)
    schema = result.get_schema()
    columns = schema.get_field_names()
    timestamps = [
        name
        for name, data_type in zip(columns, schema.get_field_data_types(), strict=True)
        if isinstance(data_type, (TimestampType, LocalZonedTimestampType))
    ]
    fields = ", ".join(
        f"'{name}' VALUE "
        + (f"DATE_FORMAT(`{name}`, {ISO_UTC})" if name in timestamps else f"`{name}`")
        for name in columns
    )
    t_env.create_temporary_view("derived", result)
    as_json = t_env.sql_query(f"SELECT JSON_OBJECT({fields}) AS row_json FROM derived")
    sink = (
        FileSink.for_row_format(str(sink_dir), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
        .build()
    )
    t_env.to_changelog_stream(as_json).sink_to(sink)
    env.execute(f"parity {table}")
    return columns, timestamps


def materialize(sink_dir: Path) -> list[str]:
    """Apply the changelog files: +I/+U add a row, -U/-D retract one; the rest is the table.

    Counting makes the order of lines and files irrelevant. A row retracted more often
    than added, or a part file the sink did not commit, means the run is not trustworthy.
    """
    counts: Counter[str] = Counter()
    for path in sorted(sink_dir.iterdir()):
        if path.name.startswith("."):
            raise RuntimeError(f"uncommitted FileSink part file {path}")
        with path.open(encoding="utf-8") as lines:
            for line in lines:  # "+I[{...}]\n"
                counts[line[3:-2]] += 1 if line[0] == "+" else -1
    negative = [row for row, n in counts.items() if n < 0]
    if negative:
        raise RuntimeError(f"{len(negative)} rows retracted but never added, e.g. {negative[0]}")
    return [row for row, n in counts.items() for _ in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity.flink_tables", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dataset", type=Path, help="dataset directory (SPEC 6)")
    parser.add_argument("--out", type=Path, required=True, help="directory for <table>.jsonl")
    parser.add_argument(
        "--discard", action="store_true", help="compute only: drop the results, write no table"
    )
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=TABLES, metavar="TABLE")
    args = parser.parse_args(argv)

    started = perf_counter()
    dataset = read_dataset(args.dataset)
    print(
        f"read {args.dataset}: {len(dataset.documents)} interactions, "
        f"{sum(map(len, dataset.changelogs.values()))} PostgreSQL changes",
        flush=True,
    )
    os.environ.setdefault("JVM_ARGS", DEFAULT_JVM_ARGS)  # read when the gateway starts
    gateway_started = perf_counter()
    get_gateway()
    warm_up(dataset)
    print(f"JVM started and warmed up in {perf_counter() - gateway_started:.1f} s", flush=True)
    print(f"{'table':<28}{'rows':>10}{'flink s':>10}", flush=True)
    flink_total = 0.0
    for table in args.tables:
        if args.discard:
            job_started = perf_counter()
            run_discarded(dataset, table)
            seconds = perf_counter() - job_started
            count = "-"
        else:
            with tempfile.TemporaryDirectory(prefix=f"parity-{table}-") as sink_dir:
                job_started = perf_counter()
                columns, timestamps = run_job(dataset, table, Path(sink_dir))
                seconds = perf_counter() - job_started
                rows = materialize(Path(sink_dir))
            count = write_table(table_path(args.out, table), columns, timestamps, rows)
        flink_total += seconds
        print(f"{table:<28}{count:>10}{seconds:>10.1f}", flush=True)
    print(
        f"{'total':<28}{'':>10}{flink_total:>10.1f}  ({perf_counter() - started:.1f} s wall clock)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
