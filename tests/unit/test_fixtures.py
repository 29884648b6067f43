"""The fixture format: bytes kept exactly, schema ids found and rewritten, replay order."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from processor.fixtures import (
    Fixture,
    FixtureError,
    RecordedMessage,
    replay_order,
    wire_schema_id,
)


def wire(schema_id: int, body: bytes = b"\x02ab") -> bytes:
    return struct.pack(">BI", 0, schema_id) + body


def message(partition: int = 0, offset: int = 0, timestamp: int | None = 1, **kwargs):
    fields = {"key": wire(3), "value": wire(4), "headers": []} | kwargs
    return RecordedMessage(partition, offset, timestamp, **fields)


def test_a_record_survives_json_byte_for_byte() -> None:
    original = message(
        key=None,
        value=bytes(range(256)),
        headers=[("trace", b"\xff\x00"), ("empty", None), ("ünï", b"")],
    )
    line = json.loads(json.dumps(original.to_json()))
    assert RecordedMessage.from_json(line) == original
    assert line["key"] is None


@pytest.mark.parametrize(
    ("data", "schema_id"),
    [
        (wire(7), 7),
        (struct.pack(">BI", 0, 2**32 - 1), 2**32 - 1),
        (None, None),
        (b"", None),
        (b"\x00\x00\x00\x01", None),  # too short for an id
        (b"\x01" + bytes(16), None),  # magic 1: a GUID, not an id
        (b"not avro", None),
    ],
)
def test_wire_schema_id(data: bytes | None, schema_id: int | None) -> None:
    assert wire_schema_id(data) == schema_id


def test_schema_ids_come_from_key_value_and_id_headers() -> None:
    record = message(headers=[("__value_schema_id", wire(9, b"")), ("other", wire(5))])
    assert sorted(record.schema_ids()) == [("key", 3), ("value", 4), ("value", 9)]


def test_rewriting_changes_only_the_ids() -> None:
    record = message(
        value=wire(4, b"\x00\x00\x00\x00\x04body"),
        headers=[("__key_schema_id", wire(3, b"")), ("other", wire(4))],
    )
    rewritten = record.with_schema_ids(lambda field, old: old * 100 + len(field))

    assert rewritten.key == wire(303)
    assert rewritten.value == wire(405, b"\x00\x00\x00\x00\x04body")
    assert rewritten.headers == [("__key_schema_id", wire(303, b"")), ("other", wire(4))]
    assert (rewritten.partition, rewritten.offset, rewritten.timestamp_ms) == (0, 0, 1)


def test_bytes_that_are_not_the_wire_format_are_left_alone() -> None:
    record = message(key=b"not a key", value=None)
    assert record.with_schema_ids(lambda field, old: 1 / 0) == record


def test_a_fixture_written_is_read_back(tmp_path: Path) -> None:
    fixture = Fixture(
        partitions={"a.b-c": 2, "empty": 1},
        records={"a.b-c": [message(1, 5), message(0, 7), message(0, 3)], "empty": []},
        schemas={4: {"schemaType": "AVRO", "schema": {"type": "string"}}},
        unknown_schema_ids=[999],
    )
    fixture.write(tmp_path)
    back = Fixture.read(tmp_path)

    assert back.partitions == fixture.partitions
    assert back.schemas == fixture.schemas
    assert back.unknown_schema_ids == [999]
    # In partition, then offset order, so that a re-recording diffs line by line.
    assert [(m.partition, m.offset) for m in back.records["a.b-c"]] == [(0, 3), (0, 7), (1, 5)]
    assert back.records["empty"] == []


def test_a_directory_without_a_manifest_is_no_fixture(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match=r"fixture\.json is missing"):
        Fixture.read(tmp_path)


def test_replay_order_merges_partitions_by_timestamp_keeping_each_in_offset_order() -> None:
    records = {
        "users": [message(0, 0, 10), message(0, 1, 30)],
        "interactions": [message(0, 0, 20), message(1, 0, 5), message(1, 1, 40)],
    }
    order = [(topic, m.partition, m.offset) for topic, m in replay_order(records)]
    assert order == [
        ("interactions", 1, 0),
        ("users", 0, 0),
        ("interactions", 0, 0),
        ("users", 0, 1),
        ("interactions", 1, 1),
    ]
