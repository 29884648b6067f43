"""The parity run's own plumbing: the CDC streams fed to Flink and its result files.

Flink itself is exercised only by `make parity` (it lives in its own virtualenv)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from parity.dataset import read_dataset
from parity.jsonl import read_table, write_table
from parity.run import closed_before_end
from tests.reference.model import SourceState


def _write(directory: Path, name: str, lines: list[dict]) -> None:
    (directory / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


def _interaction(user: str, timestamp: int) -> dict:
    return {"user_id": {"S": user}, "timestamp": {"S": str(timestamp)}}


def test_source_tables_become_retract_changelogs_in_file_order(tmp_path: Path) -> None:
    _write(tmp_path, "users.jsonl", [{"user_id": 1, "username": "a", "email": "x"}])
    _write(tmp_path, "interactions.jsonl", [_interaction("1", 10)])
    _write(
        tmp_path,
        "changes.jsonl",
        [
            {"table": "users", "op": "upsert", "row": {"user_id": 1, "username": "b"}},
            {"table": "interactions", "op": "insert", "item": _interaction("2", 5)},
            {"table": "users", "op": "upsert", "row": {"user_id": 2, "gender": "Other"}},
            {"table": "users", "op": "delete", "row": {"user_id": 1}},
            {"table": "users", "op": "delete", "row": {"user_id": 3}},
        ],
    )
    dataset = read_dataset(tmp_path)
    assert dataset.changelogs["users"] == [
        ("+I", (1, "a", None, None)),
        ("-U", (1, "a", None, None)),
        ("+U", (1, "b", None, None)),
        ("+I", (2, None, None, "Other")),
        ("-D", (1, "b", None, None)),
    ]
    assert dataset.changelogs["items"] == []
    assert [json.loads(document) for document in dataset.documents] == [
        _interaction("1", 10),
        _interaction("2", 5),
    ]


def test_table_files_keep_json_types_and_read_timestamps_as_instants(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = ['{"id":"12","n":3,"at":"2024-07-01T00:30:00.000Z"}', '{"id":"1","n":1,"at":null}']
    assert write_table(path, ["id", "n", "at"], ["at"], rows) == 2
    table = read_table(path)
    assert table.columns == ("id", "n", "at")
    assert table.rows == [("1", 1, None), ("12", 3, datetime(2024, 7, 1, 0, 30, tzinfo=UTC))]


def test_only_windows_the_last_event_time_closed_are_compared_with_the_pipeline() -> None:
    state = SourceState.from_records(interactions=[_interaction("1", 3600)])

    def row(start: int) -> tuple:
        begin, end = (datetime.fromtimestamp(s, UTC) for s in (start, start + 1800))
        return ("1", "7", begin, end, 2)

    assert closed_before_end([row(0), row(1800), row(3600)], state) == [row(0), row(1800)]
