"""Read a dataset directory (SPEC 6) into the streams the Flink statements consumed.

Standard library only, so the Flink virtualenv needs nothing but `apache-flink`:

- each PostgreSQL table becomes the changelog its CDC topic carries: the snapshot file's
  rows as inserts, then that table's lines of `changes.jsonl` in order; an upsert of an
  existing key is an update-before (the old row) + update-after, of a new key an insert;
  a delete retracts the old row (a delete of a missing key is nothing);
- the DynamoDB table becomes the append-only list of `document` strings the
  `ExtractField$Value` SMT left in the topic: `interactions.jsonl`, then the
  `interactions` inserts of `changes.jsonl`, in file order. Flink extracts the
  attributes itself (`parity/sql/sources/interactions.sql`), as the statements did.

Only the source columns SPEC 1.1 marks as used are kept: an update that changes only
other columns still produces an update pair, so no result can differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["+I", "-U", "+U", "-D"]

# (columns kept, in order; primary key column) per PostgreSQL source table.
PG_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "users": (("user_id", "username", "location", "gender"), "user_id"),
    "categories": (("category_id", "category_name"), "category_id"),
    "items": (
        ("item_id", "category_id", "availability_status", "image_url", "brand_id"),
        "item_id",
    ),
    "reviews": (("review_id", "user_id", "item_id", "rating_score"), "review_id"),
}


@dataclass(frozen=True)
class Dataset:
    """The source streams of one dataset directory, in the order they were produced."""

    changelogs: dict[str, list[tuple[Kind, tuple[Any, ...]]]]
    documents: list[str]


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _changelog(
    snapshot: list[dict[str, Any]], changes: list[dict[str, Any]], table: str
) -> list[tuple[Kind, tuple[Any, ...]]]:
    """A table's CDC stream as a retract changelog, with the old row on -U and -D."""
    columns, key = PG_TABLES[table]
    current: dict[Any, tuple[Any, ...]] = {}
    log: list[tuple[Kind, tuple[Any, ...]]] = []
    upserts = [("upsert", row) for row in snapshot]
    upserts += [(c["op"], c["row"]) for c in changes if c["table"] == table]
    for op, row in upserts:
        old = current.pop(row[key], None)
        if op == "delete":
            if old is not None:
                log.append(("-D", old))
            continue
        new = tuple(row.get(name) for name in columns)
        log.extend([("-U", old), ("+U", new)] if old is not None else [("+I", new)])
        current[row[key]] = new
    return log


def read_dataset(directory: Path) -> Dataset:
    """Every source stream of a dataset directory (SPEC 6), held in memory."""
    if not (directory / "interactions.jsonl").exists():
        raise FileNotFoundError(f"{directory} is not a dataset directory (no interactions.jsonl)")
    changes = list(_lines(directory / "changes.jsonl"))
    changelogs = {
        table: _changelog(list(_lines(directory / f"{table}.jsonl")), changes, table)
        for table in PG_TABLES
    }
    items = list(_lines(directory / "interactions.jsonl"))
    items += [c["item"] for c in changes if c["table"] == "interactions"]
    return Dataset(changelogs, [json.dumps(item, ensure_ascii=False) for item in items])
