"""changes.jsonl: the CDC traffic after the initial snapshot, applicable in file order.

Every entry is valid against the tables as they are at that point: a delete names a row
that exists, an upsert keeps usernames and (user_id, item_id) of reviews unique, a new
review gets the next review_id. The source tables are taken to have no foreign keys
(SPEC 1.1 declares none), so a delete leaves referencing rows behind: reviews of a deleted
item, items of a deleted category. The joins of the analytics must handle exactly that.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from itertools import accumulate

from processor.seed.interactions import Renderer, Traffic
from processor.seed.tables import (
    AVAILABILITY,
    CATEGORIES,
    GENDERS,
    NULL_RATE,
    Row,
    iso_timestamp,
    rating,
)
from processor.seed.values import Usernames, Values

# Relative frequency of each kind of change.
KINDS: tuple[tuple[str, int], ...] = (
    ("interaction", 30),
    ("user_update", 12),
    ("item_update", 12),
    ("review_update", 10),
    ("category_update", 3),
    ("review_insert", 15),
    ("review_delete", 6),
    ("user_delete", 5),
    ("item_delete", 5),
    ("category_delete", 2),
)
# Deletes stop once a table is down to this share of its initial rows, so that long
# change streams keep exercising updates instead of emptying the tables.
KEEP = 0.75
MAX_STEP_SECONDS = 120
CATEGORY_SUFFIXES = ("Deals", "Essentials", "Outlet", "Premium", "Classics")
REVIEW_INSERT_ATTEMPTS = 20


class _Table:
    """The current rows of one source table, with O(1) random choice and delete."""

    def __init__(self, name: str, key: str, rows: Iterable[Row]) -> None:
        self.name = name
        self.key = key
        self.rows = {row[key]: row for row in rows}
        self._keys = list(self.rows)
        self._index = {k: i for i, k in enumerate(self._keys)}
        # At least 1 for a table that starts with rows: users, items and categories never
        # run empty (options require a user and an item), only reviews can.
        self._floor = math.ceil(len(self._keys) * KEEP)

    def __len__(self) -> int:
        return len(self._keys)

    def pick(self, rng: random.Random) -> Row:
        """A copy of a random current row, to be modified and upserted."""
        return dict(self.rows[self._keys[rng.randrange(len(self._keys))]])

    def upsert(self, row: Row) -> None:
        key = row[self.key]
        if key not in self.rows:
            self._index[key] = len(self._keys)
            self._keys.append(key)
        self.rows[key] = row

    def delete(self, rng: random.Random) -> Row | None:
        """Removes and returns a random row, or None once the table is down to its floor."""
        if len(self._keys) <= self._floor:
            return None
        key = self._keys[rng.randrange(len(self._keys))]
        last = self._keys.pop()
        if last != key:
            self._keys[self._index[key]] = last
            self._index[last] = self._index[key]
        del self._index[key]
        return self.rows.pop(key)


class ChangeStream:
    """Draws changes.jsonl entries from `start` on; the rows in `tables` are never mutated
    (a row is copied before it is modified)."""

    def __init__(
        self,
        tables: dict[str, list[Row]],
        rng: random.Random,
        values: Values,
        usernames: Usernames,
        traffic: Traffic,
        renderer: Renderer,
        start: int,
    ) -> None:
        self._rng = rng
        self._values = values
        self._usernames = usernames
        self._traffic = traffic
        self._renderer = renderer
        self._now = start
        self._users = _Table("users", "user_id", tables["users"])
        self._categories = _Table("categories", "category_id", tables["categories"])
        self._items = _Table("items", "item_id", tables["items"])
        self._reviews = _Table("reviews", "review_id", tables["reviews"])
        self._pairs = {(r["user_id"], r["item_id"]) for r in tables["reviews"]}
        self._next_review_id = len(tables["reviews"]) + 1
        self._makers: dict[str, Callable[[], Row | None]] = {
            "interaction": self._interaction,
            "user_update": self._user_update,
            "item_update": self._item_update,
            "review_update": self._review_update,
            "category_update": self._category_update,
            "review_insert": self._review_insert,
            "review_delete": lambda: self._delete(self._reviews),
            "user_delete": lambda: self._delete(self._users),
            "item_delete": lambda: self._delete(self._items),
            "category_delete": lambda: self._delete(self._categories),
        }

    def generate(self, count: int) -> list[Row]:
        kinds = [kind for kind, _ in KINDS]
        cum_weights = list(accumulate(weight for _, weight in KINDS))
        changes = []
        for _ in range(count):
            self._now += self._rng.randint(1, MAX_STEP_SECONDS)
            kind = self._rng.choices(kinds, cum_weights=cum_weights)[0]
            # A change that is impossible right now (empty table, floor reached) becomes
            # an interaction, which always is possible.
            changes.append(self._makers[kind]() or self._interaction())
        return changes

    @staticmethod
    def _upsert(table: _Table, row: Row) -> Row:
        table.upsert(row)
        return {"table": table.name, "op": "upsert", "row": row}

    def _interaction(self) -> Row:
        event = self._traffic.draw(self._rng, lambda _user_id: self._now)
        return {"table": "interactions", "op": "insert", "item": self._renderer.render(event)}

    def _user_update(self) -> Row:
        row = self._users.pick(self._rng)
        column = self._rng.choice(("location", "gender", "username"))
        if column == "username":
            candidate = self._values.username(row["user_id"], row["first_name"], row["last_name"])
            row["username"] = self._usernames.claim(candidate)
        elif column == "gender":
            row["gender"] = self._rng.choice([g for g in (*GENDERS, None) if g != row["gender"]])
        elif row["location"] is not None and self._rng.random() < NULL_RATE:
            row["location"] = None
        else:
            old = row["location"]
            while row["location"] == old:
                row["location"] = self._values.location()
        return self._upsert(self._users, row)

    def _item_update(self) -> Row:
        row = self._items.pick(self._rng)
        if self._rng.random() < 0.5:
            others = [c for c in self._categories.rows if c != row["category_id"]]
            row["category_id"] = self._rng.choice(others)
        else:
            statuses = [s for s in AVAILABILITY if s != row["availability_status"]]
            row["availability_status"] = self._rng.choice(statuses)
        row["last_updated_timestamp"] = iso_timestamp(self._now)
        return self._upsert(self._items, row)

    def _review_update(self) -> Row | None:
        if not self._reviews:
            return None
        row = self._reviews.pick(self._rng)
        score = self._rng.choice([s for s in range(1, 6) if s != row["rating_score"]])
        row["rating_score"] = score
        row["review_text"] = self._values.review_text(score)
        return self._upsert(self._reviews, row)

    def _category_update(self) -> Row:
        row = self._categories.pick(self._rng)
        base = CATEGORIES[row["category_id"] - 1][0]
        names = [f"{base} {s}" for s in CATEGORY_SUFFIXES if f"{base} {s}" != row["category_name"]]
        row["category_name"] = self._rng.choice(names)
        return self._upsert(self._categories, row)

    def _review_insert(self) -> Row | None:
        for _ in range(REVIEW_INSERT_ATTEMPTS):
            user_id = self._users.pick(self._rng)["user_id"]
            item_id = self._items.pick(self._rng)["item_id"]
            if (user_id, item_id) not in self._pairs:
                break
        else:
            return None
        self._pairs.add((user_id, item_id))
        score = rating(self._rng)
        row = {
            "review_id": self._next_review_id,
            "user_id": user_id,
            "item_id": item_id,
            "rating_score": score,
            "review_text": self._values.review_text(score),
            "review_date": iso_timestamp(self._now),
        }
        self._next_review_id += 1
        return self._upsert(self._reviews, row)

    def _delete(self, table: _Table) -> Row | None:
        row = table.delete(self._rng)
        if row is None:
            return None
        if table is self._reviews:
            self._pairs.discard((row["user_id"], row["item_id"]))
        return {"table": table.name, "op": "delete", "row": {table.key: row[table.key]}}
