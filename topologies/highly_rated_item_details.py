"""`highly_rated_item_details` (SPEC 2.4): the good reviews of items one can buy.

One row per current review with rating_score >= 4 whose item currently exists with
availability_status = 'in_stock' and whose item's category currently exists: user_id,
rating_score, item_id, image_url, brand_id, category_name. Any insert, update or delete
in reviews, items or categories is reflected.

The rows of an item are only ever written by the stage keyed by that item, so they
change in one order. That stage holds the item, its qualifying reviews (sent by the
review stage, which remembers where each review was) and the names of the categories it
registered with (sent by the category stage, which remembers its member items). Each
category's news is kept under its own id: replies of two categories an item moved
between may arrive in any order, those of one category arrive in its order.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from processor.cdc.postgres import RowChange
from processor.changes import TableChange
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


def _route_reviews(pipeline: Pipeline, reviews: StreamingDataFrame, by_item: Any) -> None:
    """Each review to its item: the qualifying ones with their user and rating, the others
    (and a review's previous item) as None."""
    store = pipeline.store(reviews)
    outbox = pipeline.outbox(reviews, by_item)

    def route(change: RowChange) -> None:
        partition = message_context().partition
        review_id = str(change.key["review_id"])
        placed = store.table(partition, "item_of_review", factory=lambda: None)
        entries = outbox.entries(partition)
        previous, row = placed[review_id], change.row
        item = None if row is None else str(row["item_id"])
        if previous is not None and previous != item:
            entries[previous][f"review {review_id}"] = None
        if item is not None:
            score = row.get("rating_score")
            good = score is not None and score >= HIGH_RATING
            review = {"user_id": row["user_id"], "rating": row["rating_score"]}
            entries[item][f"review {review_id}"] = review if good else None
        placed[review_id] = item

    reviews.update(route)


def _route_items(pipeline: Pipeline, items: StreamingDataFrame, by_item: Any) -> None:
    outbox = pipeline.outbox(items, by_item)

    def route(change: RowChange) -> None:
        row = change.row
        item = None if row is None else {name: row.get(name) for name in ITEM_COLUMNS}
        outbox.entries(message_context().partition)[str(change.key["item_id"])]["item"] = item

    items.update(route)


def _route_categories(pipeline: Pipeline, categories: StreamingDataFrame, by_category: Any) -> None:
    outbox = pipeline.outbox(categories, by_category)

    def route(change: RowChange) -> None:
        row = change.row
        category = None if row is None else {"name": row.get("category_name")}
        key = str(change.key["category_id"])
        outbox.entries(message_context().partition)[key]["category"] = category

    categories.update(route)


def _categories(pipeline: Pipeline, by_category: Any, by_item: Any) -> None:
    """Per category: its name and its member items; tells each member the current name
    (None when the category does not exist or the item left it)."""
    stream = pipeline.app.dataframe(by_category)
    store = pipeline.store(stream)
    outbox = pipeline.outbox(stream, by_item)

    def update(message: dict[str, Any], category: str, _timestamp: int, _headers: Any) -> None:
        partition = message_context().partition
        names = store.table(partition, "category", factory=lambda: None)
        members = store.table(partition, "members")[category]
        told: dict[str, dict | None] = {}
        for entry, value in message["e"].items():
            if entry == "category":
                names[category] = value
                told.update(dict.fromkeys(members, value))
            else:
                item = entry.removeprefix("member ")
                if value:
                    members[item] = True
                    told[item] = names[category]
                else:
                    members.pop(item, None)
                    told[item] = None
        entries = outbox.entries(partition)
        for item, name in told.items():
            entries[item][f"category {category}"] = name

    stream.update(update, metadata=True)


def _rows(item_id: str, item: dict | None, reviews: dict, categories: dict) -> dict:
    """The table's rows for one item, by primary key."""
    category = categories.get(_category_of(item))
    if item is None or item["availability_status"] != "in_stock" or category is None:
        return {}
    rows = {}
    for _, review in sorted(reviews.items()):
        rows[(review["user_id"], int(item_id))] = {
            "user_id": review["user_id"],
            "rating_score": review["rating"],
            "item_id": int(item_id),
            "image_url": item["image_url"],
            "brand_id": item["brand_id"],
            "category_name": category["name"],
        }
    return rows


def _category_of(item: dict | None) -> str | None:
    return None if item is None or item["category_id"] is None else str(item["category_id"])


def _items(pipeline: Pipeline, by_item: Any, by_category: Any) -> StreamingDataFrame:
    """Per item: the item, its good reviews, its category's name; emits its rows."""
    stream = pipeline.app.dataframe(by_item)
    store = pipeline.store(stream)
    outbox = pipeline.outbox(stream, by_category)

    def update(message: dict[str, Any], item_id: str, _ts: int, _headers: Any) -> list[TableChange]:
        partition = message_context().partition
        items = store.table(partition, "item", factory=lambda: None)
        categories = store.table(partition, "categories")[item_id]
        reviews = store.table(partition, "reviews")[item_id]
        before = _rows(item_id, items[item_id], reviews, categories)
        registered = _category_of(items[item_id])
        for entry, value in message["e"].items():
            if entry == "item":
                items[item_id] = value
                continue
            kind, _, name = entry.partition(" ")
            known = categories if kind == "category" else reviews
            if value is None:
                known.pop(name, None)
            else:
                known[name] = value
        category = _category_of(items[item_id])
        if category != registered:
            entries = outbox.entries(partition)
            if registered is not None:
                entries[registered][f"member {item_id}"] = None
            if category is not None:
                entries[category][f"member {item_id}"] = True
        after = _rows(item_id, items[item_id], reviews, categories)
        return [TableChange(key, None) for key in before.keys() - after.keys()] + [
            TableChange(key, row) for key, row in after.items() if before.get(key) != row
        ]

    return stream.apply(update, metadata=True)


def build(pipeline: Pipeline) -> StreamingDataFrame:
    reviews = pipeline.row_changes("reviews")
    items = pipeline.row_changes("items")
    categories = pipeline.row_changes("categories")
    by_item = pipeline.internal_topic("by-item")
    by_category = pipeline.internal_topic("by-category")
    _route_reviews(pipeline, reviews, by_item)
    _route_items(pipeline, items, by_item)
    _route_categories(pipeline, categories, by_category)
    _categories(pipeline, by_category, by_item)
    return _items(pipeline, by_item, by_category)


TOPOLOGY = Topology(
    name="highly_rated_item_details",
    table=TABLE,
    inputs=lambda settings: tuple(
        settings.pg_topic(table) for table in ("reviews", "items", "categories")
    ),
    build=build,
)
