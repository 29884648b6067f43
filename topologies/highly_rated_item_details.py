"""`highly_rated_item_details` (SPEC 2.4): the good reviews of items one can buy.

One row per current review with rating_score >= 4 whose item currently exists with
availability_status = 'in_stock' and whose item's category currently exists: user_id,
rating_score, item_id, image_url, brand_id, category_name. Any insert, update or delete
in reviews, items or categories is reflected.

The join meets at the item (`processor.joins`): each review is forwarded to its item
(only the good ones carry a value), each item to itself, and the item gathers the name of
its category from the category, where the item registers as a member. The rows of an
item are only ever written by its own key, so they change in one order. The names are
kept per category id: the replies of two categories an item moved between may arrive in
any order, those of one category arrive in its order.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from quixstreams.dataframe import StreamingDataFrame

from processor.changes import TableChange
from processor.joins import Gathered, Send, forward, gather
from processor.pipeline import Pipeline
from processor.topology import Topology

TABLE = sa.Table(
    "highly_rated_item_details",
    sa.MetaData(),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rating_score", sa.Integer, nullable=False),
    sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("image_url", sa.Text),
    sa.Column("brand_id", sa.Integer),
    sa.Column("category_name", sa.Text),
)
HIGH_RATING = 4
ITEM_COLUMNS = ("category_id", "availability_status", "image_url", "brand_id")


def good_review(row: dict[str, Any]) -> dict[str, Any] | None:
    score = row.get("rating_score")
    if score is None or score < HIGH_RATING:
        return None
    return {"user_id": row["user_id"], "rating": score}


def item_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name) for name in ITEM_COLUMNS}


def category_name(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row.get("category_name")}


def category_of(item_id: str, at_item: Gathered) -> str | None:
    item = at_item.get("item", {}).get(item_id)
    return None if item is None or item["category_id"] is None else str(item["category_id"])


def rows(item_id: str, at_item: Gathered) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows for one item, by primary key."""
    item = at_item.get("item", {}).get(item_id)
    category = at_item.get("category", {}).get(category_of(item_id, at_item))
    if item is None or item["availability_status"] != "in_stock" or category is None:
        return {}
    found = {}
    for _, review in sorted(at_item.get("review", {}).items()):
        found[(review["user_id"], int(item_id))] = {
            "user_id": review["user_id"],
            "rating_score": review["rating"],
            "item_id": int(item_id),
            "image_url": item["image_url"],
            "brand_id": item["brand_id"],
            "category_name": category["name"],
        }
    return found


def item_changed(item_id: str, before: Gathered, after: Gathered, send: Send) -> list[TableChange]:
    """Registers the item with its category when that changed; returns its rows' changes."""
    left, joined = category_of(item_id, before), category_of(item_id, after)
    if left != joined:
        if left is not None:
            send(left, "member", item_id, None)
        if joined is not None:
            send(joined, "member", item_id, True)
    old, new = rows(item_id, before), rows(item_id, after)
    return [TableChange(key, None) for key in old.keys() - new.keys()] + [
        TableChange(key, row) for key, row in new.items() if old.get(key) != row
    ]


def category_changed(
    category_id: str, before: Gathered, after: Gathered, send: Send
) -> list[TableChange]:
    """Tells each member item whose view changed the category's name (None: the category
    does not exist, or the item left it)."""
    category = after.get("category", {}).get(category_id)
    members, were = after.get("member", {}), before.get("member", {})
    renamed = category != before.get("category", {}).get(category_id)
    for item in members.keys() | were.keys() if renamed else members.keys() ^ were.keys():
        send(item, "category", category_id, category if item in members else None)
    return []


def build(pipeline: Pipeline) -> StreamingDataFrame:
    reviews = pipeline.row_changes("reviews")
    items = pipeline.row_changes("items")
    categories = pipeline.row_changes("categories")
    at_item = pipeline.internal_topic("at-item")
    at_category = pipeline.internal_topic("at-category")
    # Each review meets its item, and the category meets each of its member items there.
    for changes, meets_at, kind, id_column, join_column, value in (
        (reviews, at_item, "review", "review_id", "item_id", good_review),
        (items, at_item, "item", "item_id", "item_id", item_columns),
        (categories, at_category, "category", "category_id", "category_id", category_name),
    ):
        forward(
            pipeline,
            changes,
            meets_at,
            kind,
            id_column=id_column,
            join_column=join_column,
            value=value,
        )
    gather(pipeline, at_category, category_changed, replies=at_item)
    return gather(pipeline, at_item, item_changed, replies=at_category)


TOPOLOGY = Topology(
    name="highly_rated_item_details",
    table=TABLE,
    inputs=lambda settings: tuple(
        settings.pg_topic(table) for table in ("reviews", "items", "categories")
    ),
    build=build,
)
