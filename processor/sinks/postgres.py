"""A Quix Streams sink that keeps one PostgreSQL table equal to a derived table.

Changes are coalesced per row key as they arrive (the last state wins) and written
at each checkpoint in one transaction: deletes, then upserts of absolute values. A
replayed checkpoint writes the same absolute values again, so the table converges.
A flush costs a fixed number of statements however many rows it holds: the rows and the
deleted keys are copied (COPY) into two temporary staging tables, then one `DELETE ... USING`
and one `INSERT ... SELECT ... ON CONFLICT DO UPDATE` apply them (a pair-count table
flushes hundreds of thousands of rows at once; docs/performance.md).
While PostgreSQL is unreachable the sink raises `SinkBackpressureError`: Quix pauses
the partitions, rewinds them to the checkpoint's first offset and tries again later,
so nothing is skipped.

An error is told apart from an outage by its SQLSTATE class, not by the driver's
exception class (psycopg raises `OperationalError` for an index row too large). When
PostgreSQL refuses rows (`REFUSED_CLASSES`), the flush is split in halves until the rows
it refuses stand alone; the others are written, and each refused row is kept out of the
table, logged with its key and counted in `pstreams_rows_refused`, so one row that can
never be written does not stop the table. A statement cancelled by a timeout is split
too, but never refused: a row that times out alone is an outage and is retried.

What a flush wrote, refused rows left out, is then handed to the table's other outputs
(`also`: its Kafka topic, `processor.table_topic`, and its data lake, `processor.lake`)
in the same checkpoint, with the input record each row came from.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from quixstreams.sinks import BaseSink, SinkBackpressureError
from sqlalchemy.dialects.postgresql import insert

from processor.backoff import Backoff
from processor.changes import TableChange
from processor.metrics import ROWS_REFUSED, measured_flush

logger = logging.getLogger(__name__)


class FlushTimeout(Exception):
    """A flush ran out of its time (`FLUSH_TIMEOUT_S`): rolled back, to be retried."""


# Each flush must end (commit or roll back) within this, below Quix's 60 s budget for a
# flush during a rebalance: a flush Quix gave up on must not commit afterwards, over what
# the partition's new owner wrote. Every statement gets the time left as its
# `statement_timeout`, and the commit is skipped once it has passed.
FLUSH_TIMEOUT_S = 45.0
# libpq settings that make a dead or blackholed server an error within seconds instead
# of a wait of many minutes on the operating system's TCP timeouts.
CONNECTION_TIMEOUTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}

# Errors that mean "PostgreSQL is not there right now", as opposed to a bad statement.
# COPY runs on the driver's connection, whose errors SQLAlchemy does not wrap.
TRANSIENT_ERRORS = (
    FlushTimeout,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
# SQLSTATE classes of the rows' own fault: data exception, integrity constraint
# violation, program limit exceeded (an index row too large). `QUERY_CANCELED` is a
# statement that took too long, perhaps for its size.
REFUSED_CLASSES = ("22", "23", "54")
QUERY_CANCELED = "57014"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error, also when SQLAlchemy wraps it."""
    return getattr(getattr(error, "orig", error), "sqlstate", None)


def refused(error: BaseException) -> bool:
    """Whether PostgreSQL refused the rows themselves, rather than being unavailable."""
    state = sqlstate(error)
    if state is None:  # raised by psycopg itself, before the server saw it (a NUL in text)
        return isinstance(getattr(error, "orig", error), psycopg.DataError)
    return state[:2] in REFUSED_CLASSES


def create_engine(url: str, schema: str) -> sa.Engine:
    """An engine whose unqualified tables live in `schema` (`POSTGRES_SCHEMA`)."""
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args=CONNECTION_TIMEOUTS,
        execution_options={"schema_translate_map": {None: schema}},
    )


def ensure_table(engine: sa.Engine, table: sa.Table, schema: str) -> None:
    """Create the schema and the table when missing; an existing table is left as it is.

    Topologies started together create their schema at the same moment, and PostgreSQL's
    IF NOT EXISTS is no guard against that race (a unique violation on pg_namespace): the
    creations of one schema take turns under a transaction-scoped advisory lock.
    """
    with engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(schema))))
        connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        table.create(connection, checkfirst=True)


