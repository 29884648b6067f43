"""Per-checkpoint write-back state and output: heavy fan-out at dictionary speed.

Quix Streams' public state API reaches only the current message's key and serializes a
value on every `set`. The join-shaped tables touch hundreds of keys per record, so they
work on plain dictionaries instead and let Quix persist the result once per checkpoint:

- `CheckpointedStore` caches a stream's RocksDB store (Quix's own, changelog-backed) under
  any keys of the record's partition. Values are read from the store on first use and
  written back, once each, when the checkpoint commits.
- `Outbox` collects what a stage sends to the next one, coalesced per destination key,
  and produces it when the checkpoint commits.
- `CheckpointHook` is the "when the checkpoint commits": a Quix sink, so Quix calls its
  `flush` at the start of every commit, before it produces changelogs, flushes the
  producer and commits the offsets (in one Kafka transaction under exactly-once).

Both caches belong to one checkpoint. When Quix starts a new checkpoint without this one
committing (backpressure, revocation, failure), they are dropped, so nothing a discarded
checkpoint did survives it; the replayed records redo it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

import orjson
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.sinks import BaseSink
from quixstreams.state.base import State

from processor import paging

Key = Hashable
# Namespace of our keys inside Quix's store, apart from anything Quix keeps there.
STATE_PREFIX = b"pstreams"
# Largest page of a paged state value, and largest internal message, in bytes of JSON:
# each page is one changelog message, and Kafka refuses messages over 1 MB.
PAGE_BYTES = 64 * 1024
MESSAGE_BYTES = 256 * 1024


class _CheckpointScoped:
    """Something whose contents are only valid within one Quix checkpoint."""

    def __init__(self, sdf: StreamingDataFrame) -> None:
        self._sdf = sdf
        self._checkpoint: object | None = None

    def _current(self) -> bool:
        """True when still in the checkpoint of our contents; else start afresh."""
        checkpoint = self._sdf.processing_context.checkpoint
        if checkpoint is self._checkpoint:
            return True
        self._checkpoint = checkpoint
        self._reset()
        return False

    def _reset(self) -> None:
        raise NotImplementedError


class _Table(dict):
    """One named table of a partition's store: values load on first access (a missing
    key gives `factory()`), and every value accessed is written back at the checkpoint,
    whole: for values of bounded size."""

    __slots__ = ("_factory", "_name", "_state")

    def __init__(self, state: State, name: str, factory: Callable[[], Any]) -> None:
        super().__init__()
        self._state = state
        self._name = name
        self._factory = factory

    def __missing__(self, key: Key) -> Any:
        value = self._load(key)
        if value is None:
            value = self._factory()
        self[key] = value
        return value

    def _load(self, key: Key) -> Any:
        return self._state.get((self._name, key))

    def write_back(self) -> None:
        """Empty values (None, 0, empty containers) are deleted rather than stored."""
        for key, value in self.items():
            if value:
                self._state.set((self._name, key), value)
            else:
                self._state.delete((self._name, key))


class _PagedTable(_Table):
    """A table of maps that grow with the data, each stored in pages of at most
    `PAGE_BYTES` (`processor.paging`), so no stored value or changelog message grows
    with a key's skew, and a checkpoint rewrites only the pages whose bytes changed.

    The first page, at the value's own key, is `[depth, entries]`; the others, at
    `(key, page)`, hold entries only (absent when empty). A value loaded from one page is
    rewritten whole when accessed, like any other; one of several pages keeps its pages'
    bytes until the checkpoint, to tell which ones changed.
    """

    __slots__ = ("_levels", "_stored")

    def __init__(self, state: State, name: str, levels: int) -> None:
        super().__init__(state, name, dict)
        self._levels = levels
        self._stored: dict[Key, list[object]] = {}

    def _page_key(self, key: Key, page: int) -> tuple[Any, ...]:
        return (self._name, key) if page == 0 else (self._name, key, page)

    def _load(self, key: Key) -> Any:
        first = self._state.get_bytes(self._page_key(key, 0))
        if first is None:
            return None
        depth, value = orjson.loads(first)
        if depth:
            stored = self._stored[key] = [first]
            for page in range(1, 1 << depth):
                encoded = self._state.get_bytes(self._page_key(key, page))
                stored.append(encoded)
                if encoded is not None:
                    paging.merge(value, orjson.loads(encoded), self._levels)
        return value

    def write_back(self) -> None:
        for key, value in self.items():
            # What is stored, page by page (beyond them: nothing); the first page of a value
            # loaded from one page is written anyway.
            stored: list[object] = self._stored.get(key) or [_UNKNOWN]
            encoded = self._encode(value, len(stored).bit_length() - 1) if value else [None]
            for page in range(max(len(stored), len(encoded))):
                new = encoded[page] if page < len(encoded) else None
                if (stored[page] if page < len(stored) else None) == new:
                    continue
                if new is None:
                    self._state.delete(self._page_key(key, page))
                else:
                    self._state.set_bytes(self._page_key(key, page), new)

    def _encode(self, value: dict, depth: int) -> list[bytes | None]:
        """The pages of `value`, encoded, at the depth (from the stored one on) at which
        none is over `PAGE_BYTES` unless it holds a single entry; one level less when the
        pages are mostly empty (under an eighth of the limit on average)."""
        encoded = self._pages(value, depth)
        while encoded is None:
            depth += 1
            encoded = self._pages(value, depth)
        while depth and sum(len(page or b"") for page in encoded) * 8 < PAGE_BYTES << depth:
            fewer = self._pages(value, depth - 1)
            if fewer is None:
                break
            depth, encoded = depth - 1, fewer
        return encoded

    def _pages(self, value: dict, depth: int) -> list[bytes | None] | None:
        """The encoded pages at `depth`, or None when one of them is too large to keep."""
        pages = paging.pages(value, self._levels, depth)
        encoded = [orjson.dumps([depth, pages[0]])]
        encoded += [orjson.dumps(page) if page else None for page in pages[1:]]
        for page, data in zip(pages, encoded, strict=True):
            if data is not None and len(data) > PAGE_BYTES and paging.count(page, self._levels) > 1:
                return None
        return encoded


# Stands for the stored first page of a value loaded from a single page: never equal to
# its new bytes, so that page is always written back (as `_Table` does).
_UNKNOWN = object()


class CheckpointedStore(_CheckpointScoped):
    """A write-back cache over one stream's store; see the module docstring.

    State is organized in named tables per partition: `table(partition, "totals")[key]`.
    Stages fetch a table once per record and then work on it as a plain dictionary.
    """

    def __init__(self, sdf: StreamingDataFrame) -> None:
        super().__init__(sdf)
        sdf.register_store()
        self._tables: dict[tuple[int, str], _Table] = {}

    def _reset(self) -> None:
        self._tables = {}

    def _state(self, partition: int) -> State:
        transaction = self._sdf.processing_context.checkpoint.get_store_transaction(
            stream_id=self._sdf.stream_id, partition=partition
        )
        return transaction.as_state(prefix=STATE_PREFIX)

    def table(self, partition: int, name: str, factory: Callable[[], Any] = dict) -> dict:
        """The table `name` of `partition`, valid while the current record is processed;
        for values of bounded size (a count, a row, one entry per partition)."""
        return self._table(partition, name, lambda state: _Table(state, name, factory))

    def paged(self, partition: int, name: str, levels: int = 1) -> dict:
        """A table whose values are maps that grow with the data (their entries `levels`
        dictionaries deep), stored in pages of bounded size."""
        return self._table(partition, name, lambda state: _PagedTable(state, name, levels))

    def _table(self, partition: int, name: str, create: Callable[[State], _Table]) -> dict:
        self._current()
        table = self._tables.get((partition, name))
        if table is None:
            table = self._tables[(partition, name)] = create(self._state(partition))
        return table

    def write_back(self) -> None:
        """Persist every value accessed into the checkpoint's store transactions."""
        if not self._current():
            return
        for table in self._tables.values():
            table.write_back()
        self._reset()


