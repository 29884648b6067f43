"""The one value shape that topologies hand to sinks: a row of a derived table, or its removal."""

from __future__ import annotations

from typing import Any, NamedTuple


class TableChange(NamedTuple):
    """The new absolute state of one output row: `row` to upsert, or None to delete `key`.

    Absolute values, never increments, so writing a change twice is harmless; this is
    what makes a replay after a crash converge to the same table. A tuple, because the
    pair tables make millions of them.
    """

    key: tuple[Any, ...]
    row: dict[str, Any] | None
