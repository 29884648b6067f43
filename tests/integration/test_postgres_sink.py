"""The PostgreSQL sink against the real database: a table keyed by a NULLS NOT DISTINCT
unique constraint instead of a primary key (SPEC 3, purchase_windowed_counts)."""

from __future__ import annotations

import random
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from quixstreams.sinks import SinkBackpressureError

from processor.backoff import Backoff
from processor.changes import TableChange
from processor.settings import Settings
from processor.sinks.postgres import PostgresTableSink, create_engine, ensure_table

pytestmark = pytest.mark.integration

WINDOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TABLE = sa.Table(
    "windowed",
    sa.MetaData(),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text),
    sa.Column("window_start", sa.TIMESTAMP(timezone=True), nullable=False),
    sa.Column("purchase_count", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("user_id", "item_id", "window_start", postgresql_nulls_not_distinct=True),
)


def change(user: str, item: str | None, count: int | None) -> TableChange:
    row = {"user_id": user, "item_id": item, "window_start": WINDOW, "purchase_count": count}
    return TableChange((user, item, WINDOW), None if count is None else row)


def write(sink: PostgresTableSink, *changes: TableChange) -> None:
    sink.add(list(changes), key=None, timestamp=0, headers=None, topic="t", partition=0, offset=0)
    sink.flush()


def contents(engine: sa.Engine) -> set[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(TABLE.c.user_id, TABLE.c.item_id, TABLE.c.purchase_count)
        )
        return {tuple(row) for row in rows}


def test_null_key_columns_are_upserted_and_deleted_as_equal(settings: Settings) -> None:
    engine = create_engine(settings.sqlalchemy_url, settings.postgres_schema)
    sink = PostgresTableSink(engine, TABLE, settings.postgres_schema, Backoff(1.0))
    sink.setup()

    write(sink, change("u1", None, 2), change("u1", "i1", 3), change("u2", None, 5))
    write(sink, change("u1", None, 4), change("u2", None, None))
    assert contents(engine) == {("u1", None, 4), ("u1", "i1", 3)}

    write(sink, change("u1", None, None), change("u3", None, 2))
    assert contents(engine) == {("u1", "i1", 3), ("u3", None, 2)}

    # The table the sink created refuses a second row with the same NULL key by itself.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(
            TABLE.insert(),
            {"user_id": "u3", "item_id": None, "window_start": WINDOW, "purchase_count": 9},
        )
    engine.dispose()


def test_rows_postgres_refuses_are_kept_out_and_the_rest_written(settings: Settings) -> None:
    """An index row too large (psycopg raises it as an OperationalError, like an outage),
    a NUL in text and a count beyond BIGINT: the flush writes every other row, keeps these
    out and counts them, instead of retrying forever. The table's other outputs get
    what was written, the refused rows left out."""
    engine = create_engine(settings.sqlalchemy_url, settings.postgres_schema)
    handed_on: list[tuple[dict, dict]] = []
    sink = PostgresTableSink(
        engine,
        TABLE,
        settings.postgres_schema,
        Backoff(1.0),
        also=[lambda written, origins: handed_on.append((dict(written), dict(origins)))],
    )
    sink.setup()
    refused_before = _refused()
    good = [change(f"u{n}", "i", n) for n in range(1, 200)]
    # Random text does not compress below the index's 2,704 bytes per row.
    too_long = "".join(random.Random(1).choices(string.ascii_letters, k=6_000))
    bad = [change(too_long, "i", 1), change("u\x00", "i", 1), change("big", "i", 2**63)]
    write(sink, *good[:100], bad[0], *good[100:150], bad[1], bad[2], *good[150:])
    assert contents(engine) == {(f"u{n}", "i", n) for n in range(1, 200)}
    assert _refused() - refused_before == 3
    ((written, origins),) = handed_on
    assert {(user, item, row[3]) for (user, item, _), row in written.items()} == contents(engine)
    # Each row comes with the input record that changed it (`write` adds all at t[0]@0).
    assert set(written) <= set(origins) and set(origins.values()) == {("t", 0, 0)}
    engine.dispose()


def _refused() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "pstreams_rows_refused"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["table"] == TABLE.name
    )


def test_a_flush_that_outlives_its_timeout_rolls_back_and_is_retried(settings: Settings) -> None:
    """A flush blocked on a lock (a slow or stuck database) ends at its deadline without
    committing, so a flush abandoned by a rebalance cannot overwrite the new owner's rows
    later; once the lock is gone, the replayed checkpoint writes them."""
    engine = create_engine(settings.sqlalchemy_url, settings.postgres_schema)
    sink = PostgresTableSink(
        engine, TABLE, settings.postgres_schema, Backoff(1.0), flush_timeout_s=2.0
    )
    sink.setup()
    write(sink, change("u1", "i", 1))
    with engine.connect() as blocker:
        table = f"{settings.postgres_schema}.{TABLE.name}"
        blocker.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        began = time.monotonic()
        with pytest.raises(SinkBackpressureError):
            write(sink, change("u1", "i", 2), change("u2", "i", 3))
        assert time.monotonic() - began < 10
        blocker.rollback()
    assert contents(engine) == {("u1", "i", 1)}
    write(sink, change("u1", "i", 2), change("u2", "i", 3))
    assert contents(engine) == {("u1", "i", 2), ("u2", "i", 3)}
    engine.dispose()


def test_topologies_starting_together_create_their_schema_once(settings: Settings) -> None:
    """Topologies start at once on a new database and each creates the schema and its
    table: none of them may fail on another's creation."""
    tables = [
        sa.Table(f"table_{n}", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True))
        for n in range(8)
    ]
    engine = create_engine(settings.sqlalchemy_url, settings.postgres_schema)
    start = threading.Barrier(len(tables))

    def create(table: sa.Table) -> None:
        start.wait()
        ensure_table(engine, table, settings.postgres_schema)

    try:
        with ThreadPoolExecutor(len(tables)) as pool:
            list(pool.map(create, tables))  # re-raises what a creation raised
        with engine.connect() as connection:
            created = sa.inspect(connection).get_table_names(schema=settings.postgres_schema)
        assert sorted(created) == sorted(t.name for t in tables)
    finally:
        engine.dispose()
