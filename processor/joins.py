"""Joins of changelogs, done where the rows meet: at the key they join on.

A SQL join of current tables, kept up to date from their change streams, needs every row
that joins at a key on the partition of that key. Two operators do it:

- `forward` sends each row of a change stream to the key it joins at, as one named entry
  (`kind`, `id`) of that key, with an absolute value (None: the row is no longer there).
  A row whose join key changed is withdrawn from its old key, so each key holds exactly
  the rows that join there now.
- `gather` keeps, per key, everything forwarded to it (`{kind: {id: value}}`), and after
  each message calls a reaction with a `Gathering`: the key's entries and the earlier
  values of those the message changed, so that a reaction can cost what changed rather
  than what the key holds. It returns the key's table changes and may send entries on to
  other keys (a foreign key of the gathered row, the replies of a lookup).

Messages carry absolute values and are merged per key within a checkpoint (`Outbox`), so a
message that arrives twice changes nothing, and the entries of one (kind, id) at one key
arrive in the order they were sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from processor.cdc.postgres import RowChange
from processor.changes import TableChange
from processor.checkpointed import Outbox
from processor.pipeline import Pipeline

# The entries gathered at one key: kind -> {id: value}.
Gathered = dict[str, dict[str, Any]]


class Gathering(NamedTuple):
    """A key's entries after a message (`now`), and the earlier value of each entry the
    message changed (`was`; None: it was not there)."""

    now: Gathered
    was: Gathered

    def get(self, kind: str, entry: str) -> Any:
        return self.now.get(kind, {}).get(entry)

    def before(self, kind: str, entry: str) -> Any:
        """The entry as it was before the message."""
        was = self.was.get(kind, {})
        return was[entry] if entry in was else self.get(kind, entry)

    def changed(self, kind: str) -> dict[str, Any]:
        """The entries of `kind` the message changed, with their earlier values."""
        return self.was.get(kind, {})

    def all_before(self, kind: str) -> dict[str, Any]:
        """Every entry of `kind` as it was before the message."""
        was = self.was.get(kind, {})
        entries = {**self.now.get(kind, {}), **was}
        return {entry: value for entry, value in entries.items() if value is not None}


class Send(Protocol):
    def __call__(self, key: str, kind: str, entry: str, value: Any) -> None:
        """Entry `entry` of `kind` at `key` is now `value` (None: gone)."""


def _sender(outbox: Outbox, partition: int) -> Send:
    pending = outbox.entries(partition)

    def send(key: str, kind: str, entry: str, value: Any) -> None:
        pending[key].setdefault(kind, {})[entry] = value

    return send


def forward(
    pipeline: Pipeline,
    changes: StreamingDataFrame,
    topic: Topic,
    kind: str,
    *,
    id_column: str,
    join_column: str,
    value: Callable[[dict[str, Any]], Any],
) -> None:
    """Each row change of `changes` to `topic`, at the key the row joins at (its
    `join_column`; NULL: nowhere), as the entry of `kind` named by its `id_column` (a
    primary key column), with `value(row)`."""
    store = pipeline.store(changes)
    outbox = pipeline.outbox(changes, topic, levels=2)

    def route(change: RowChange) -> None:
        partition = message_context().partition
        placed = store.table(partition, f"{kind} joins at", factory=lambda: None)
        name, row = str(change.key[id_column]), change.row
        previous = placed[name]
        joins_at = None if row is None or row.get(join_column) is None else str(row[join_column])
        send = _sender(outbox, partition)
        if previous is not None and previous != joins_at:
            send(previous, kind, name, None)
        if joins_at is not None:
            send(joins_at, kind, name, value(row))  # type: ignore[arg-type]
        placed[name] = joins_at

    changes.update(route)


def gather(
    pipeline: Pipeline,
    topic: Topic,
    react: Callable[[str, Gathering, Send], list[TableChange]],
    replies: Topic,
) -> StreamingDataFrame:
    """The entries forwarded to `topic`, kept per key; returns the stream of what
    `react(key, gathering, send)` returns for each message, `send` going to `replies`."""
    stream = pipeline.app.dataframe(topic)
    store = pipeline.store(stream)
    outbox = pipeline.outbox(stream, replies, levels=2)

    def update(message: dict[str, Any], key: str, _ts: int, _headers: Any) -> list[TableChange]:
        partition = message_context().partition
        gathered: Gathered = store.paged(partition, "gathered", levels=2)[key]
        was: Gathered = {}
        for kind, entries in message["e"].items():
            held = gathered.setdefault(kind, {})
            earlier = was.setdefault(kind, {})
            for name, value in entries.items():
                old = held.pop(name, None) if value is None else held.get(name)
                if value is not None:
                    held[name] = value
                if old != value:
                    earlier[name] = old
            if not held:
                del gathered[kind]
        return react(key, Gathering(gathered, was), _sender(outbox, partition))

    return stream.apply(update, metadata=True)
