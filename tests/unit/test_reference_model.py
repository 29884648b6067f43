"""The reference model of SPEC 2 (tests/reference) on hand-computed cases and properties.

Expected values are worked out by hand from the SPEC text, never taken from the model.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.reference.compare import TABLES, diff, read_tables
from tests.reference.model import (
    SourceState,
    co_purchase_counts,
    derived_tables,
    highly_rated_item_details,
    interaction_data,
    item_shared_by_user_pair,
    parse_integer,
    purchase_windowed_counts,
    simulate_purchase_windows,
    user_id_as_int,
    user_purchase_totals,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_719_792_000  # 2024-07-01T00:00:00Z, a window boundary
D0 = datetime(2024, 7, 1, tzinfo=UTC)
MINUTE = 60


def record(
    user: str | None = "u",
    action: str | None = "purchase",
    item: str | None = "A",
    t: int | str = T0,
    *,
    item_type: str = "S",
    referrer: str | None = None,
) -> dict[str, Any]:
    """A DynamoDB item as the connector captures it; None leaves the attribute out."""
    document: dict[str, Any] = {
        "timestamp": {"S": str(t)},
        "session_id": {"S": "s1"},
        "device_type": {"S": "mobile"},
        "browser_type": {"S": "Firefox"},
        "current_page_url": {"S": "https://shop.example.com/"},
        "ttl": {"N": "1782864000"},
    }
    if user is not None:
        document["user_id"] = {"S": user}
    if action is not None:
        document["action_type"] = {"S": action}
    if item is not None:
        document["item_id"] = {item_type: item}
    if referrer is not None:
        document["referrer_url"] = {"S": referrer}
    return document


def interactions(*records: dict[str, Any], **tables: Any) -> SourceState:
    return SourceState.from_records(interactions=records, **tables)


def user(user_id: int, username: str | None = None, **columns: Any) -> dict[str, Any]:
    return {"user_id": user_id, "username": username or f"user_{user_id}", **columns}


def review(review_id: int, user_id: int, item_id: int, score: int) -> dict[str, Any]:
    return {"review_id": review_id, "user_id": user_id, "item_id": item_id, "rating_score": score}


def item(item_id: int, category_id: int | None = 1, status: str = "in_stock") -> dict[str, Any]:
    return {
        "item_id": item_id,
        "category_id": category_id,
        "availability_status": status,
        "image_url": f"img/{item_id}.jpg",
        "brand_id": 7,
    }


# --- SourceState ------------------------------------------------------------------------


def test_upsert_replaces_the_whole_row_and_delete_removes_it() -> None:
    state = SourceState.from_records(
        users=[user(1, location="Lyon", gender="Female"), user(2)],
        changes=[
            {"table": "users", "op": "upsert", "row": {"user_id": 1, "username": "renamed"}},
            {"table": "users", "op": "delete", "row": {"user_id": 2}},
            {"table": "users", "op": "delete", "row": {"user_id": 99}},
        ],
    )
    assert state.users == {1: {"user_id": 1, "username": "renamed"}}
    assert state.users[1].get("location") is None


def test_change_interactions_come_after_the_file_ones() -> None:
    state = SourceState.from_records(
        interactions=[record(user="first", t=T0 + 100)],
        changes=[{"table": "interactions", "op": "insert", "item": record(user="second", t=T0)}],
    )
    assert [i.user_id for i in state.interactions] == ["first", "second"]


def test_unknown_change_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown change"):
        SourceState.from_records(changes=[{"table": "users", "op": "truncate", "row": {}}])


def test_directory_reads_like_records(tmp_path: Path) -> None:
    (tmp_path / "users.jsonl").write_text('{"user_id": 5, "username": "five"}\n\n')
    (tmp_path / "categories.jsonl").write_text('{"category_id": 1, "category_name": "Books"}\n')
    (tmp_path / "items.jsonl").write_text("")
    (tmp_path / "reviews.jsonl").write_text("")
    (tmp_path / "interactions.jsonl").write_text(
        '{"user_id": {"S": "5"}, "timestamp": {"S": "1719792000"}, "action_type": {"S": "view"}}\n'
    )
    without_changes = SourceState.from_directory(tmp_path)
    assert without_changes.users == {5: {"user_id": 5, "username": "five"}}
    assert [(i.user_id, i.action_type, i.timestamp) for i in without_changes.interactions] == [
        ("5", "view", T0)
    ]
    (tmp_path / "changes.jsonl").write_text(
        '{"table": "categories", "op": "delete", "row": {"category_id": 1}}\n'
    )
    assert SourceState.from_directory(tmp_path).categories == {}


# --- Attribute values and integers ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        (" 12 ", 12),
        ("+12", 12),
        ("012", 12),
        ("-7", -7),
        ("12abc", None),
        ("anonymous", None),
        ("12.0", None),
        ("1e3", None),
        ("1_000", None),
        ("\t12", None),
        ("١٢", None),
        ("", None),
        ("+", None),
        (None, None),
    ],
)
def test_parse_integer(text: str | None, expected: int | None) -> None:
    assert parse_integer(text) == expected


def test_user_id_cast_stays_within_int() -> None:
    assert user_id_as_int("2147483647") == 2147483647
    assert user_id_as_int("-2147483648") == -2147483648
    assert user_id_as_int("2147483648") is None
    assert user_id_as_int("-2147483649") is None


# --- 2.1 interaction_data ---------------------------------------------------------------


def test_interaction_data_row() -> None:
    state = interactions(
        record(user="12", action="view", item="3", t=T0 + 59, referrer="https://ref/"),
        record(user="12", action="click", item="4", t=T0, item_type="N"),
    )
    assert interaction_data(state) == [
        (
            "https://shop.example.com/",
            "view",
            "3",
            "12",
            "Firefox",
            "s1",
            "mobile",
            "https://ref/",
            datetime(2024, 7, 1, 0, 0, 59, tzinfo=UTC),
        ),
        (
            "https://shop.example.com/",
            "click",
            None,
            "12",
            "Firefox",
            "s1",
            "mobile",
            None,
            D0,
        ),
    ]
    assert interaction_data(state)[0][-1].utcoffset() == timedelta(0)


def test_identical_records_are_two_rows() -> None:
    assert len(interaction_data(interactions(record(), record()))) == 2


@pytest.mark.parametrize("timestamp", ["1719792000.5", "", "soon", "1e9", "99999999999999"])
def test_non_integer_timestamp_is_bad_input_everywhere(timestamp: str) -> None:
    bad = record(user="u", item="B", t=timestamp)
    state = interactions(record(user="u", item="A"), record(user="u", item="A"), bad)
    assert state.bad_interactions == [bad]
    assert len(interaction_data(state)) == 2
    assert co_purchase_counts(state) == set()


def test_number_typed_or_missing_timestamp_is_bad_input() -> None:
    typed_n = record() | {"timestamp": {"N": str(T0)}}
    missing = {k: v for k, v in record().items() if k != "timestamp"}
    state = interactions(typed_n, missing)
    assert state.interactions == []
    assert state.bad_interactions == [typed_n, missing]


def test_timestamp_before_the_epoch() -> None:
    (row,) = interaction_data(interactions(record(t=-1)))
    assert row[-1] == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)


# --- 2.2 co_purchase_counts -------------------------------------------------------------


def test_co_purchase_counts_products_of_purchases() -> None:
    state = interactions(
        record(user="u", item="A"),
        record(user="u", item="A"),
        record(user="u", item="B"),
        record(user="u", action="view", item="C"),
    )
    assert co_purchase_counts(state) == {("A", "B", 2), ("B", "A", 2)}


def test_co_purchase_counts_sum_over_users() -> None:
    state = interactions(
        record(user="u", item="A"),
        record(user="u", item="A"),
        record(user="u", item="B"),
        record(user="v", item="A"),
        record(user="v", item="B"),
        record(user="v", item="C"),
    )
    assert co_purchase_counts(state) == {
        ("A", "B", 3),
        ("B", "A", 3),
        ("A", "C", 1),
        ("C", "A", 1),
        ("B", "C", 1),
        ("C", "B", 1),
    }


def test_co_purchase_counts_needs_string_ids() -> None:
    state = interactions(
        record(user="u", item="A"),
        record(user="u", item=None),
        record(user="u", item="9", item_type="N"),
        record(user=None, item="A"),
        record(user=None, item="B"),
        record(user="anonymous", item="A"),
        record(user="anonymous", item="B"),
        record(user="", item="A"),
        record(user="", item="B"),
    )
    # Non-decimal and empty user ids are ordinary non-NULL ids here.
    assert co_purchase_counts(state) == {("A", "B", 2), ("B", "A", 2)}


def test_co_purchase_counts_one_item_makes_no_pair() -> None:
    assert co_purchase_counts(interactions(record(item="A"), record(item="A"))) == set()


# --- 2.3 user_purchase_totals -----------------------------------------------------------


def test_user_purchase_totals_counts_purchases_of_existing_users() -> None:
    state = interactions(
        record(user="12", action="purchase"),
        record(user="12", action="view", item=None),
        record(user="13", action="view"),
        record(user="14", action="purchase"),
        users=[
            user(12, location="Lyon", gender="Female"),
            user(13, location="", gender="Male"),
            user(15),
        ],
    )
    # An empty location is a value, not NULL.
    assert user_purchase_totals(state) == {
        (12, "user_12", "Lyon", "Female", 1),
        (13, "user_13", "", "Male", 0),
    }


def test_user_purchase_totals_joins_parsed_ids() -> None:
    spellings = [" 12", "+12", "012", "12 "]
    state = interactions(
        *(record(user=spelling) for spelling in spellings),
        *(record(user=bad) for bad in ["12abc", "12.0", "", "4294967308", "1 2"]),
        record(user="12", item="7", item_type="N"),
        record(user=None),
        users=[user(12)],
    )
    assert user_purchase_totals(state) == {(12, "user_12", "unknown", "unknown", 5)}


def test_user_purchase_totals_null_username_and_deleted_user() -> None:
    state = interactions(
        record(user="1"),
        record(user="2"),
        users=[user(1), user(2)],
        changes=[
            {"table": "users", "op": "upsert", "row": {"user_id": 1, "location": "Pune"}},
            {"table": "users", "op": "delete", "row": {"user_id": 2}},
        ],
    )
    assert user_purchase_totals(state) == {(1, "unknown", "Pune", "unknown", 1)}


def test_user_purchase_totals_null_action_type_is_an_interaction() -> None:
    state = interactions(record(user="3", action=None), users=[user(3)])
    assert user_purchase_totals(state) == {(3, "user_3", "unknown", "unknown", 0)}


# --- 2.4 highly_rated_item_details ------------------------------------------------------

CATALOGUE: dict[str, Any] = {
    "categories": [
        {"category_id": 1, "category_name": "Books"},
        {"category_id": 2, "category_name": "Toys"},
    ],
    "items": [item(10), item(11, category_id=2), item(12, status="out_of_stock")],
}


def rated(*changes: dict[str, Any]) -> set[tuple[Any, ...]]:
    reviews = [review(1, 100, 10, 5), review(2, 101, 11, 4), review(3, 102, 10, 3)]
    reviews += [review(4, 103, 12, 5), review(5, 104, 99, 5)]
    return highly_rated_item_details(
        SourceState.from_records(reviews=reviews, changes=changes, **CATALOGUE)
    )


def change(table: str, op: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"table": table, "op": op, "row": row}


def test_highly_rated_keeps_good_reviews_of_in_stock_items() -> None:
    # review 3 rates 3, item 12 is out of stock, item 99 does not exist; no user exists.
    assert rated() == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
    }


def test_highly_rated_follows_changes() -> None:
    assert rated(change("categories", "upsert", {"category_id": 2, "category_name": "Games"})) == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
        (101, 4, 11, "img/11.jpg", 7, "Games"),
    }
    assert rated(change("items", "upsert", item(10, status="out_of_stock"))) == {
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
    }
    assert rated(change("items", "upsert", item(12))) == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
        (103, 5, 12, "img/12.jpg", 7, "Books"),
    }
    assert rated(change("reviews", "upsert", review(1, 100, 10, 3))) == {
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
    }
    assert rated(change("reviews", "upsert", review(3, 102, 10, 4))) == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
        (102, 4, 10, "img/10.jpg", 7, "Books"),
    }
    assert rated(change("reviews", "delete", {"review_id": 2})) == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
    }
    assert rated(change("categories", "delete", {"category_id": 1})) == {
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
    }
    assert rated(change("items", "delete", {"item_id": 11})) == {
        (100, 5, 10, "img/10.jpg", 7, "Books"),
    }
    # The missing item arrives: its review appears.
    assert (104, 5, 99, "img/99.jpg", 7, "Books") in rated(change("items", "upsert", item(99)))


def test_highly_rated_item_moved_to_a_missing_category() -> None:
    assert rated(change("items", "upsert", item(10, category_id=None))) == {
        (101, 4, 11, "img/11.jpg", 7, "Toys"),
    }


def test_highly_rated_omitted_availability_is_null_not_in_stock() -> None:
    row = {"item_id": 10, "category_id": 1, "image_url": "img/10.jpg", "brand_id": 7}
    assert rated(change("items", "upsert", row)) == {(101, 4, 11, "img/11.jpg", 7, "Toys")}


def test_highly_rated_rejects_two_reviews_for_one_user_and_item() -> None:
    with pytest.raises(ValueError, match="two current reviews"):
        rated(change("reviews", "upsert", review(6, 100, 10, 4)))


# --- 2.5 item_shared_by_user_pair -------------------------------------------------------


def test_item_shared_counts_every_action() -> None:
    state = interactions(
        record(user="u", action="view", item="A"),
        record(user="u", action="click", item="A"),
        record(user="v", action="purchase", item="A"),
        record(user="v", action="view", item="B"),
        record(user="w", action=None, item="B"),
        record(user="w", action="view", item=None),
        record(user="x", action="view", item="A", item_type="N"),
        record(user=None, action="view", item="A"),
    )
    assert item_shared_by_user_pair(state) == {
        ("u", "v", 2),
        ("v", "u", 2),
        ("v", "w", 1),
        ("w", "v", 1),
    }


# --- 2.6 purchase_windowed_counts -------------------------------------------------------


def window(user_id: str | None, item_id: str | None, minutes: int, count: int) -> tuple:
    start = D0 + timedelta(minutes=minutes)
    return (user_id, item_id, start, start + timedelta(minutes=30), count)


def test_windows_are_half_open_at_the_boundary() -> None:
    state = interactions(
        record(t=T0),
        record(t=T0 + 29 * MINUTE + 59),
        record(t=T0 + 30 * MINUTE),
        record(t=T0 + 59 * MINUTE + 59),
        record(t=T0 + 60 * MINUTE),
    )
    assert purchase_windowed_counts(state) == {
        window("u", "A", 0, 2),
        window("u", "A", 30, 2),
    }


def test_windows_need_two_purchases_of_one_group() -> None:
    state = interactions(
        record(user="u", item="A", t=T0),
        record(user="u", item="B", t=T0 + 1),
        record(user="v", item="A", t=T0 + 2),
        record(user="u", action="view", item="A", t=T0 + 3),
    )
    assert purchase_windowed_counts(state) == set()


def test_null_ids_are_groups_of_their_own() -> None:
    state = interactions(
        record(item="5", item_type="N", t=T0 + 10 * MINUTE),
        record(item=None, t=T0 + 20 * MINUTE),
        record(user=None, item="A", t=T0 + 5),
        record(user=None, item="A", t=T0 + 6),
        record(item="A", t=T0 + 7),
    )
    assert purchase_windowed_counts(state) == {
        window("u", None, 0, 2),
        window(None, "A", 0, 2),
    }


def test_simulation_closes_a_window_when_the_watermark_reaches_its_end() -> None:
    state = interactions(
        record(t=T0 + 10 * MINUTE),
        record(t=T0 + 20 * MINUTE),
        record(t=T0 + 30 * MINUTE),  # watermark 00:30:00 closes [00:00, 00:30)
        record(t=T0 + 29 * MINUTE + 59),  # late
        record(t=T0 + 31 * MINUTE),
    )
    rows, late = simulate_purchase_windows(state)
    assert rows == {window("u", "A", 0, 2)}
    assert [i.timestamp for i in late] == [T0 + 29 * MINUTE + 59]
    # The window [00:30, 01:00) holds two purchases but is still open.
    assert simulate_purchase_windows(state, end_of_input=True).rows == {
        window("u", "A", 0, 2),
        window("u", "A", 30, 2),
    }


def test_simulation_with_allowed_lateness() -> None:
    state = interactions(
        record(t=T0 + 10 * MINUTE),
        record(t=T0 + 30 * MINUTE),  # watermark 00:29:59 with 1 s lateness: still open
        record(t=T0 + 29 * MINUTE + 59),  # counted
        record(t=T0 + 30 * MINUTE + 1),  # watermark 00:30:00 closes [00:00, 00:30)
        record(t=T0 + 5 * MINUTE),  # late
    )
    rows, late = simulate_purchase_windows(state, allowed_lateness_s=1)
    assert rows == {window("u", "A", 0, 2)}
    assert [i.timestamp for i in late] == [T0 + 5 * MINUTE]
    rows, late = simulate_purchase_windows(state, allowed_lateness_s=0)
    assert rows == set()
    assert [i.timestamp for i in late] == [T0 + 29 * MINUTE + 59, T0 + 5 * MINUTE]


def test_any_interaction_advances_the_watermark() -> None:
    state = interactions(
        record(t=T0),
        record(action="view", item=None, user="someone else", t=T0 + 60 * MINUTE),
        record(t=T0 + 1),
    )
    rows, late = simulate_purchase_windows(state, end_of_input=True)
    assert rows == set()
    assert [i.timestamp for i in late] == [T0 + 1]
    assert purchase_windowed_counts(state) == {window("u", "A", 0, 2)}


def test_negative_lateness_is_refused() -> None:
    with pytest.raises(ValueError, match="lateness"):
        simulate_purchase_windows(SourceState(), allowed_lateness_s=-1)


# --- Properties -------------------------------------------------------------------------

Drawn = tuple[str | None, str | None, str, str | None, int]  # user, item, item type, action, t

drawn_records = st.lists(
    st.tuples(
        st.sampled_from([None, "1", "2", "x", "012"]),
        st.sampled_from([None, "A", "B", "C"]),
        st.sampled_from(["S", "S", "N"]),
        st.sampled_from([None, "purchase", "purchase", "view", "click"]),
        st.integers(T0 - 3 * 1800, T0 + 3 * 1800),
    ),
    max_size=40,
)


def build(drawn: list[Drawn]) -> SourceState:
    return interactions(
        *(record(u, a, i, t, item_type=typ) for u, i, typ, a, t in drawn),
    )


def symmetric(rows: set[tuple[str, str, int]]) -> bool:
    return {(b, a, n) for a, b, n in rows} == rows


@given(drawn_records)
def test_pair_tables_are_symmetric_and_positive(drawn: list[Drawn]) -> None:
    state = build(drawn)
    for rows in (co_purchase_counts(state), item_shared_by_user_pair(state)):
        assert symmetric(rows)
        assert all(a != b and n > 0 for a, b, n in rows)


@given(drawn_records)
def test_co_purchase_row_sums(drawn: list[Drawn]) -> None:
    """sum_B co(A, B) = sum_u p(u, A) * (P(u) - p(u, A)), P(u) = u's purchases of items."""
    bought: dict[str, Counter[str]] = defaultdict(Counter)
    for u, i, typ, a, _ in drawn:
        if a == "purchase" and u is not None and i is not None and typ == "S":
            bought[u][i] += 1
    expected = Counter()
    for items in bought.values():
        for i, n in items.items():
            expected[i] += n * (items.total() - n)
    actual = Counter()
    for a, _, n in co_purchase_counts(build(drawn)):
        actual[a] += n
    assert actual == +expected


