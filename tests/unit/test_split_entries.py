"""An outbox sends a key's entries in messages of bounded size, nested as they are."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from processor.checkpointed import split_entries

names = st.text("abc", min_size=1, max_size=3)
flat = st.dictionaries(names, st.integers(), max_size=30)
nested = st.dictionaries(names, st.dictionaries(names, st.none() | st.integers(), min_size=1))


def merged(parts: list[dict[str, Any]], levels: int) -> dict[str, Any]:
    whole: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if levels == 1:
                whole[name] = value
            else:
                whole.setdefault(name, {}).update(value)
    return whole


def entries_in(part: dict[str, Any], levels: int) -> int:
    return len(part) if levels == 1 else sum(len(inner) for inner in part.values())


@given(entries=flat, limit=st.integers(1, 10))
def test_flat_entries_come_in_parts_of_at_most_the_limit(entries: dict, limit: int) -> None:
    parts = list(split_entries(entries, 1, limit))
    assert all(entries_in(part, 1) <= limit for part in parts)
    assert merged(parts, 1) == entries
    assert len(parts) == -(-len(entries) // limit) or (not entries and parts == [{}])


@given(entries=nested, limit=st.integers(1, 10))
def test_nested_entries_keep_their_kind(entries: dict, limit: int) -> None:
    parts = list(split_entries(entries, 2, limit))
    assert all(entries_in(part, 2) <= limit for part in parts)
    assert merged(parts, 2) == entries


def test_a_small_message_is_sent_as_it_is() -> None:
    entries = {"review": {"1": {"user_id": 3, "rating": 5}}, "item": {"7": None}}
    assert list(split_entries(entries, 2, 5_000)) == [entries]
