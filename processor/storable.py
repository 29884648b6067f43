"""Values PostgreSQL can store, checked where records are parsed.

A value the table would refuse (a NUL character in text, an integer beyond its column, a
key too long for a B-tree index) fails the whole flush, and every retry, so it has to be
caught as bad input before it gets there: each check raises `DecodeError`, which sends
the record to the dead letters with the reason.
"""

from __future__ import annotations

from typing import Any

from processor.errors import DecodeError

INT_RANGE = range(-(2**31), 2**31)
# A B-tree index entry holds at most 2,704 bytes; a key of two text columns (the pair
# tables') stays well inside with at most 1,000 bytes per column.
MAX_KEY_TEXT_BYTES = 1_000


def text(value: Any, what: str) -> str | None:
    """A text column's value: a string without NUL (PostgreSQL's text cannot hold one)."""
    if value is None:
        return None
    if type(value) is not str:
        raise DecodeError(f"{what}: {value!r} is not text")
    if "\x00" in value:
        raise DecodeError(f"{what}: text with a NUL character, which PostgreSQL cannot store")
    return value


def key_text(value: Any, what: str) -> str | None:
    """Text that becomes part of a table's key: also short enough for its index."""
    value = text(value, what)
    if value is not None and len(value.encode()) > MAX_KEY_TEXT_BYTES:
        raise DecodeError(
            f"{what}: {len(value.encode())} bytes, over the {MAX_KEY_TEXT_BYTES} a key column"
            " may hold"
        )
    return value


def integer(value: Any, what: str) -> int | None:
    """An INT column's value: an integer within 32 bits."""
    if value is None:
        return None
    if type(value) is not int:
        raise DecodeError(f"{what}: {value!r} is not an integer")
    if value not in INT_RANGE:
        raise DecodeError(f"{what}: {value} is beyond the range of an INT column")
    return value