@given(drawn_records)
def test_item_shared_row_sums(drawn: list[Drawn]) -> None:
    """sum_B shared(A, B) = sum_i c(A, i) * (C(i) - c(A, i)), C(i) = interactions on i."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for u, i, typ, _, _ in drawn:
        if u is not None and i is not None and typ == "S":
            seen[i][u] += 1
    expected = Counter()
    for users in seen.values():
        for u, n in users.items():
            expected[u] += n * (users.total() - n)
    actual = Counter()
    for a, _, n in item_shared_by_user_pair(build(drawn)):
        actual[a] += n
    assert actual == +expected


@given(drawn_records)
def test_event_time_order_without_lateness_is_the_batch_query(drawn: list[Drawn]) -> None:
    ordered = build(sorted(drawn, key=lambda d: d[4]))
    closed, late = simulate_purchase_windows(ordered)
    assert late == []
    assert closed <= purchase_windowed_counts(ordered)
    assert simulate_purchase_windows(ordered, end_of_input=True).rows == (
        purchase_windowed_counts(ordered)
    )


@given(drawn_records)
def test_enough_lateness_makes_any_order_the_batch_query(drawn: list[Drawn]) -> None:
    state = build(drawn)
    result = simulate_purchase_windows(state, allowed_lateness_s=6 * 1800, end_of_input=True)
    assert result.late == []
    assert result.rows == purchase_windowed_counts(state)


@given(drawn_records)
def test_late_means_an_earlier_record_reached_the_window_end(drawn: list[Drawn]) -> None:
    expected_late = []
    latest = None
    for _, _, _, action, t in drawn:
        end = t - t % 1800 + 1800
        if action == "purchase" and latest is not None and latest >= end:
            expected_late.append(t)
        latest = t if latest is None else max(latest, t)
    late = simulate_purchase_windows(build(drawn)).late
    assert [i.timestamp for i in late] == expected_late


# --- The shipped demo dataset -----------------------------------------------------------


def test_demo_dataset_sanity() -> None:
    state = SourceState.from_directory(REPO / "seed" / "demo")
    tables = derived_tables(state)
    assert all(tables.values()), [name for name, rows in tables.items() if not rows]
    assert len(tables["interaction_data"]) == len(state.interactions) > 2000
    assert state.bad_interactions == []
    assert symmetric(tables["co_purchase_counts"])
    assert symmetric(tables["item_shared_by_user_pair"])
    # Edge cases of docs/seed-data.md: two purchases with an N-typed item_id (user 87 at
    # 1704287437 and 1704288557, i.e. 13:10:37 and 13:29:17 on 2024-01-03), and ids
    # that are not decimal integers or name no user (the demo has users 1..200).
    start = datetime(2024, 1, 3, 13, 0, tzinfo=UTC)
    assert ("87", None, start, start + timedelta(minutes=30), 2) in tables[
        "purchase_windowed_counts"
    ]
    sharers = {a for a, _, _ in tables["item_shared_by_user_pair"]}
    assert {"anonymous", "12abc", "201", "202"} <= sharers
    totals = {row[0] for row in tables["user_purchase_totals"]}
    assert totals.isdisjoint({201, 202})
    assert totals <= state.users.keys()


# --- compare.diff -----------------------------------------------------------------------


def small_state() -> SourceState:
    return interactions(
        record(user="12", item="A", t=T0),
        record(user="12", item="B", t=T0 + 60),
        record(user="12", item="B", t=T0 + 120),
        record(user="13", action="view", item="A", t=T0 + 180),
        users=[user(12)],
        categories=[{"category_id": 1, "category_name": "Books"}],
        items=[item(10)],
        reviews=[review(1, 12, 10, 5)],
    )


def test_diff_is_empty_for_the_same_content_in_another_shape() -> None:
    expected = derived_tables(small_state())
    tokyo = timezone(timedelta(hours=9))
    actual = {
        name: [
            tuple(v.astimezone(tokyo) if isinstance(v, datetime) else v for v in row)
            for row in reversed(list(rows))
        ]
        for name, rows in expected.items()
    }
    assert diff(expected, actual) == []


def test_diff_reports_missing_extra_and_differing_rows() -> None:
    expected = {"co_purchase_counts": {("A", "B", 2), ("B", "A", 2), ("A", "C", 1)}}
    actual = {"co_purchase_counts": [("A", "B", 3), ("B", "A", 2), ("C", "D", 1)]}
    assert diff(expected, actual) == [
        "co_purchase_counts: expected 3 rows, got 3",
        "  missing rows (1):",
        "    (item_id_A='A', item_id_B='C', co_purchase_count=1)",
        "  extra rows (1):",
        "    (item_id_A='C', item_id_B='D', co_purchase_count=1)",
        "  differing rows (1):",
        "    key {'item_id_A': 'A', 'item_id_B': 'B'}: co_purchase_count expected 2 got 3",
    ]


def test_diff_reports_types_that_differ() -> None:
    expected = {"item_shared_by_user_pair": {("1", "2", 1)}}
    actual = {"item_shared_by_user_pair": [("1", "2", True)]}
    assert diff(expected, actual)[-1] == (
        "    key {'user_A': '1', 'user_B': '2'}: shared_item_count expected 1 got True"
    )
    expected_window = {"purchase_windowed_counts": {window("u", "A", 0, 2)}}
    naive_end = [("u", "A", D0, datetime(2024, 7, 1, 0, 30), 2)]
    assert diff(expected_window, {"purchase_windowed_counts": naive_end})[-1] == (
        "    key {'user_id': 'u', 'item_id': 'A', 'window_start': "
        f"{D0!r}}}: window_end expected {D0 + timedelta(minutes=30)!r} "
        "got datetime.datetime(2024, 7, 1, 0, 30)"
    )


def test_diff_interaction_data_is_a_multiset() -> None:
    row = interaction_data(small_state())[0]
    lines = diff({"interaction_data": [row, row]}, {"interaction_data": [row]})
    assert lines[:2] == ["interaction_data: expected 2 rows, got 1", "  missing rows (1):"]
    assert lines[2].endswith(" x1")
    assert len(lines) == 3


def test_diff_is_bounded_and_names_missing_tables() -> None:
    expected = {
        "user_purchase_totals": {(n, "u", "unknown", "unknown", 0) for n in range(25)},
        "highly_rated_item_details": set(),
    }
    lines = diff(expected, {"user_purchase_totals": []}, limit=10)
    assert lines[0] == "highly_rated_item_details: table missing"
    assert lines[1:3] == ["user_purchase_totals: expected 25 rows, got 0", "  missing rows (25):"]
    assert lines[-1] == "    ... and 15 more"
    assert len(lines) == 14


def test_diff_reports_repeated_keys() -> None:
    expected = {"user_purchase_totals": {(1, "u", "unknown", "unknown", 1)}}
    actual = {"user_purchase_totals": [(1, "u", "unknown", "unknown", 1)] * 2}
    assert diff(expected, actual)[-2:] == [
        "  rows repeating a key (1):",
        "    (user_id=1, username='u', location='unknown', gender='unknown', total_purchases=1)",
    ]


# --- compare.read_tables against PostgreSQL ---------------------------------------------

DDL = """
CREATE TABLE {s}.interaction_data (source_topic text, source_partition int,
  source_offset bigint, current_page_url text, action_type text, item_id text,
  user_id text, browser_type text, session_id text, device_type text, referrer_url text,
  event_time_ltz timestamptz, PRIMARY KEY (source_topic, source_partition, source_offset));
