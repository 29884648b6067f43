"""A Quix Streams sink that keeps one PostgreSQL table equal to a derived table.

Changes are coalesced per row key as they arrive (the last state wins) and written
at each checkpoint in one transaction: deletes, then upserts of absolute values. A
replayed checkpoint writes the same absolute values again, so the table converges.
While PostgreSQL is unreachable the sink raises `SinkBackpressureError`: Quix pauses
the partitions, rewinds them to the checkpoint's first offset and tries again later,
so nothing is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import sqlalchemy as sa
from quixstreams.sinks import BaseSink, SinkBackpressureError
from sqlalchemy.dialects.postgresql import insert

from processor.backoff import Backoff
from processor.changes import TableChange
from processor.metrics import measured_flush

logger = logging.getLogger(__name__)

# Errors that mean "PostgreSQL is not there right now", as opposed to a bad statement.
TRANSIENT_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)
DELETE_CHUNK = 1000


def create_engine(url: str, schema: str) -> sa.Engine:
    """An engine whose unqualified tables live in `schema` (`POSTGRES_SCHEMA`)."""
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        execution_options={"schema_translate_map": {None: schema}},
    )


def ensure_table(engine: sa.Engine, table: sa.Table, schema: str) -> None:
    """Create the schema and the table when missing; an existing table is left as it is."""
    with engine.begin() as connection:
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


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    iterator = iter(items)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


class PostgresTableSink(BaseSink):
    """Upserts and deletes the rows of one table, one transaction per checkpoint."""

    def __init__(self, engine: sa.Engine, table: sa.Table, schema: str, backoff: Backoff) -> None:
        super().__init__()
        self._engine = engine
        self._table = table
        self._schema = schema
        self._backoff = backoff
        self._pending: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self._key = row_key(table)
        self._key_names = [column.name for column in self._key]
        self._upsert = self._upsert_statement(table, self._key_names)

    @staticmethod
    def _upsert_statement(table: sa.Table, key_names: list[str]) -> sa.Insert:
        statement = insert(table)
        updates = {
            column.name: statement.excluded[column.name]
            for column in table.columns
            if column.name not in key_names
        }
        if not updates:
            return statement.on_conflict_do_nothing(index_elements=key_names)
        return statement.on_conflict_do_update(index_elements=key_names, set_=updates)

    def setup(self) -> None:
        """Create the table, waiting with backoff while PostgreSQL is unreachable."""
        while True:
            try:
                ensure_table(self._engine, self._table, self._schema)
            except TRANSIENT_ERRORS as error:
                delay = self._backoff.next_delay()
                logger.warning("PostgreSQL unavailable (%s); retrying in %.1f s", error, delay)
                time.sleep(delay)
            else:
                self._backoff.reset()
                return

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
        for change in value if isinstance(value, list) else (value,):
            self._pending[change.key] = change.row

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            with measured_flush(self._table.name, len(pending)):
                self._write(pending)
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

    def on_paused(self) -> None:
        """The checkpoint is being replayed from its first offset: forget what it added."""
        self._pending.clear()

    def _any_of(self, keys: Sequence[tuple[Any, ...]]) -> sa.ColumnElement[bool]:
        """Rows with one of `keys`; a row IN list cannot match NULLs, so nullable keys OR."""
        if not any(column.nullable for column in self._key):
            return sa.tuple_(*self._key).in_(keys)
        return sa.or_(*(sa.and_(*map(_same_key, self._key, key)) for key in keys))

    def _write(self, pending: dict[tuple[Any, ...], dict[str, Any] | None]) -> None:
        deletes = [key for key, row in pending.items() if row is None]
        upserts = [row for row in pending.values() if row is not None]
        with self._engine.begin() as connection:
            for chunk in _chunks(deletes, DELETE_CHUNK):
                connection.execute(self._table.delete().where(self._any_of(chunk)))
            if upserts:
                connection.execute(self._upsert, upserts)
