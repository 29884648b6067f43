"""What the derived tables use of each captured PostgreSQL table (SPEC 1.1), checked once,
as each change is parsed.

A change whose used columns the tables cannot take (an id that is not an integer or is
beyond INT, text with a NUL, a review without its reviewer) would fail a later stage or
the PostgreSQL write, at every restart; `checked` makes it bad input instead, for the
dead letters. Columns the tables do not use are left as they are; a used column the row
lacks (a writer schema without it) reads as NULL, as SPEC 1.1 says of missing ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from processor import storable
from processor.cdc.postgres import RowChange
from processor.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    check: Callable[[Any, str], Any]
    required: bool = False
    """NOT NULL for the derived tables: a key, or part of an output's key."""


@dataclass(frozen=True, slots=True)
class SourceTable:
    key: str
    columns: tuple[Column, ...]


INTEGER, TEXT = storable.integer, storable.text

SOURCE_TABLES = {
    "users": SourceTable(
        "user_id",
        (
            Column("user_id", INTEGER, required=True),
            Column("username", TEXT),
            Column("location", TEXT),
            Column("gender", TEXT),
        ),
    ),
    "categories": SourceTable(
        "category_id",
        (Column("category_id", INTEGER, required=True), Column("category_name", TEXT)),
    ),
    "items": SourceTable(
        "item_id",
        (
            Column("item_id", INTEGER, required=True),
            Column("category_id", INTEGER),
            Column("availability_status", TEXT),
            Column("image_url", TEXT),
            Column("brand_id", INTEGER),
        ),
    ),
    "reviews": SourceTable(
        "review_id",
        (
            Column("review_id", INTEGER, required=True),
            Column("user_id", INTEGER, required=True),  # highly_rated's key
            Column("item_id", INTEGER),
            Column("rating_score", INTEGER),
        ),
    ),
}


def checked(change: RowChange | None) -> RowChange | None:
    """The change, if the derived tables can take it; else `DecodeError`."""
    if change is None or change.op == "truncate":
        return change
    source = SOURCE_TABLES[change.table]
    if source.key not in change.key:
        raise DecodeError(f"{change.table}: the key has no {source.key}")
    _check(change.table, Column(source.key, INTEGER, required=True), change.key)
    if change.row is not None:
        for column in source.columns:
            _check(change.table, column, change.row)
    return change


def _check(table: str, column: Column, row: dict[str, Any]) -> None:
    what = f"{table}.{column.name}"
    value = column.check(row.get(column.name), what)
    if value is None and column.required:
        raise DecodeError(f"{what} is NULL")