CREATE TABLE {s}.co_purchase_counts ("item_id_A" text, "item_id_B" text,
  co_purchase_count bigint, PRIMARY KEY ("item_id_A", "item_id_B"));
CREATE TABLE {s}.user_purchase_totals (user_id integer PRIMARY KEY, username text,
  location text, gender text, total_purchases bigint);
CREATE TABLE {s}.highly_rated_item_details (user_id integer, rating_score integer,
  item_id integer, image_url text, brand_id integer, category_name text,
  PRIMARY KEY (user_id, item_id));
CREATE TABLE {s}.item_shared_by_user_pair ("user_A" text, "user_B" text,
  shared_item_count bigint, PRIMARY KEY ("user_A", "user_B"));
CREATE TABLE {s}.purchase_windowed_counts (user_id text, item_id text,
  window_start timestamptz, window_end timestamptz, purchase_count bigint,
  UNIQUE NULLS NOT DISTINCT (user_id, item_id, window_start));
"""


@pytest.mark.integration
def test_read_tables_reads_what_the_model_expects(local_stack) -> None:
    schema = f"ref_{uuid.uuid4().hex[:8]}"
    state = small_state()
    state.append_interaction(record(user="12", item="5", item_type="N", t=T0 + 240))
    state.append_interaction(record(user="12", item="5", item_type="N", t=T0 + 300))
    expected = derived_tables(state)
    url = local_stack.postgres_url
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"),
        connect_args={"options": "-c timezone=Asia/Tokyo"},
    )
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        for statement in DDL.format(s=schema).split(";"):
            if statement.strip():
                connection.execute(sa.text(statement))
        for name, rows in expected.items():
            columns = TABLES[name].columns
            extra = ("source_topic", "source_partition", "source_offset")
            names = (*extra, *columns) if name == "interaction_data" else columns
            quoted = ", ".join(f'"{c}"' for c in names)
            params = ", ".join(f":p{n}" for n in range(len(names)))
            insert = sa.text(f"INSERT INTO {schema}.{name} ({quoted}) VALUES ({params})")
            for offset, row in enumerate(rows):
                values = ("t", 0, offset, *row) if name == "interaction_data" else row
                connection.execute(insert, {f"p{n}": v for n, v in enumerate(values)})
    try:
        assert expected["purchase_windowed_counts"] == {
            window("12", "B", 0, 2),
            window("12", None, 0, 2),
        }
        actual = read_tables(engine, schema)
        assert diff(expected, actual) == []
        assert all(row[-1].tzinfo is UTC for row in actual["interaction_data"])
        absent = read_tables(url, f"{schema}_absent")
        assert absent == {}
        assert diff(expected, absent)[0] == "co_purchase_counts: table missing"
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
