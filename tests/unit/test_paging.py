"""Maps that grow with the data are stored in pages and sent in parts of bounded size,
and come back whole: `processor.paging` and the paged tables of `processor.checkpointed`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quixstreams.state.base import State
from quixstreams.state.memory.partition import MemoryStorePartition

from processor import checkpointed, paging
from processor.checkpointed import STATE_PREFIX, _PagedTable

names = st.text("abcdef", min_size=1, max_size=4)
counts = st.integers(-(2**63), 2**63 - 1)  # what JSON encodes as integers
flat = st.dictionaries(names, counts, max_size=40)
nested = st.dictionaries(names, st.dictionaries(names, st.none() | counts, min_size=1))


def merged(pieces: list[dict[str, Any]], levels: int) -> dict[str, Any]:
    whole: dict[str, Any] = {}
    for piece in pieces:
        paging.merge(whole, piece, levels)
    return whole


@given(entries=flat, limit=st.integers(1, 200))
def test_flat_parts_fit_the_limit_and_merge_back(entries: dict, limit: int) -> None:
    parts = [orjson.loads(part) for part in paging.parts(entries, 1, orjson.dumps, limit)]
    assert merged(parts, 1) == entries
    for part in parts:
        assert len(orjson.dumps(part)) <= limit or len(part) <= 1


@given(entries=nested, limit=st.integers(1, 200))
def test_nested_parts_keep_their_kind(entries: dict, limit: int) -> None:
    parts = [orjson.loads(part) for part in paging.parts(entries, 2, orjson.dumps, limit)]
    assert merged(parts, 2) == entries
    for part in parts:
        assert len(orjson.dumps(part)) <= limit or paging.count(part, 2) <= 1


def test_a_small_message_is_one_part() -> None:
    entries = {"review": {"1": {"user_id": 3, "rating": 5}}, "item": {"7": None}}
    assert list(paging.parts(entries, 2, orjson.dumps, 1000)) == [orjson.dumps(entries)]


@given(entries=nested, depth=st.integers(0, 4))
def test_pages_hold_each_entry_once(entries: dict, depth: int) -> None:
    pages = paging.pages(entries, 2, depth)
    assert len(pages) == 2**depth
    assert merged(pages, 2) == entries
    assert sum(paging.count(page, 2) for page in pages) == paging.count(entries, 2)


class Recording(State):
    """A real store partition's state, remembering the keys each checkpoint wrote."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.written: list[Any] = []

    def get(self, key: Any, default: Any = None) -> Any:
        return self._state.get(key, default)

    def get_bytes(self, key: Any, default: Any = None) -> Any:
        return self._state.get_bytes(key, default)

    def set(self, key: Any, value: Any, ttl: Any = None) -> None:
        self.written.append(key)
        self._state.set(key, value)

    def set_bytes(self, key: Any, value: bytes, ttl: Any = None) -> None:
        self.written.append(key)
        self._state.set_bytes(key, value)

    def delete(self, key: Any) -> None:
        self.written.append(key)
        self._state.delete(key)

    def exists(self, key: Any) -> bool:
        return self._state.exists(key)


class Store:
    """Checkpoints of one paged table over a real (in-memory) Quix store partition."""

    def __init__(self, levels: int) -> None:
        self.partition = MemoryStorePartition(changelog_producer=None)
        self.levels = levels

    def checkpoint(self, change: Any) -> list[Any]:
        """Applies `change(table)` in one checkpoint; returns the keys it wrote."""
        transaction = self.partition.begin()
        state = Recording(transaction.as_state(prefix=STATE_PREFIX))
        table = _PagedTable(state, "t", self.levels)
        change(table)
        table.write_back()
        transaction.prepare(processed_offsets={})
        transaction.flush()
        return state.written

    def stored(self) -> dict[str, bytes]:
        """Every value stored, by key: the pages."""
        transaction = self.partition.begin()
        state = transaction.as_state(prefix=STATE_PREFIX)
        found = {}
        for key in ("hot", "cold"):
            for page in range(64):
                name = ("t", key) if page == 0 else ("t", key, page)
                data = state.get_bytes(name)
                if data is not None:
                    found[f"{key}/{page}"] = data
        return found

    def read(self, key: str) -> dict:
        values: dict[str, dict] = {}
        self.checkpoint(lambda table: values.update({key: dict(table[key])}))
        return values[key]


operations = st.lists(
    st.tuples(st.sampled_from(("hot", "cold")), st.sampled_from(("set", "pop")), names),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(checkpoints=st.lists(operations, min_size=1, max_size=8))
def test_paged_values_come_back_whole_in_pages_of_bounded_size(
    checkpoints: list[list[tuple[str, str, str]]],
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpointed, "PAGE_BYTES", 60)
        store, expected = Store(levels=1), {"hot": {}, "cold": {}}
        for number, operations_ in enumerate(checkpoints):

            def change(table: dict, operations_: Any = operations_, number: int = number) -> None:
                for key, operation, entry in operations_:
                    if operation == "set":
                        table[key][entry] = expected[key][entry] = number
                    else:
                        table[key].pop(entry, None)
                        expected[key].pop(entry, None)

            store.checkpoint(change)
            assert store.read("hot") == expected["hot"]
            assert store.read("cold") == expected["cold"]
            for page in store.stored().values():
                assert len(page) <= 60


def test_a_change_rewrites_only_its_page() -> None:
    """60,000 members of one group, at the production page size: pages of at most
    `PAGE_BYTES`, and one member more rewrites one page, not the group."""
    store = Store(levels=1)
    members = {f"user-{n}": n for n in range(60_000)}
    store.checkpoint(lambda table: table["hot"].update(members))
    pages = store.stored()
    assert len(pages) > 8
    assert max(len(page) for page in pages.values()) <= checkpointed.PAGE_BYTES
    assert len(orjson.dumps(members)) > 1_000_000

    def one_more(table: dict) -> None:
        table["hot"]["user-60000"] = 1

    assert len(store.checkpoint(one_more)) == 1
    assert store.read("hot") == {**members, "user-60000": 1}


def test_an_emptied_value_leaves_no_pages() -> None:
    store = Store(levels=2)
    store.checkpoint(lambda table: table["hot"].update({"w": {str(n): n for n in range(9_000)}}))
    assert len(store.stored()) > 1
    store.checkpoint(lambda table: table["hot"].clear())
    assert store.stored() == {}
