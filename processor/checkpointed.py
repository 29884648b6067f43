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
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import orjson
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.sinks import BaseSink
from quixstreams.state.base import State

Key = Hashable
# Namespace of our keys inside Quix's store, apart from anything Quix keeps there.
STATE_PREFIX = b"pstreams"
# Entries per internal message: a pair count entry is about 30 bytes of JSON, a review
# forwarded to its item about 60, so a message stays far below Kafka's 1 MB.
MAX_ENTRIES_PER_MESSAGE = 5_000


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
    key gives `factory()`), and every value accessed is written back at the checkpoint."""

    __slots__ = ("_factory", "_load")

    def __init__(self, load: Callable[[Key], Any], factory: Callable[[], Any]) -> None:
        super().__init__()
        self._load = load
        self._factory = factory

    def __missing__(self, key: Key) -> Any:
        value = self._load(key)
        if value is None:
            value = self._factory()
        self[key] = value
        return value


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
        """The table `name` of `partition`, valid while the current record is processed."""
        self._current()
        table = self._tables.get((partition, name))
        if table is None:
            state = self._state(partition)
            table = self._tables[(partition, name)] = _Table(
                lambda key: state.get((name, key)), factory
            )
        return table

    def write_back(self) -> None:
        """Persist every value accessed into the checkpoint's store transactions.

        Empty values (None, 0, empty containers) are deleted rather than stored.
        """
        if not self._current():
            return
        for (partition, name), table in self._tables.items():
            state = self._state(partition)
            for key, value in table.items():
                if value:
                    state.set((name, key), value)
                else:
                    state.delete((name, key))
        self._reset()


class Outbox(_CheckpointScoped):
    """Messages to an internal topic, merged per key within a checkpoint, sent at its commit.

    `entries(partition)[key]` is the dictionary of entries pending for `key` from
    `partition`; a key changed by a thousand records in one checkpoint is sent once, as
    `{"p": partition, "e": entries}`. Entries carry absolute values, so a message that
    arrives twice changes nothing, and each entry can be applied on its own: a key with
    more than `MAX_ENTRIES_PER_MESSAGE` pending entries is sent as several messages, so
    that no message grows with the key's group (Kafka refuses those over 1 MB). `levels`
    is how many levels of dictionaries hold entries (2: `{kind: {id: value}}`).
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
            for key, entries in pending.items():
                for part in split_entries(entries, self._levels, MAX_ENTRIES_PER_MESSAGE):
                    producer.produce(
                        topic=self._topic,
                        key=key.encode(),
                        value=orjson.dumps({"p": partition, "e": part}),
                    )
        self._reset()


def split_entries(entries: dict[str, Any], levels: int, limit: int) -> Iterator[dict[str, Any]]:
    """`entries` in parts of at most `limit` entries each, nested as they are."""
    if _count(entries, levels) <= limit:
        yield entries
        return
    part: dict[str, Any] = {}
    size = 0
    for path, value in _entries(entries, levels):
        node = part
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
        size += 1
        if size == limit:
            yield part
            part, size = {}, 0
    if size:
        yield part


def _count(entries: dict[str, Any], levels: int) -> int:
    if levels == 1:
        return len(entries)
    return sum(_count(inner, levels - 1) for inner in entries.values())


def _entries(entries: dict[str, Any], levels: int) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, value in entries.items():
        if levels == 1:
            yield (name,), value
        else:
            for path, leaf in _entries(value, levels - 1):
                yield (name, *path), leaf


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
