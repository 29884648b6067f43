"""Read the six output tables from PostgreSQL and describe how they differ from the model.

`read_tables` returns rows in the shapes `tests/reference/model.py` produces (SPEC 3
column order; timestamps aware UTC); `diff` gives a bounded, readable list of
differences, empty when the tables agree, for an end-to-end test to assert on and print.
Values are compared as Python values with their types: an id stored as integer where
SPEC 3 says text shows up as `'12'` != `12`, never silently equal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class OutputTable:
    """An output table of SPEC 3: its columns in order and its primary key.

    `key` is empty for `interaction_data`, whose real key is the source record's
    identity (topic, partition, offset), which the model cannot know: it is compared as
    a multiset of rows instead.
    """

    columns: tuple[str, ...]
    key: tuple[str, ...]

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(name)] for name in self.key)


TABLES: dict[str, OutputTable] = {
    "interaction_data": OutputTable(
        (
            "current_page_url",
            "action_type",
            "item_id",
            "user_id",
            "browser_type",
            "session_id",
            "device_type",
            "referrer_url",
            "event_time_ltz",
        ),
        (),
    ),
    "co_purchase_counts": OutputTable(
        ("item_id_A", "item_id_B", "co_purchase_count"), ("item_id_A", "item_id_B")
    ),
    "user_purchase_totals": OutputTable(
        ("user_id", "username", "location", "gender", "total_purchases"), ("user_id",)
    ),
    "highly_rated_item_details": OutputTable(
        ("user_id", "rating_score", "item_id", "image_url", "brand_id", "category_name"),
        ("user_id", "item_id"),
    ),
    "item_shared_by_user_pair": OutputTable(
        ("user_A", "user_B", "shared_item_count"), ("user_A", "user_B")
    ),
    "purchase_windowed_counts": OutputTable(
        ("user_id", "item_id", "window_start", "window_end", "purchase_count"),
        ("user_id", "item_id", "window_start"),
    ),
}

Rows = Iterable[tuple[Any, ...]]


def _engine(engine_or_url: sa.Engine | str) -> sa.Engine:
    """An engine for a URL as `POSTGRES_URL` spells it (psycopg 3 is the installed driver)."""
    if isinstance(engine_or_url, sa.Engine):
        return engine_or_url
    url = sa.make_url(engine_or_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url)


def _normalize(value: Any) -> Any:
    """Aware datetimes in UTC, for readable messages; a naive one stays naive, so that a
    `timestamp` column where SPEC 3 says `timestamptz` compares unequal."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def read_tables(engine_or_url: sa.Engine | str, schema: str = "public") -> dict[str, list[tuple]]:
    """The SPEC columns of every output table that exists in `schema`, in SPEC 3 order.

    A missing table is left out of the result, so `diff` reports it. Extra columns
    (interaction_data's source identity) are not read.
    """
    engine = _engine(engine_or_url)
    try:
        quote = engine.dialect.identifier_preparer.quote_identifier
        tables: dict[str, list[tuple]] = {}
        with engine.connect() as connection:
            present = set(sa.inspect(connection).get_table_names(schema=schema))
            for name, table in TABLES.items():
                if name not in present:
                    continue
                columns = ", ".join(quote(column) for column in table.columns)
                query = sa.text(f"SELECT {columns} FROM {quote(schema)}.{quote(name)}")
                tables[name] = [
                    tuple(_normalize(value) for value in row) for row in connection.execute(query)
                ]
        return tables
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def _listing(label: str, entries: Sequence[str], limit: int) -> list[str]:
    lines = [f"  {label} ({len(entries)}):"] if entries else []
    lines += [f"    {entry}" for entry in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"    ... and {len(entries) - limit} more")
    return lines


def _describe(table: OutputTable, row: Sequence[Any]) -> str:
    return "(" + ", ".join(f"{c}={v!r}" for c, v in zip(table.columns, row, strict=True)) + ")"


def _multiset_diff(table: OutputTable, expected: Rows, actual: Rows, limit: int) -> list[str]:
    want, got = Counter(expected), Counter(actual)
    missing = sorted((f"{_describe(table, row)} x{n}" for row, n in (want - got).items()), key=str)
    extra = sorted((f"{_describe(table, row)} x{n}" for row, n in (got - want).items()), key=str)
    return _listing("missing rows", missing, limit) + _listing("extra rows", extra, limit)


def _same(expected: Any, actual: Any) -> bool:
    """Equal and of one type: `True` is not `1`, `12.0` is not `12`."""
    return expected == actual and type(expected) is type(actual)


def _keyed_diff(table: OutputTable, expected: Rows, actual: Rows, limit: int) -> list[str]:
    want = {table.key_of(row): tuple(row) for row in expected}
    got: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    duplicated: list[str] = []
    for row in actual:
        key = table.key_of(row)
        if key in got:
            duplicated.append(_describe(table, row))
        got[key] = tuple(row)
    missing = sorted((_describe(table, want[k]) for k in want.keys() - got.keys()), key=str)
    extra = sorted((_describe(table, got[k]) for k in got.keys() - want.keys()), key=str)
    differing = sorted(
        (
            f"key {dict(zip(table.key, key, strict=True))}: "
            + ", ".join(
                f"{column} expected {w!r} got {g!r}"
                for column, w, g in zip(table.columns, want[key], got[key], strict=True)
                if not _same(w, g)
            )
            for key in want.keys() & got.keys()
            if not all(_same(w, g) for w, g in zip(want[key], got[key], strict=True))
        ),
        key=str,
    )
    return (
        _listing("missing rows", missing, limit)
        + _listing("extra rows", extra, limit)
        + _listing("differing rows", differing, limit)
        + _listing("rows repeating a key", duplicated, limit)
    )


def diff(expected: Mapping[str, Rows], actual: Mapping[str, Rows], *, limit: int = 10) -> list[str]:
    """Differences between two sets of tables (model vs PostgreSQL), per table.

    Keyed tables are matched by primary key, so a wrong count reads as one differing row
    rather than a missing and an extra one; interaction_data is compared as a multiset.
    At most `limit` entries are listed per kind and table. Empty when they agree.
    """
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            lines.append(f"{name}: table missing")
            continue
        if name not in expected:
            lines.append(f"{name}: unexpected table")
            continue
        table = TABLES[name]
        expected_rows, actual_rows = list(expected[name]), list(actual[name])
        compare = _keyed_diff if table.key else _multiset_diff
        details = compare(table, expected_rows, actual_rows, limit)
        if details:
            lines.append(f"{name}: expected {len(expected_rows)} rows, got {len(actual_rows)}")
            lines += details
    return lines
