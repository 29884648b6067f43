"""A derived table's changes written to a data lake, as the brief's second system (Debezium
→ Kafka → Glue → S3) ends in one: Parquet files on S3 or in a local directory.

Each checkpoint's flush that wrote rows to PostgreSQL writes the same changes, refused
rows left out, to one Parquet file:

    <LAKE_URL>/<table>/date=<YYYY-MM-DD>/<commit time, ns>-<instance id>.parquet

`date=` is the commit time's UTC day, a Hive-style partition that DuckDB, Athena and
Glue read as a column. A file holds the table's columns and, per row:

- `_op`: `upsert` (the row's absolute value) or `delete` (only the key columns are set);
- `_commit_time`: the time of the checkpoint's flush, the same for every row of a file;
- `_source_topic`, `_source_partition`, `_source_offset`: the input record that last
  changed the row in that checkpoint.

The current table is each key's row of the latest `_commit_time`, unless that row is a
delete (docs/deployment.md has the query). That is the order in which PostgreSQL received
the same writes, so the rebuild equals the table.

The file is written before the checkpoint commits its input offsets. A kill in between
leaves the file of a checkpoint that never committed: the replay writes its rows again,
each with the same value at the same source offsets, or a later one. A reader of the
change history drops the repeats by (key, source topic, partition, offset); the rebuild
needs nothing, since later writes win. A lake that cannot be written pauses the topology
and replays the checkpoint (SinkBackpressureError), as an unreachable PostgreSQL does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import sqlalchemy as sa
from quixstreams.sinks import SinkBackpressureError

from processor.backoff import Backoff
from processor.errors import LakeUnavailable
from processor.sinks.postgres import Changes, Origin, Values, row_key

logger = logging.getLogger(__name__)

UPSERT, DELETE = "upsert", "delete"
CHANGE_COLUMNS = pa.schema(
    [
        pa.field("_op", pa.string(), nullable=False),
        pa.field("_commit_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("_source_topic", pa.string(), nullable=False),
        pa.field("_source_partition", pa.int32(), nullable=False),
        pa.field("_source_offset", pa.int64(), nullable=False),
    ]
)


def arrow_type(column: sa.Column) -> pa.DataType:
    if isinstance(column.type, sa.BigInteger):
        return pa.int64()
    if isinstance(column.type, sa.Integer):
        return pa.int32()
    if isinstance(column.type, sa.TIMESTAMP):
        return pa.timestamp("us", tz="UTC")
    if isinstance(column.type, sa.Text):
        return pa.string()
    raise TypeError(f"column {column.name}: no Arrow type for {column.type!r}")


def change_schema(table: sa.Table) -> pa.Schema:
    """The table's columns (NULL in a delete's non-key columns), then `CHANGE_COLUMNS`."""
    fields = [pa.field(column.name, arrow_type(column)) for column in table.columns]
    return pa.schema([*fields, *CHANGE_COLUMNS])


def lake_filesystem(
    url: str, s3_endpoint: str | None, s3_region: str | None
) -> tuple[pafs.FileSystem, str]:
    """The file system and root path of `LAKE_URL`: `s3://bucket/prefix`, else a local
    directory (`file:///path` or a path). S3 credentials come from the usual AWS
    variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        filesystem = pafs.S3FileSystem(endpoint_override=s3_endpoint, region=s3_region)
        return filesystem, f"{parts.netloc}{parts.path}".rstrip("/")
    path = parts.path if parts.scheme == "file" else url
    return pafs.LocalFileSystem(), path.rstrip("/")


class LakeTable:
    """Writes each flush's changes of one table to one Parquet file in the lake."""

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        root: str,
        table: sa.Table,
        instance_id: str,
        backoff: Backoff,
    ) -> None:
        self._filesystem = filesystem
        self._directory = f"{root}/{table.name}"
        self._schema = change_schema(table)
        self._width = len(table.columns)
        self._key_positions = [list(table.columns).index(column) for column in row_key(table)]
        self._instance_id = instance_id
        self._backoff = backoff
        self._last_commit_ns = 0

    def check(self) -> None:
        """At start-up: the table's directory can be created (the bucket exists, and
        the credentials may write there)."""
        try:
            self._filesystem.create_dir(self._directory, recursive=True)
        except OSError as error:
            raise LakeUnavailable(
                f"LAKE_URL: the data lake directory {self._directory} cannot be made ({error})"
            ) from error

    def write(self, changes: Changes, origins: Mapping[Values, Origin]) -> None:
        """One file of `changes`, each row with where it came from."""
        if not changes:
            return  # PostgreSQL refused every row of the flush
        commit_ns = max(time.time_ns(), self._last_commit_ns + 1)  # files sort in flush order
        committed = datetime.fromtimestamp(commit_ns / 1e9, UTC)
        columns = self._columns(changes, origins, committed)
        path = f"{self._directory}/date={committed:%Y-%m-%d}/{commit_ns}-{self._instance_id}"
        try:
            self._upload(pa.table(columns, schema=self._schema), path)
        except OSError as error:
            delay = self._backoff.next_delay()
            logger.warning(
                "Data lake write of %d rows to %s failed (%s); replaying in %.1f s",
                len(changes),
                path,
                error,
                delay,
            )
            raise SinkBackpressureError(retry_after=delay) from error
        self._backoff.reset()
        self._last_commit_ns = commit_ns

    def _columns(
        self, changes: Changes, origins: Mapping[Values, Origin], committed: datetime
    ) -> list[list]:
        rows = []
        for key, row in changes.items():
            if row is None:
                deleted: list = [None] * self._width
                for position, value in zip(self._key_positions, key, strict=True):
                    deleted[position] = value
                rows.append((*deleted, DELETE, committed, *origins[key]))
            else:
                rows.append((*row, UPSERT, committed, *origins[key]))
        return [list(column) for column in zip(*rows, strict=True)]

    def _upload(self, table: pa.Table, path: str) -> None:
        """A reader sees the whole file or none: S3 shows an object only once its upload
        completes (and has no directories to make); locally the file is renamed into place."""
        if isinstance(self._filesystem, pafs.S3FileSystem):
            pq.write_table(table, f"{path}.parquet", filesystem=self._filesystem)
            return
        self._filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, f"{path}.parquet.partial", filesystem=self._filesystem)
        self._filesystem.move(f"{path}.parquet.partial", f"{path}.parquet")


def rebuild_query(table: sa.Table, changes: str) -> str:
    """DuckDB SQL of the current table from its changes in the lake: each key's row of the
    latest commit, unless that is a delete. `changes` is what to read them from, e.g.
    `read_parquet('s3://bucket/prefix/<table>/*/*.parquet', hive_partitioning = true)`.
    Keys group as PostgreSQL's NULLS NOT DISTINCT key does: NULLs together."""
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    key = ", ".join(f'"{column.name}"' for column in row_key(table))
    return (
        f"SELECT {columns} FROM {changes}"
        f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _commit_time DESC) = 1"
        f" AND _op = '{UPSERT}'"
    )