class Outbox(_CheckpointScoped):
    """Messages to an internal topic, merged per key within a checkpoint, sent at its commit.

    `entries(partition)[key]` is the dictionary of entries pending for `key` from
    `partition`; a key changed by a thousand records in one checkpoint is sent once, as
    `{"p": partition, "e": entries}`. Entries carry absolute values, so a message that
    arrives twice changes nothing, and each entry can be applied on its own: a key whose
    entries encode to more than `MESSAGE_BYTES` is sent as several messages
    (`paging.parts`), so that no message grows with the key's group. `levels` is how many
    levels of dictionaries hold entries (2: `{kind: {id: value}}`).
    """

    def __init__(self, sdf: StreamingDataFrame, topic: str, levels: int = 1) -> None:
        super().__init__(sdf)
        self._topic = topic
        self._levels = levels
        self._pending: dict[int, defaultdict[str, dict[str, Any]]] = {}

    def _reset(self) -> None:
        self._pending = {}

    def entries(self, partition: int) -> defaultdict[str, dict[str, Any]]:
        self._current()
        pending = self._pending.get(partition)
        if pending is None:
            pending = self._pending[partition] = defaultdict(dict)
        return pending

    def send(self) -> None:
        """Produce the pending messages within the checkpoint's (transactional) producer."""
        if not self._current():
            return
        producer = self._sdf.processing_context.producer
        for partition, pending in self._pending.items():

            def encode(entries: dict[str, Any], partition: int = partition) -> bytes:
                return orjson.dumps({"p": partition, "e": entries})

            for key, entries in pending.items():
                for value in paging.parts(entries, self._levels, encode, MESSAGE_BYTES):
                    producer.produce(topic=self._topic, key=key.encode(), value=value)
        self._reset()


class CheckpointHook(BaseSink):
    """Runs callbacks at the start of every checkpoint commit (see the module docstring).

    It must be registered with Quix's sink manager before the table's sink, so that what
    the callbacks hand to the table is flushed in the same checkpoint. Stages' callbacks
    run first (they read the stores), the stores' write-backs last.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stages: list[Callable[[], None]] = []
        self._stores: list[CheckpointedStore] = []

    def on_checkpoint(self, callback: Callable[[], None]) -> None:
        self._stages.append(callback)

    def persist(self, store: CheckpointedStore) -> None:
        self._stores.append(store)

    def add(self, *_args: Any, **_kwargs: Any) -> None:
        """Records do not pass through the hook; it acts only at checkpoints."""

    def flush(self) -> None:
        for callback in self._stages:
            callback()
        for store in self._stores:
            store.write_back()
