"""The per-table file a Flink parity run writes and `parity.run` reads (standard library).

`<table>.jsonl`: a header line `{"columns": [...], "timestamps": [...]}` naming the
statement's result columns in order and which of them are timestamps, then one JSON
object per row, keyed by column name. Timestamps are ISO 8601 UTC strings with
milliseconds and a `Z` (`2024-07-01T00:30:00.000Z`); every other value keeps its JSON
type, so a text id `"12"` never reads as the integer `12`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TableFile:
    """A table read back: its columns as the statement named them, rows in that order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def table_path(directory: Path, table: str) -> Path:
    return directory / f"{table}.jsonl"


def write_table(
    path: Path, columns: Sequence[str], timestamps: Sequence[str], rows: Iterable[str]
) -> int:
    """Write the header and the rows (JSON object texts), sorted so equal tables give
    equal files; returns the number of rows."""
    lines = sorted(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"columns": list(columns), "timestamps": list(timestamps)})
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(line + "\n" for line in [header, *lines])
    return len(lines)


def read_table(path: Path) -> TableFile:
    """The rows of a table file as tuples, timestamps as aware UTC datetimes."""
    with path.open(encoding="utf-8") as lines:
        header = json.loads(next(lines))
        columns, timestamps = tuple(header["columns"]), set(header["timestamps"])
        rows = []
        for line in lines:
            row = json.loads(line)
            rows.append(
                tuple(
                    _instant(row[c]) if c in timestamps and row[c] is not None else row[c]
                    for c in columns
                )
            )
    return TableFile(columns, rows)


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return value.astimezone(UTC)
