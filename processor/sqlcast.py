"""Flink's CAST of a string to an integer type, which the replaced statements relied on."""

from __future__ import annotations

import re

# An optionally signed run of ASCII digits, with spaces (only spaces) around it.
_INTEGER = re.compile(r" *[+-]?[0-9]+ *")


def cast_integer(text: str | None, bits: int) -> int | None:
    """`CAST(text AS INT)` (bits=32) or `AS BIGINT` (bits=64); None where Flink gives NULL."""
    if text is None or not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    limit = 1 << (bits - 1)
    return value if -limit <= value < limit else None
