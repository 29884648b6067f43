"""Nested maps cut into pieces of bounded size: state values into pages, messages into parts.

A map that grows with the data (the members of a group, the partners of a member, the open
windows of a partition) can pass Kafka's 1 MB message limit, and the changelog carries each
stored value as one message. Such a map is handled as its entries: the leaves found
`levels` dictionaries deep (`{kind: {id: value}}` has levels 2), each addressed by its
path of keys. Any subset of the entries, nested as they were, is a valid piece, so a map is
stored, sent and merged back piece by piece.

- `pages` assigns each entry to one of 2**depth pages by the hash of its path, so an
  entry stays in its page while others come and go, and a change rewrites only its page.
- `parts` cuts a message into halves until each encodes within a byte limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

Path = tuple[Any, ...]
Nested = dict[Any, Any]


def entries(nested: Nested, levels: int) -> Iterator[tuple[Path, Any]]:
    """Every entry of `nested` with its path, in the maps' order."""
    for name, value in nested.items():
        if levels == 1:
            yield (name,), value
        else:
            for path, leaf in entries(value, levels - 1):
                yield (name, *path), leaf


def count(nested: Nested, levels: int) -> int:
    if levels == 1:
        return len(nested)
    return sum(count(inner, levels - 1) for inner in nested.values())


def nest(flat: Iterable[tuple[Path, Any]]) -> Nested:
    """The nested map of `(path, value)` entries."""
    nested: Nested = {}
    for path, value in flat:
        node = nested
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return nested


def merge(into: Nested, piece: Nested, levels: int) -> None:
    """Adds a piece's entries to `into` (a page loaded after the first)."""
    if levels == 1:
        into.update(piece)
        return
    for name, inner in piece.items():
        merge(into.setdefault(name, {}), inner, levels - 1)


def pages(nested: Nested, levels: int, depth: int) -> list[Nested]:
    """`nested` in 2**depth pages; an entry's page is the low bits of its path's hash.

    Python salts the hash of a string per process, so a new process may place entries in
    other pages than the one that stored them: its first write of the value rewrites all
    of its pages, once, and nothing else depends on the placement.
    """
    if depth == 0:
        return [nested]
    mask = (1 << depth) - 1
    split: list[list[tuple[Path, Any]]] = [[] for _ in range(mask + 1)]
    if levels == 1:
        for name, value in nested.items():
            split[hash(name) & mask].append(((name,), value))
    else:
        for path, value in entries(nested, levels):
            split[hash(path) & mask].append((path, value))
    return [nest(page) for page in split]


def parts(
    nested: Nested, levels: int, encode: Callable[[Nested], bytes], limit: int
) -> Iterator[bytes]:
    """`nested` encoded in parts of at most `limit` bytes each; a single entry that is
    larger on its own (or none) is one part: it came in a record the broker accepted."""
    encoded = encode(nested)
    if len(encoded) <= limit:
        yield encoded
        return
    flat = list(entries(nested, levels))
    if len(flat) <= 1:
        yield encoded
        return
    middle = len(flat) // 2
    for half in (flat[:middle], flat[middle:]):
        yield from parts(nest(half), levels, encode, limit)
