"""PostgreSQL goes away mid-stream: the topology pauses, retries, and skips nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from processor.local.ports import free_ports
from processor.local.postgres import Postgres
from tests.conftest import private_directory
from tests.integration.support import dynamodb_source, generated_items, produce, wait

pytestmark = pytest.mark.integration


def count_rows(url: str, schema: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.text(f"SELECT count(*) FROM {schema}.interaction_data"))
    finally:
        engine.dispose()


def test_rows_written_while_postgres_is_down_arrive_after_it_returns(
    settings, stack_env, pstreams, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    data_dir = private_directory("pstreams-test-sink-")
    sink_database = Postgres(port, data_dir / "data")
    log = tmp_path / "sink-postgres.log"
    pid = sink_database.start(log)
    try:
        env = stack_env | {"POSTGRES_URL": sink_database.address}
        emulator = dynamodb_source(settings)
        items = generated_items(400, seed=11)

        topology = pstreams("run", "interaction_data", env=env)
        produce(settings, [tuple(emulator.insert(item)) for item in items[:100]])
        wait(env, "interaction_data")
        assert count_rows(sink_database.address, settings.postgres_schema) == 100

        assert sink_database.stop(pid)
        produce(settings, [tuple(emulator.insert(item)) for item in items[100:]])
        time.sleep(5)  # several checkpoints fail against the stopped database meanwhile
        assert topology.poll() is None, "the topology must wait for PostgreSQL, not exit"
        pid = sink_database.start(log)
        wait(env, "interaction_data")
        assert count_rows(sink_database.address, settings.postgres_schema) == 400
    finally:
        sink_database.stop(pid)  # a server already stopped stays stopped
        shutil.rmtree(data_dir, ignore_errors=True)
