"""PostgreSQL goes away mid-stream: the topology pauses, retries, and skips nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.integration.faults import SinkDatabase
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
    settings, stack_env, pstreams, sink_database: SinkDatabase
) -> None:
    env = stack_env | {"POSTGRES_URL": sink_database.address}
    emulator = dynamodb_source(settings)
    items = generated_items(400, seed=11)

    topology = pstreams("run", "interaction_data", env=env)
    produce(settings, [tuple(emulator.insert(item)) for item in items[:100]])
    wait(env, "interaction_data")
    assert count_rows(sink_database.address, settings.postgres_schema) == 100

    # Several checkpoints fail against the stopped database meanwhile.
    sink_database.outage(5.0)
    produce(settings, [tuple(emulator.insert(item)) for item in items[100:]])
    sink_database.wait_until_back()
    assert topology.poll() is None, "the topology must wait for PostgreSQL, not exit"
    wait(env, "interaction_data")
    assert count_rows(sink_database.address, settings.postgres_schema) == 400
