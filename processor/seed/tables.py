"""Rows of the PostgreSQL source tables (users, categories, items, reviews).

Rows are dicts in the table's column order (SPEC 1.1) so that the written files read
like the table. Timestamps are ISO 8601 UTC strings, dates ISO dates, NUMERIC columns
strings with exactly two decimals (exact, unlike a JSON float), other numbers JSON numbers.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from processor.seed.values import Usernames, Values

Row = dict[str, Any]

DAY = 86_400
YEAR = 365 * DAY

# The seed's category tree, in insertion order: a parent always precedes its children.
CATEGORIES: tuple[tuple[str, int | None], ...] = (
    ("Electronics", None),
    ("Laptops", 1),
    ("Smartphones", 1),
    ("Books", None),
    ("Fiction", 4),
    ("Non-Fiction", 4),
    ("Clothing", None),
    ("Men's Apparel", 7),
    ("Women's Apparel", 7),
    ("Home & Kitchen", None),
    ("Sports & Outdoors", None),
)

GENDERS = ("Male", "Female", "Other")
LANGUAGES = ("en", "es", "fr", "de", "pt", "ja")
TIME_ZONES = ("UTC", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo")
ACCOUNT_STATUSES = ("active", "inactive", "suspended")
AVAILABILITY = ("in_stock", "out_of_stock", "preorder")
# Reviews lean positive, as real ones do; about two thirds reach highly_rated's >= 4.
RATING_WEIGHTS = (5, 10, 20, 35, 30)
NULL_RATE = 0.1


def iso_timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def rating(rng: random.Random) -> int:
    return rng.choices(range(1, 6), weights=RATING_WEIGHTS)[0]


def build_categories() -> list[Row]:
    return [
        {"category_id": cid, "category_name": name, "parent_category_id": parent}
        for cid, (name, parent) in enumerate(CATEGORIES, start=1)
    ]


def build_users(
    count: int,
    rng: random.Random,
    values: Values,
    usernames: Usernames,
    reference: int,
    null_first_user: bool,
) -> list[Row]:
    """Users 1..count; `null_first_user` makes user 1's gender and location NULL for sure."""
    rows = []
    for user_id in range(1, count + 1):
        first, last = values.names(user_id)
        registered = reference - rng.randrange(1, 3 * YEAR)
        forced_null = null_first_user and user_id == 1
        rows.append(
            {
                "user_id": user_id,
                "username": usernames.claim(values.username(user_id, first, last)),
                "email": values.email(user_id, first, last),
                "password_hash": f"{rng.getrandbits(256):064x}",
                "registration_date": iso_timestamp(registered),
                "last_login": iso_timestamp(rng.randrange(registered, reference)),
                "first_name": first,
                "last_name": last,
                "date_of_birth": iso_date(reference - rng.randrange(18 * YEAR, 80 * YEAR)),
                "gender": None if forced_null or rng.random() < NULL_RATE else rng.choice(GENDERS),
                "location": None if forced_null or rng.random() < NULL_RATE else values.location(),
                "preferred_language": rng.choice(LANGUAGES),
                "time_zone": rng.choice(TIME_ZONES),
                "account_status": rng.choices(ACCOUNT_STATUSES, weights=(85, 10, 5))[0],
            }
        )
    return rows


def build_items(count: int, rng: random.Random, values: Values, reference: int) -> list[Row]:
    rows = []
    for item_id in range(1, count + 1):
        ratings = rng.randrange(0, 5000)
        created = reference - rng.randrange(1, 2 * YEAR)
        rows.append(
            {
                "item_id": item_id,
                "item_name": values.item_name(item_id),
                "description": values.description(item_id),
                "category_id": rng.randint(1, len(CATEGORIES)),
                "price": f"{rng.randint(500, 100_000) / 100:.2f}",
                "availability_status": rng.choices(AVAILABILITY, weights=(70, 20, 10))[0],
                "image_url": f"https://cdn.example.com/images/items/{item_id}.jpg",
                "release_date": iso_date(reference - rng.randrange(0, 5 * YEAR)),
                "average_rating": f"{rng.randint(100, 500) / 100 if ratings else 0:.2f}",
                "number_of_ratings": ratings,
                "author_id": rng.randint(1, 200),
                "brand_id": rng.randint(1, 50),
                "creation_timestamp": iso_timestamp(created),
                "last_updated_timestamp": iso_timestamp(rng.randrange(created, reference)),
            }
        )
    return rows


def build_reviews(
    count: int, users: int, items: int, rng: random.Random, values: Values, reference: int
) -> list[Row]:
    """`count` reviews of distinct (user, item) pairs; ids ascend with review_date, as SERIAL."""
    pairs = rng.sample(range(users * items), count)
    dates = sorted(reference - rng.randrange(1, YEAR) for _ in range(count))
    rows = []
    for review_id, (pair, date) in enumerate(zip(pairs, dates, strict=True), start=1):
        user_index, item_index = divmod(pair, items)
        score = rating(rng)
        rows.append(
            {
                "review_id": review_id,
                "user_id": user_index + 1,
                "item_id": item_index + 1,
                "rating_score": score,
                "review_text": values.review_text(score),
                "review_date": iso_timestamp(date),
            }
        )
    return rows
