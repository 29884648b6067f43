"""Changes of the captured tables that the derived tables cannot take are bad input,
found where they are parsed (`processor.sources`), not in a later stage or at the write."""

from __future__ import annotations

from typing import Any

import pytest

from processor import storable
from processor.cdc.postgres import RowChange
from processor.errors import DecodeError
from processor.sources import checked


def upsert(table: str, key: str, row: dict[str, Any]) -> RowChange:
    return RowChange(table, "upsert", {key: row.get(key)}, row)


REVIEW = {"review_id": 1, "user_id": 2, "item_id": 3, "rating_score": 5, "review_text": "ok"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (RowChange("users", "delete", {"user_id": "12"}, None), "users.user_id: '12' is not"),
        (RowChange("users", "delete", {"id": 1}, None), "the key has no user_id"),
        (upsert("reviews", "review_id", {**REVIEW, "rating_score": "5"}), "rating_score"),
        (upsert("reviews", "review_id", {**REVIEW, "user_id": None}), "reviews.user_id is NULL"),
        (upsert("reviews", "review_id", {**REVIEW, "item_id": 2**31}), "beyond the range"),
        (upsert("items", "item_id", {"item_id": 1, "image_url": "a\x00.png"}), "NUL"),
        (upsert("categories", "category_id", {"category_id": True}), "not an integer"),
        (upsert("users", "user_id", {"user_id": 1, "username": 7}), "not text"),
    ],
)
def test_a_change_the_tables_cannot_take_is_bad_input(change: RowChange, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        checked(change)


@pytest.mark.parametrize(
    "change",
    [
        upsert("reviews", "review_id", REVIEW),
        upsert("reviews", "review_id", {k: v for k, v in REVIEW.items() if k != "item_id"}),
        upsert("items", "item_id", {"item_id": 2**31 - 1, "category_id": None, "price": "x"}),
        upsert("users", "user_id", {"user_id": -(2**31), "username": None}),
        RowChange("categories", "delete", {"category_id": 4}, None),
        RowChange("items", "truncate", {}, None),
        None,
    ],
)
def test_a_change_they_can_take_passes_as_it_is(change: RowChange | None) -> None:
    assert checked(change) is change


def test_an_id_too_long_for_a_key_is_bad_input() -> None:
    """The analytics tables key on DynamoDB's ids; an index row holds at most 2,704 bytes."""
    assert storable.key_text("é" * 500, "item_id") == "é" * 500  # 1,000 bytes
    with pytest.raises(DecodeError, match="1002 bytes"):
        storable.key_text("é" * 501, "item_id")
