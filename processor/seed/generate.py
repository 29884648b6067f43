"""Builds a whole dataset (SPEC section 6) from `SeedOptions` and writes it to a directory.

Each part draws from its own `random.Random`, seeded from the seed and the part's name,
so that parts do not shift each other's draws: `--faker` changes only text values, and
`--order` only the order of interactions.jsonl.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from processor.seed.changes import ChangeStream
from processor.seed.interactions import Picker, Renderer, Traffic, draw_interactions
from processor.seed.options import SeedOptions
from processor.seed.tables import (
    YEAR,
    Row,
    build_categories,
    build_items,
    build_reviews,
    build_users,
)
from processor.seed.values import Usernames, make_values

# The files of a dataset directory, in the order `seed load` applies them.
DATASET_FILES = ("users", "categories", "items", "reviews", "interactions", "changes")


@dataclass(frozen=True)
class Dataset:
    """The rows of every file of a dataset directory, in file order."""

    users: list[Row]
    categories: list[Row]
    items: list[Row]
    reviews: list[Row]
    interactions: list[Row]
    changes: list[Row]


def generate(options: SeedOptions) -> Dataset:
    """The whole dataset in memory (the 100k-interaction benchmark set takes ~300 MB)."""

    def rng(part: str) -> random.Random:
        return random.Random(f"{options.seed}/{part}")

    reference = options.reference
    values = make_values(options.seed, options.faker)
    usernames = Usernames()
    users = build_users(
        options.users, rng("users"), values, usernames, reference, options.edge_cases
    )
    items = build_items(options.items, rng("items"), values, reference)
    reviews = build_reviews(
        options.reviews, options.users, options.items, rng("reviews"), values, reference
    )
    categories = build_categories()

    pickers = rng("popularity")
    traffic = Traffic(
        Picker(options.users, options.skew, pickers), Picker(options.items, options.skew, pickers)
    )
    events = draw_interactions(options, traffic, rng("interactions"), reference - YEAR, reference)
    renderer = Renderer(rng("render"))
    interactions = [renderer.render(event) for event in events]
    if options.order == "shuffled":
        rng("order").shuffle(interactions)

    tables = {"users": users, "categories": categories, "items": items, "reviews": reviews}
    changes = ChangeStream(
        tables, rng("changes"), values, usernames, traffic, renderer, reference
    ).generate(options.changes)
    return Dataset(users, categories, items, reviews, interactions, changes)


def write_dataset(dataset: Dataset, out: Path) -> None:
    """One JSON object per line, keys in column order, UTF-8, `\\n` line endings.

    Every file is written, `changes.jsonl` too when empty, so that regenerating into an
    existing directory never leaves a stale file of an earlier run behind.
    """
    out.mkdir(parents=True, exist_ok=True)
    for name in DATASET_FILES:
        with (out / f"{name}.jsonl").open("w", encoding="utf-8", newline="\n") as file:
            file.writelines(
                json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
                for row in getattr(dataset, name)
            )
