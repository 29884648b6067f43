"""The data lake (`LAKE_URL`) on a real S3-compatible server: moto's S3 server, spoken to
over HTTP by pyarrow's S3 client, as AWS S3 is.

Every topology is killed once at the worst moment for the lake: the server has stored
one of its Parquet files, and the topology dies before it hears so, so the checkpoint
that wrote the file never commits its offsets. After the restarts, each table rebuilt
from its lake files with the documented DuckDB query equals the PostgreSQL table,
deletes included, and the repeated changes of the uncommitted checkpoints collapse by
their source offsets as docs/deployment.md says.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import sqlalchemy as sa
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from processor.lake import CHANGE_COLUMNS, rebuild_query
from processor.settings import Settings
from processor.sinks.postgres import row_key
from processor.topology import all_topologies
from tests.integration.support import supervised_child

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"
BUCKET = "lake"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
REGION = "us-east-1"


class KillingS3Server:
    """moto's S3 server, which SIGKILLs a topology once the server has stored a file of
    its table and before the topology hears so (the fault a test arms)."""

    def __init__(self) -> None:
        self._server = make_server(
            "127.0.0.1",
            0,
            self._handle,
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._backend = DomainDispatcherApplication(create_backend_app)
        self._armed: dict[str, Callable[[], int | None]] = {}
        self.killed: dict[str, str] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def arm(self, table: str, pid: Callable[[], int | None]) -> None:
        """Kill the process `pid()` names once a file of `table` is stored."""
        self._armed[table] = pid

    def stop(self) -> None:
        self._server.shutdown()

    def _handle(self, environ: dict[str, Any], start_response: Callable) -> Any:
        """Answer as S3 does; then, for an object now stored whole (a PutObject or a
        multipart upload's completion) of an armed table, kill its topology first."""
        statuses: list[str] = []

        def recording_start(status: str, headers: list, *rest: Any) -> Callable:
            statuses.append(status)
            return start_response(status, headers, *rest)

        body = list(self._backend(environ, recording_start))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        stored = (method == "PUT" and "partNumber" not in query) or (
            method == "POST" and "uploadId" in query
        )
        if stored and path.endswith(".parquet") and statuses[0].startswith("200"):
            table = path.split("/")[-3]
            with self._lock:
                pid = self._armed[table]() if table in self._armed else None
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    del self._armed[table]
                    self.killed[table] = path
        return body


@pytest.fixture
def s3_server() -> Iterator[KillingS3Server]:
    server = KillingS3Server()
    boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def lake_changes(filesystem: pafs.FileSystem, root: str, table: sa.Table) -> Any:
    """Every change of `table` in the lake, as an Arrow table."""
    dataset = ds.dataset(f"{root}/{table.name}", filesystem=filesystem, partitioning="hive")
    return dataset.to_table()


def rebuilt_with_duckdb(changes: Any, table: sa.Table) -> set[tuple]:
    connection = duckdb.connect()
    connection.register("changes", changes)
    return set(connection.sql(rebuild_query(table, "changes")).fetchall())


def postgres_rows(settings: Settings, table: sa.Table) -> set[tuple]:
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            written = table.to_metadata(sa.MetaData(), schema=settings.postgres_schema)
            return {tuple(row) for row in connection.execute(sa.select(written))}
    finally:
        engine.dispose()


def repeats(changes: Any, table: sa.Table) -> dict[tuple, set[tuple]]:
    """The values the lake holds per change: (key, source topic, partition, offset)."""
    key = [column.name for column in row_key(table)]
    origin = [field.name for field in CHANGE_COLUMNS if field.name.startswith("_source")]
    values = [column.name for column in table.columns] + ["_op"]
    seen: dict[tuple, set[tuple]] = defaultdict(set)
    for row in changes.to_pylist():
        seen[tuple(row[name] for name in key + origin)].add(tuple(row[name] for name in values))
    return seen


def test_each_table_rebuilt_from_the_lake_equals_it_after_a_kill_mid_upload(
    settings: Settings, stack_env: dict[str, str], pstreams, s3_server: KillingS3Server
) -> None:
    root = f"{BUCKET}/{settings.pg_topic_prefix}"
    env = stack_env | CREDENTIALS
    env |= {"LAKE_URL": f"s3://{root}", "LAKE_S3_ENDPOINT_URL": s3_server.url}
    env |= {"LAKE_S3_REGION": REGION}
    supervisor = pstreams("run", "--all", env=env)
    topologies = all_topologies()
    for name, topology in topologies.items():
        s3_server.arm(
            str(topology.table.name),
            lambda name=name: supervised_child(supervisor.pid, name, timeout=0),
        )
    assert pstreams("seed", "load", str(DEMO)).wait() == 0
    assert pstreams("wait", "--timeout", "300").wait() == 0
    assert supervisor.poll() is None
    assert sorted(s3_server.killed) == sorted(str(t.table.name) for t in topologies.values())

    filesystem = pafs.S3FileSystem(
        endpoint_override=s3_server.url,
        region=REGION,
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    deletes = 0
    for name, topology in topologies.items():
        table = topology.table
        changes = lake_changes(filesystem, root, table)
        deletes += changes.column("_op").to_pylist().count("delete")
        in_postgres = postgres_rows(settings, table)
        assert rebuilt_with_duckdb(changes, table) == in_postgres, name
        # A change written twice (once by the killed checkpoint, once by its replay)
        # has one value: a reader keeps one per key and source offsets.
        per_change = repeats(changes, table)
        conflicting = {change: v for change, v in per_change.items() if len(v) > 1}
        assert not conflicting, f"{name}: {list(conflicting.items())[:3]}"
        if name == "interaction_data":
            # Its rows are each one input record: every row of the killed checkpoint's
            # file was written again by the replay, and once collapsed by source offset
            # the change history holds each table row exactly once.
            assert changes.num_rows > len(per_change), "the killed file left no repeat"
            assert len(per_change) == len(in_postgres)
    assert deletes, "no row left a table: deletes were not exercised"
