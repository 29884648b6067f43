"""`pstreams seed load --only rows|interactions`: the two halves deploy/compose.yaml runs.

With a real Debezium capturing the rows, the seed job writes rows only; the DynamoDB
connector's stand-in writes interaction records only. Checked on the real local stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient

from processor.seed import database
from processor.settings import Settings
from tests.integration.support import read_topic
from tests.reference.model import SourceState

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"


def load(stack_env: dict[str, str], only: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "processor", "seed", "load", str(DEMO), "--only", only],
        env=os.environ | stack_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def topics(settings: Settings) -> set[str]:
    return set(AdminClient(settings.kafka_config).list_topics(timeout=10).topics)


def source_schema_exists(settings: Settings) -> bool:
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        return database.SCHEMA in sa.inspect(engine).get_schema_names()
    finally:
        engine.dispose()


def test_interactions_only_then_rows_only(settings: Settings, stack_env: dict[str, str]) -> None:
    expected = SourceState.from_directory(DEMO)
    postgres_topics = {settings.pg_topic(table) for table in database.TABLES}

    load(stack_env, "interactions")
    records = read_topic(settings, settings.dynamodb_topic)
    assert len(records) == len(expected.interactions) + len(expected.bad_interactions)
    assert not source_schema_exists(settings), "no rows written"
    assert not postgres_topics & topics(settings), "no PostgreSQL CDC records"

    load(stack_env, "rows")
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            for name in ("users", "categories", "items", "reviews"):
                count = connection.scalar(
                    sa.select(sa.func.count()).select_from(database.TABLES[name])
                )
                assert count == len(getattr(expected, name)), name
    finally:
        engine.dispose()
    assert not postgres_topics & topics(settings), "the rows are for a real connector"
    assert len(read_topic(settings, settings.dynamodb_topic)) == len(records), "no interactions"
