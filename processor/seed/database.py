"""The captured PostgreSQL database (schema `user_data`, SPEC 1.1), as `seed load` fills it.

Foreign keys are left out on purpose: the source's changes may arrive in any order and
may reference rows that do not exist (yet), which the analytics must handle anyway.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

SCHEMA = "user_data"
metadata = sa.MetaData(schema=SCHEMA)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("username", sa.String(50), nullable=False),
    sa.Column("email", sa.String(100)),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("registration_date", sa.DateTime),
    sa.Column("last_login", sa.DateTime),
    sa.Column("first_name", sa.String(50)),
    sa.Column("last_name", sa.String(50)),
    sa.Column("date_of_birth", sa.Date),
    sa.Column("gender", sa.String(10)),
    sa.Column("location", sa.String(100)),
    sa.Column("preferred_language", sa.String(50)),
    sa.Column("time_zone", sa.String(50)),
    sa.Column("account_status", sa.String(20)),
)

categories = sa.Table(
    "categories",
    metadata,
    sa.Column("category_id", sa.Integer, primary_key=True),
    sa.Column("category_name", sa.String(100), nullable=False),
    sa.Column("parent_category_id", sa.Integer),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_name", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("category_id", sa.Integer),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("availability_status", sa.String(20), server_default="in_stock"),
    sa.Column("image_url", sa.String(255)),
    sa.Column("release_date", sa.Date),
    sa.Column("average_rating", sa.Numeric(3, 2)),
    sa.Column("number_of_ratings", sa.Integer),
    sa.Column("author_id", sa.Integer),
    sa.Column("brand_id", sa.Integer),
    sa.Column("creation_timestamp", sa.DateTime),
    sa.Column("last_updated_timestamp", sa.DateTime),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("review_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("rating_score", sa.Integer, nullable=False),
    sa.Column("review_text", sa.Text),
    sa.Column("review_date", sa.DateTime, nullable=False),
    sa.CheckConstraint("rating_score BETWEEN 1 AND 5", name="reviews_rating_score_range"),
    sa.UniqueConstraint("user_id", "item_id", name="reviews_user_id_item_id_key"),
)

TABLES = {table.name: table for table in (users, categories, items, reviews)}


def key_of(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """The primary-key columns of a row, as the CDC key record carries them."""
    return {column.name: row[column.name] for column in table.primary_key.columns}


def typed_row(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """A dataset row (JSON values) with Python values of the columns' types.

    Columns the row omits are NULL (SPEC 6); unknown columns are an error, so a typo in a
    dataset does not pass silently.
    """
    unknown = set(row) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"{table.name}: unknown columns {sorted(unknown)}")
    return {column.name: _typed(column, row.get(column.name)) for column in table.columns}


def _typed(column: sa.Column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, sa.DateTime):
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        # The source columns are TIMESTAMP WITHOUT TIME ZONE holding UTC.
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    if isinstance(column.type, sa.Date):
        return date.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Integer):
        return Decimal(str(value))
    if isinstance(column.type, sa.Integer):
        return int(value)
    return value