def row_key(table: sa.Table) -> list[sa.Column]:
    """The columns that identify a row: the primary key, else the table's one unique constraint.

    A unique constraint stands in for a primary key when a key column may be NULL (SPEC 3:
    purchase_windowed_counts is UNIQUE NULLS NOT DISTINCT, its item_id may be NULL).
    """
    if table.primary_key.columns:
        return list(table.primary_key.columns)
    uniques = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    if len(uniques) != 1:
        raise ValueError(
            f"table {table.name} needs a primary key or exactly one unique constraint"
            f" to be kept by upserts, not {len(uniques)}"
        )
    (unique,) = uniques
    if (
        any(column.nullable for column in unique.columns)
        and not unique.dialect_options["postgresql"]["nulls_not_distinct"]
    ):
        raise ValueError(
            f"table {table.name}: a unique key with nullable columns must be NULLS NOT DISTINCT"
            " (postgresql_nulls_not_distinct=True), or rows with NULL keys would repeat"
        )
    return list(unique.columns)


def _same_key(column: sa.Column, value: Any) -> sa.ColumnElement[bool]:
    """Key equality with NULL equal to NULL where the column allows NULL (NULLS NOT DISTINCT)."""
    return column.is_not_distinct_from(value) if column.nullable else column == value


def staging_table(table: sa.Table, columns: Iterable[sa.Column], suffix: str) -> sa.Table:
    """A session's temporary table with `columns` of `table`, all nullable, emptied at commit.

    Created once per connection (IF NOT EXISTS); `pg_temp` keeps it out of the schema
    translation that puts the target table into `POSTGRES_SCHEMA`.
    """
    return sa.Table(
        f"{table.name}_{suffix}",
        sa.MetaData(),
        *(sa.Column(column.name, column.type) for column in columns),
        schema="pg_temp",
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DELETE ROWS",
    )


