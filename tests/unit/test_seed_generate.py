"""`pstreams seed generate`: deterministic bytes, the seed scripts' shapes, applicable changes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.cli import seed as seed_cli
from processor.seed import DATASET_FILES, Dataset, SeedOptions, generate, write_dataset
from processor.seed.tables import CATEGORIES, YEAR

DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REQUIRED_ATTRIBUTES = {
    "user_id",
    "timestamp",
    "action_type",
    "activity_type",
    "session_id",
    "device_type",
    "browser_type",
    "current_page_url",
    "ttl",
}
OPTIONAL_ATTRIBUTES = {"referrer_url", "item_id"}


def written(options: SeedOptions, out: Path) -> dict[str, bytes]:
    write_dataset(generate(options), out)
    return {name: (out / f"{name}.jsonl").read_bytes() for name in DATASET_FILES}


def attribute(item: dict[str, Any], name: str) -> str | None:
    """The analytics' view of an attribute: its S string, else NULL."""
    return item.get(name, {}).get("S")


def purchase_windows(interactions: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (attribute(i, "user_id"), attribute(i, "item_id"), int(i["timestamp"]["S"]) // 1800)
        for i in interactions
        if attribute(i, "action_type") == "purchase"
    )


def check_timestamp(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    return datetime.fromisoformat(value)


def check_interaction(item: dict[str, Any], earliest: int, latest: int) -> None:
    assert REQUIRED_ATTRIBUTES <= item.keys() <= REQUIRED_ATTRIBUTES | OPTIONAL_ATTRIBUTES
    for name, value in item.items():
        expected_type = "N" if name == "ttl" else "S"
        if name != "item_id":
            assert list(value) == [expected_type], (name, value)
    timestamp = int(item["timestamp"]["S"])
    assert earliest <= timestamp < latest
    assert int(item["ttl"]["N"]) > timestamp
    assert item["action_type"]["S"] in {"purchase", "click", "view"}


def check_tables(dataset: Dataset, options: SeedOptions) -> None:
    users, items, reviews = dataset.users, dataset.items, dataset.reviews
    for table in KEYS:
        assert all(list(row) == COLUMNS[table] for row in getattr(dataset, table)), table
    assert [u["user_id"] for u in users] == list(range(1, options.users + 1))
    usernames = [u["username"] for u in users]
    assert len(set(usernames)) == len(usernames)
    for user in users:
        assert 0 < len(user["username"]) <= 50
        assert user["gender"] in {"Male", "Female", "Other", None}
        assert user["location"] is None or len(user["location"]) <= 100
        registered = check_timestamp(user["registration_date"])
        assert check_timestamp(user["last_login"]) >= registered
        datetime.strptime(user["date_of_birth"], "%Y-%m-%d")

    assert dataset.categories == [
        {"category_id": i, "category_name": name, "parent_category_id": parent}
        for i, (name, parent) in enumerate(CATEGORIES, start=1)
    ]

    assert [i["item_id"] for i in items] == list(range(1, options.items + 1))
    for item in items:
        assert 1 <= item["category_id"] <= 11
        price = Decimal(item["price"])
        assert Decimal(5) <= price <= Decimal(1000) and price.as_tuple().exponent == -2
        rating = Decimal(item["average_rating"])
        assert Decimal(0) <= rating <= Decimal(5) and rating.as_tuple().exponent == -2
        assert item["availability_status"] in {"in_stock", "out_of_stock", "preorder"}
        assert item["image_url"].startswith("https://")
        check_timestamp(item["creation_timestamp"])
        check_timestamp(item["last_updated_timestamp"])

    assert [r["review_id"] for r in reviews] == list(range(1, options.reviews + 1))
    pairs = [(r["user_id"], r["item_id"]) for r in reviews]
    assert len(set(pairs)) == len(pairs)
    for review in reviews:
        assert 1 <= review["user_id"] <= options.users
        assert 1 <= review["item_id"] <= options.items
        assert 1 <= review["rating_score"] <= 5
        check_timestamp(review["review_date"])


def check_interactions(dataset: Dataset, options: SeedOptions) -> None:
    interactions = dataset.interactions
    assert len(interactions) == options.interactions
    reference = options.reference
    for item in interactions:
        check_interaction(item, reference - YEAR, reference)
    keys = [(i["user_id"]["S"], i["timestamp"]["S"]) for i in interactions]
    assert len(set(keys)) == len(keys), "(user_id, timestamp) is the DynamoDB primary key"
    if options.order == "event-time":
        times = [int(i["timestamp"]["S"]) for i in interactions]
        assert times == sorted(times)


KEYS = {"users": "user_id", "categories": "category_id", "items": "item_id", "reviews": "review_id"}
# SPEC 1.1, in table order.
COLUMNS = {
    "users": [
        "user_id", "username", "email", "password_hash", "registration_date", "last_login",
        "first_name", "last_name", "date_of_birth", "gender", "location", "preferred_language",
        "time_zone", "account_status",
    ],
    "categories": ["category_id", "category_name", "parent_category_id"],
    "items": [
        "item_id", "item_name", "description", "category_id", "price", "availability_status",
        "image_url", "release_date", "average_rating", "number_of_ratings", "author_id",
        "brand_id", "creation_timestamp", "last_updated_timestamp",
    ],
    "reviews": ["review_id", "user_id", "item_id", "rating_score", "review_text", "review_date"],
}  # fmt: skip


def apply_changes(dataset: Dataset, options: SeedOptions) -> None:
    """Replays changes.jsonl over the base tables, checking each entry against that state."""
    state = {
        table: {row[key]: row for row in getattr(dataset, table)} for table, key in KEYS.items()
    }
    next_review_id = len(dataset.reviews) + 1
    last_time = options.reference
    for change in dataset.changes:
        table = change["table"]
        if table == "interactions":
            assert change.keys() == {"table", "op", "item"} and change["op"] == "insert"
            check_interaction(change["item"], last_time, options.reference + YEAR)
            last_time = int(change["item"]["timestamp"]["S"])
            continue
        assert change.keys() == {"table", "op", "row"}
        key_column, row = KEYS[table], change["row"]
        if change["op"] == "delete":
            assert row.keys() == {key_column}
            assert row[key_column] in state[table], f"delete of a missing row: {change}"
            del state[table][row[key_column]]
            continue
        assert change["op"] == "upsert"
        assert list(row) == COLUMNS[table]
        previous = state[table].get(row[key_column])
        assert previous is not None or table == "reviews", "only reviews are inserted"
        assert previous != row, "an upsert changes something"
        state[table][row[key_column]] = row
        if table == "users":
            names = [u["username"] for u in state["users"].values()]
            assert len(set(names)) == len(names)
            assert 0 < len(row["username"]) <= 50
            assert row["location"] is None or len(row["location"]) <= 100
        if table == "reviews":
            pairs = [(r["user_id"], r["item_id"]) for r in state["reviews"].values()]
            assert len(set(pairs)) == len(pairs)
            assert 1 <= row["rating_score"] <= 5 and row["review_date"]
            if previous is None:
                assert row["user_id"] in state["users"] and row["item_id"] in state["items"]
                assert row["review_id"] == next_review_id, "review_id is SERIAL"
                next_review_id += 1


def test_same_options_give_the_same_bytes(tmp_path: Path) -> None:
    options = SeedOptions(users=50, items=20, interactions=800, reviews=100, changes=60)
    assert written(options, tmp_path / "a") == written(options, tmp_path / "b")


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first = written(SeedOptions(seed=1), tmp_path / "a")
    second = written(SeedOptions(seed=2), tmp_path / "b")
    for name in ("users", "items", "reviews", "interactions", "changes"):
        assert first[name] != second[name], name


def test_files_are_json_lines_with_explicit_key_order(tmp_path: Path) -> None:
    files = written(SeedOptions(), tmp_path)
    for name, content in files.items():
        assert b"\r" not in content and content.endswith(b"\n"), name
        for line in content.decode().splitlines():
            assert isinstance(json.loads(line), dict)
    first_user = json.loads(files["users"].decode().splitlines()[0])
    assert list(first_user)[:3] == ["user_id", "username", "email"]


def test_default_dataset_has_the_seed_scripts_shapes() -> None:
    options = SeedOptions()
    dataset = generate(options)
    check_tables(dataset, options)
    check_interactions(dataset, options)


def test_shipped_demo_is_the_output_of_the_default_options(tmp_path: Path) -> None:
    expected = written(SeedOptions(), tmp_path)
    assert {name: (DEMO / f"{name}.jsonl").read_bytes() for name in DATASET_FILES} == expected


def test_item_and_referrer_presence_rates_on_a_large_sample() -> None:
    dataset = generate(SeedOptions(users=500, items=200, interactions=20_000, changes=0))
    count = len(dataset.interactions)
    with_item = sum("item_id" in i for i in dataset.interactions) / count
    with_referrer = sum("referrer_url" in i for i in dataset.interactions) / count
    assert with_item == pytest.approx(0.9, abs=0.01)
    assert with_referrer == pytest.approx(0.5, abs=0.015)
    actions = Counter(i["action_type"]["S"] for i in dataset.interactions)
    assert min(actions.values()) / count > 0.3, "about one third purchases, clicks, views"


def test_bursts_put_repeated_purchases_into_one_30_minute_window() -> None:
    options = SeedOptions(bursts=6, edge_cases=False)
    windows = purchase_windows(generate(options).interactions)
    repeated = [key for key, count in windows.items() if count >= 2 and key[1] is not None]
    assert len(repeated) >= options.bursts


def test_edge_cases_are_present_by_default_and_can_be_left_out() -> None:
    def census(dataset: Dataset, options: SeedOptions) -> dict[str, bool]:
        user_ids = {i["user_id"]["S"] for i in dataset.interactions}
        item_ids = {i["item_id"].get("S") for i in dataset.interactions if "item_id" in i}
        return {
            "number-typed item_id": any("N" in i.get("item_id", {}) for i in dataset.interactions),
            "non-decimal user_id": any(not u.isdecimal() for u in user_ids),
            "missing user": any(u.isdecimal() and int(u) > options.users for u in user_ids),
            "missing item": any(i and int(i) > options.items for i in item_ids),
            "user with NULL gender and location": any(
                u["gender"] is None and u["location"] is None and str(u["user_id"]) in user_ids
                for u in dataset.users
            ),
        }

    with_edges = SeedOptions()
    assert all(census(generate(with_edges), with_edges).values())
    without = SeedOptions(edge_cases=False, users=50)
    assert not any(v for k, v in census(generate(without), without).items() if "NULL" not in k)

    # The number-typed item_id pair is a purchase window whose item_id the analytics see as NULL.
    windows = purchase_windows(generate(with_edges).interactions)
    assert any(item is None and count >= 2 for (_, item, _), count in windows.items())


def test_changes_mix_every_kind_and_apply_in_order() -> None:
    options = SeedOptions(changes=400)
    dataset = generate(options)
    apply_changes(dataset, options)
    kinds = Counter((c["table"], c["op"]) for c in dataset.changes)
    for table in KEYS:
        assert kinds[(table, "upsert")] and kinds[(table, "delete")], table
    assert kinds[("interactions", "insert")]
    new_reviews = [
        c for c in dataset.changes if c["table"] == "reviews" and c["row"]["review_id"] > 300
    ]
    assert new_reviews
    updated_user_columns = {
        column
        for c in dataset.changes
        if c["table"] == "users" and c["op"] == "upsert"
        for column in ("location", "gender", "username")
        if c["row"][column] != dataset.users[c["row"]["user_id"] - 1][column]
    }
    assert updated_user_columns == {"location", "gender", "username"}


def test_shuffled_order_is_a_permutation_of_event_time_order() -> None:
    in_order = generate(SeedOptions())
    shuffled = generate(SeedOptions(order="shuffled"))
    assert shuffled.interactions != in_order.interactions
    dump = lambda rows: sorted(json.dumps(row) for row in rows)  # noqa: E731
    assert dump(shuffled.interactions) == dump(in_order.interactions)
    assert shuffled.changes == in_order.changes


def test_skew_makes_some_items_and_users_popular() -> None:
    def top_share(dataset: Dataset, attribute_name: str) -> float:
        counts = Counter(attribute(i, attribute_name) for i in dataset.interactions)
        counts.pop(None, None)
        return max(counts.values()) / sum(counts.values())

    uniform = generate(SeedOptions(changes=0))
    skewed = generate(SeedOptions(changes=0, skew=1.2))
    assert top_share(uniform, "item_id") < 0.06 < 0.15 < top_share(skewed, "item_id")
    assert top_share(uniform, "user_id") < 0.02 < 0.1 < top_share(skewed, "user_id")


def test_faker_values_are_realistic_deterministic_and_change_only_text(tmp_path: Path) -> None:
    pytest.importorskip("faker")
    options = SeedOptions(faker=True, users=300, changes=200)
    assert written(options, tmp_path / "a") == written(options, tmp_path / "b")
    dataset = generate(options)
    check_tables(dataset, options)
    apply_changes(dataset, options)
    assert not any(u["username"].startswith("user_") for u in dataset.users)
    assert all("@" in u["email"] for u in dataset.users)
    plain = generate(dataclasses.replace(options, faker=False))
    assert dataset.interactions == plain.interactions
    assert [u["gender"] for u in dataset.users] == [u["gender"] for u in plain.users]


@st.composite
def seed_options(draw: st.DrawFn) -> SeedOptions:
    users = draw(st.integers(1, 30))
    items = draw(st.integers(1, 20))
    return SeedOptions(
        users=users,
        items=items,
        interactions=draw(st.integers(0, 300)),
        reviews=draw(st.integers(0, min(users * items, 60))),
        seed=draw(st.integers(0, 2**32)),
        order=draw(st.sampled_from(["event-time", "shuffled"])),
        bursts=draw(st.integers(0, 4)),
        skew=draw(st.sampled_from([0.0, 0.8, 1.5])),
        changes=draw(st.integers(0, 120)),
        edge_cases=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(seed_options())
def test_invariants_hold_for_any_sizes_and_seed(options: SeedOptions) -> None:
    dataset = generate(options)
    check_tables(dataset, options)
    check_interactions(dataset, options)
    assert len(dataset.changes) == options.changes
    apply_changes(dataset, options)
    if options.bursts and options.interactions >= 11 + 12 * options.bursts:
        windows = purchase_windows(dataset.interactions)
        assert any(item is not None and count >= 2 for (_, item, _), count in windows.items())


@pytest.mark.parametrize(
    ("argument", "message"),
    [(["--reviews", "7", "--users", "2", "--items", "3"], "distinct"), (["--users", "0"], "users")],
)
def test_cli_rejects_impossible_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: list[str], message: str
) -> None:
    parser = cli_parser()
    args = parser.parse_args(["seed", "generate", "--out", str(tmp_path), *argument])
    with pytest.raises(SystemExit) as exit_info:
        args.handler(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli_parser()
    arguments = ["--users", "20", "--items", "10", "--interactions", "300", "--reviews", "30"]
    args = parser.parse_args(
        ["seed", "generate", "--out", str(tmp_path), *arguments, "--order", "shuffled"]
    )
    assert args.handler(args) == 0
    assert "300 interactions" in capsys.readouterr().out
    options = SeedOptions(users=20, items=10, interactions=300, reviews=30, order="shuffled")
    assert {n: (tmp_path / f"{n}.jsonl").read_bytes() for n in DATASET_FILES} == written(
        options, tmp_path / "api"
    )


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pstreams")
    seed_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser
