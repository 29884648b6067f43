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

from typing import Any, NamedTuple

import sqlalchemy as sa
from quixstreams.dataframe import StreamingDataFrame

from processor.changes import TableChange
from processor.joins import Gathering, Send, forward, gather
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


def category_of(item: dict[str, Any] | None) -> str | None:
    return None if item is None or item["category_id"] is None else str(item["category_id"])


class View(NamedTuple):
    """What the rows of an item show of it and of its category (None: not there)."""

    item: dict[str, Any] | None
    category: dict[str, Any] | None

    @property
    def shown(self) -> bool:
        """Whether the item's good reviews are rows: it is in stock, its category exists."""
        in_stock = self.item is not None and self.item["availability_status"] == "in_stock"
        return in_stock and self.category is not None

    def row(self, item_id: str, review: dict[str, Any]) -> TableChange:
        item, category = self.item, self.category  # both there: the view is shown
        key = (review["user_id"], int(item_id))
        return TableChange(
            key,
            {
                "user_id": review["user_id"],
                "rating_score": review["rating"],
                "item_id": int(item_id),
                "image_url": item["image_url"],
                "brand_id": item["brand_id"],
                "category_name": category["name"],
            },
        )

    def rows(self, item_id: str, reviews: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
        """The item's rows by primary key."""
        if not self.shown:
            return {}
        changes = (self.row(item_id, review) for review in reviews.values())
        return {change.key: change.row for change in changes}

    def row_of_user(self, item_id: str, reviews: dict[str, Any], user: Any) -> TableChange:
        """The row of a user whose review left: another review of theirs, else none."""
        for review in reviews.values():
            if review["user_id"] == user:
                return self.row(item_id, review)
        return TableChange((user, int(item_id)), None)


def item_changed(item_id: str, at_item: Gathering, send: Send) -> list[TableChange]:
    """Registers the item with its category when that changed; returns its rows' changes.

    When the item or its category changed, every row is compared; otherwise only the
    rows of the changed reviews, so that a review costs the same on an item with 60,000
    as on one with one. A row is keyed by its reviewer: the source allows one review
    per user and item, but its CDC may show two at once for a moment, so a review that
    leaves a user gives way to another one of that user.
    """
    item_was, item = at_item.before("item", item_id), at_item.get("item", item_id)
    left, joined = category_of(item_was), category_of(item)
    if left != joined:
        if left is not None:
            send(left, "member", item_id, None)
        if joined is not None:
            send(joined, "member", item_id, True)
    view_was = View(item_was, at_item.before("category", left))
    view = View(item, at_item.get("category", joined))
    reviews = at_item.now.get("review", {})
    if view != view_was:
        old = view_was.rows(item_id, at_item.all_before("review"))
        new = view.rows(item_id, reviews)
        return [TableChange(key, None) for key in old.keys() - new.keys()] + [
            TableChange(key, row) for key, row in new.items() if old.get(key) != row
        ]
    if not view.shown:
        return []
    changes = []
    for review_id, earlier in at_item.changed("review").items():
        review = reviews.get(review_id)
        if review is not None:
            changes.append(view.row(item_id, review))
        if earlier is not None and (review is None or review["user_id"] != earlier["user_id"]):
            changes.append(view.row_of_user(item_id, reviews, earlier["user_id"]))
    return changes


def category_changed(category_id: str, at_category: Gathering, send: Send) -> list[TableChange]:
    """Tells each member item whose view changed the category's name (None: the category
    does not exist, or the item left it)."""
    category = at_category.get("category", category_id)
    members = at_category.now.get("member", {})
    told = at_category.changed("member").keys()
    if category != at_category.before("category", category_id):
        told = told | members.keys()
    for item in told:
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
