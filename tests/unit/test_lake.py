"""The data lake's files on a local directory: what a flush writes, and the rebuild query.

The lake on a real S3-compatible server, rebuilt and compared with PostgreSQL after a
run and after a kill, is tests/integration/test_lake.py."""

from __future__ import annotations

import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quixstreams.sinks import SinkBackpressureError

from processor.backoff import Backoff
from processor.errors import LakeUnavailable
from processor.lake import LakeTable, change_schema, lake_filesystem, rebuild_query
from processor.settings import Settings
from processor.topology import all_topologies

WINDOWED = all_topologies()["purchase_windowed_counts"].table
PAIRS = all_topologies()["co_purchase_counts"].table


def lake(root: Path, table=PAIRS, filesystem: pafs.FileSystem | None = None) -> LakeTable:
    return LakeTable(filesystem or pafs.LocalFileSystem(), str(root), table, "pod-0", Backoff(1))


def changes_of(root: Path, table) -> ds.Dataset:
    return ds.dataset(str(root / table.name), format="parquet", partitioning="hive")


def rebuilt(root: Path, table) -> set[tuple]:
    changes = changes_of(root, table).to_table()  # noqa: F841 (DuckDB reads it by name)
    return set(duckdb.sql(rebuild_query(table, "changes")).fetchall())


def test_a_flush_is_one_file_of_its_changes_with_operation_and_origin(tmp_path: Path) -> None:
    lake(tmp_path).write(
        {("1", "2"): ("1", "2", 5), ("3", "4"): None},
        {("1", "2"): ("pairs", 0, 17), ("3", "4"): ("pairs", 1, 9)},
    )
    files = list((tmp_path / "co_purchase_counts").glob("date=*/*.parquet"))
    assert len(files) == 1 and files[0].name.endswith("-pod-0.parquet")
    rows = sorted(changes_of(tmp_path, PAIRS).to_table().to_pylist(), key=lambda r: r["_op"])
    day = f"{rows[0]['_commit_time']:%Y-%m-%d}"
    assert files[0].parent.name == f"date={day}"
    assert [
        {k: v for k, v in row.items() if k not in ("_commit_time", "date")} for row in rows
    ] == [
        {"item_id_A": "3", "item_id_B": "4", "co_purchase_count": None, "_op": "delete"}
        | {"_source_topic": "pairs", "_source_partition": 1, "_source_offset": 9},
        {"item_id_A": "1", "item_id_B": "2", "co_purchase_count": 5, "_op": "upsert"}
        | {"_source_topic": "pairs", "_source_partition": 0, "_source_offset": 17},
    ]
    assert rows[0]["_commit_time"] == rows[1]["_commit_time"]


def test_timestamps_and_null_key_parts_keep_their_values(tmp_path: Path) -> None:
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    row = ("7", None, start, end, 3)
    key = ("7", None, start)
    lake(tmp_path, WINDOWED).write({key: row}, {key: ("w", 0, 1)})
    assert rebuilt(tmp_path, WINDOWED) == {row}
    names = [field.name for field in change_schema(WINDOWED)][: len(WINDOWED.columns)]
    assert names == [column.name for column in WINDOWED.columns]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8))
def test_the_rebuild_is_the_last_written_state_of_every_key(seed: int, flushes: int) -> None:
    """Flushes of upserts and deletes, as the sink hands them over; the rebuild equals a
    dictionary that applied the same flushes in order (what PostgreSQL does)."""
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="pstreams-lake-"))
    writer, expected = lake(root), {}
    try:
        for flush in range(flushes):
            changes = {}
            for _ in range(rng.randint(1, 6)):
                key = (str(rng.randint(1, 4)), str(rng.randint(1, 4)))
                changes[key] = None if rng.random() < 0.3 else (*key, rng.randint(1, 99))
            writer.write(changes, dict.fromkeys(changes, ("pairs", 0, flush)))
            for key, row in changes.items():
                if row is None:
                    expected.pop(key, None)
                else:
                    expected[key] = row
        assert rebuilt(root, PAIRS) == set(expected.values())
    finally:
        shutil.rmtree(root)


def test_a_lake_that_cannot_be_written_pauses_the_checkpoint(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    writer = lake(blocked)
    blocked.write_text("a file where the lake's directory should be")
    with pytest.raises(SinkBackpressureError):
        writer.write({("1", "2"): ("1", "2", 5)}, {("1", "2"): ("pairs", 0, 1)})
    with pytest.raises(LakeUnavailable, match="LAKE_URL"):
        writer.check()


def test_a_flush_whose_rows_were_all_refused_writes_no_file(tmp_path: Path) -> None:
    lake(tmp_path).write({}, {})
    assert not (tmp_path / "co_purchase_counts").exists()


def test_lake_urls_name_s3_or_a_local_directory() -> None:
    filesystem, root = lake_filesystem("s3://bucket/some/prefix/", "http://127.0.0.1:1", "eu-1")
    assert isinstance(filesystem, pafs.S3FileSystem) and root == "bucket/some/prefix"
    assert lake_filesystem("file:///var/lake", None, None)[1] == "/var/lake"
    assert lake_filesystem("/var/lake/", None, None)[1] == "/var/lake"


def test_lake_settings_name_topologies_and_only_with_a_url(monkeypatch) -> None:
    assert not Settings(lake_url="").writes_lake("co_purchase_counts")
    assert Settings(lake_url="/lake").writes_lake("interaction_data")
    chosen = Settings(lake_url="/lake", lake_tables="co_purchase_counts")
    assert chosen.writes_lake("co_purchase_counts") and not chosen.writes_lake("interaction_data")
    with pytest.raises(ValueError, match="co_purchase"):
        Settings(lake_tables="co_purchases")
    with pytest.raises(ValueError, match="s3://"):
        Settings(lake_url="gs://bucket")