def _copy(connection: sa.Connection, table: sa.Table, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY `rows` (tuples in the order of `table`'s columns) into `table`."""
    names = ", ".join(f'"{column.name}"' for column in table.columns)
    statement = f'COPY pg_temp."{table.name}" ({names}) FROM STDIN'
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _values_of(table: sa.Table) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The column values of a row, in the table's order, picked at C speed."""
    names = [column.name for column in table.columns]
    pick = operator.itemgetter(*names)
    return pick if len(names) > 1 else lambda row: (pick(row),)


Values = tuple[Any, ...]
Changes = Mapping[Values, Values | None]
"""Rows by key, as tuples of column values in the table's order; None: deleted."""
Origin = tuple[str, int, int]
"""The topic, partition and offset of the input record that last changed a row."""
Output = Callable[[Changes, Mapping[Values, Origin]], None]
"""Another output of the table, given what a flush wrote and where each row came from."""


class PostgresTableSink(BaseSink):
    """Upserts and deletes the rows of one table, one transaction per checkpoint."""

    def __init__(
        self,
        engine: sa.Engine,
        table: sa.Table,
        schema: str,
        backoff: Backoff,
        flush_timeout_s: float = FLUSH_TIMEOUT_S,
        also: Sequence[Output] = (),
    ) -> None:
        super().__init__()
        self._also = also
        # Only the other outputs take the origins: a table with none keeps no origins.
        self._origins: dict[Values, Origin] | None = {} if also else None
        self._refused: set[Values] = set()
        self._engine = engine
        self._flush_timeout_s = flush_timeout_s
        self._deadline = 0.0
        self._table = table
        self._schema = schema
        self._backoff = backoff
        # Rows wait as tuples of column values, in the table's order: a checkpoint while
        # a backlog is worked off can hold a million of them.
        self._pending: dict[Values, Values | None] = {}
        self._values = _values_of(table)
        self._table_ready = False
        key = row_key(table)
        self._staged_rows = staging_table(table, table.columns, "rows")
        self._staged_keys = staging_table(table, key, "deleted")
        self._create_staging = [
            sa.schema.CreateTable(staged, if_not_exists=True)
            for staged in (self._staged_rows, self._staged_keys)
        ]
        self._upsert = self._upsert_statement(table, self._staged_rows, key)
        self._delete = table.delete().where(
            *(_same_key(column, self._staged_keys.c[column.name]) for column in key)
        )

    @staticmethod
    def _upsert_statement(table: sa.Table, staged: sa.Table, key: list[sa.Column]) -> sa.Insert:
        statement = insert(table).from_select(
            [column.name for column in table.columns], sa.select(staged)
        )
        index_elements = [column.name for column in key]
        updates = {
            column.name: statement.excluded[column.name]
            for column in table.columns
            if column.name not in index_elements
        }
        if not updates:
            return statement.on_conflict_do_nothing(index_elements=index_elements)
        return statement.on_conflict_do_update(index_elements=index_elements, set_=updates)

    def setup(self) -> None:
        """Create the table now if PostgreSQL answers, else at the first flush.

        No retry loop here: Quix calls this before its processing loop, where a wait
        would ignore SIGTERM. A flush that cannot create the table backs off like any
        other write, in the loop that stops on a signal.
        """
        try:
            self._ensure_table()
        except TRANSIENT_ERRORS as error:
            logger.warning(
                "PostgreSQL unavailable (%s); the table is created at the first write", error
            )

    def _ensure_table(self) -> None:
        if not self._table_ready:
            ensure_table(self._engine, self._table, self._schema)
            self._table_ready = True

    def add(
        self,
        value: TableChange | list[TableChange],
        key: Any,
        timestamp: int,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        values, pending, origins = self._values, self._pending, self._origins
        changes = value if isinstance(value, list) else (value,)
        for key, row in changes:
            pending[key] = None if row is None else values(row)
        if origins is not None:
            origin = (topic, partition, offset)
            for key, _ in changes:
                origins[key] = origin

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        origins = self._origins
        if origins is not None:
            self._origins = {}
        self._deadline = time.monotonic() + self._flush_timeout_s
        self._refused = set()
        try:
            with measured_flush(self._table.name, len(pending)):
                self._write_writable(pending)
        except TRANSIENT_ERRORS as error:
            delay = self._backoff.next_delay()
            logger.warning(
                "PostgreSQL write of %d rows to %s failed (%s); replaying in %.1f s",
                len(pending),
                self._table.name,
                error,
                delay,
            )
            raise SinkBackpressureError(retry_after=delay) from error
        self._backoff.reset()
        if self._also:
            refused = self._refused
            written = {k: v for k, v in pending.items() if k not in refused} if refused else pending
            for output in self._also:
                output(written, origins)

    def on_paused(self) -> None:
        """The checkpoint is being replayed from its first offset: forget what it added."""
        self._pending.clear()
        if self._origins is not None:
            self._origins.clear()

    def _write_writable(self, pending: dict[Values, Values | None]) -> None:
        """Writes `pending`, or, when PostgreSQL refuses some rows, all the others
        (halving; the common case copies nothing: a backlog's flush holds a million)."""
        try:
            self._write(pending)
        except (sa.exc.DBAPIError, psycopg.Error) as error:  # COPY errors are psycopg's
            if refused(error):
                if len(pending) == 1:
                    self._refuse(next(iter(pending)), error)
                    return
            elif sqlstate(error) != QUERY_CANCELED or len(pending) == 1 or self._time_left() <= 0:
                raise  # an outage, or our own deadline: retried whole
            changes = list(pending.items())
            middle = len(changes) // 2
            self._write_writable(dict(changes[:middle]))
            self._write_writable(dict(changes[middle:]))

    def _refuse(self, key: Values, error: BaseException) -> None:
        self._refused.add(key)
        state = sqlstate(error) or "unknown"
        ROWS_REFUSED.labels(self._table.name, state).inc()
        reason = str(getattr(error, "orig", error)).splitlines()[0]
        logger.error(
            "PostgreSQL refused the row of %s with key %.200r (SQLSTATE %s: %s); it is kept"
            " out of the table",
            self._table.name,
            key,
            state,
            reason,
        )

    def _write(self, pending: dict[Values, Values | None]) -> None:
        self._ensure_table()
        deleted = [key for key, row in pending.items() if row is None]
        upserted = [row for row in pending.values() if row is not None]
        with self._engine.begin() as connection:
            self._limit(connection)
            for statement in self._create_staging:
                connection.execute(statement)
            if deleted:
                _copy(connection, self._staged_keys, deleted)
                self._limit(connection)
                connection.execute(self._delete)
            if upserted:
                self._limit(connection)
                _copy(connection, self._staged_rows, upserted)
                self._limit(connection)
                connection.execute(self._upsert)
            self._limit(connection)  # the fence: past the deadline, no commit

    def _time_left(self) -> float:
        return self._deadline - time.monotonic()

    def _limit(self, connection: sa.Connection) -> None:
        """The next statements of this transaction may take the flush's time left."""
        left_ms = int(self._time_left() * 1000)
        if left_ms <= 0:
            raise FlushTimeout(f"the flush took more than {self._flush_timeout_s:g} s")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {left_ms}")
