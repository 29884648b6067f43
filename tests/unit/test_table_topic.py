"""The Avro schemas of the table topics follow the tables' columns."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

import pytest
import sqlalchemy as sa
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from processor.table_topic import key_schema, value_schema
from processor.topology import all_topologies


def roundtrip(schema: dict, record: dict) -> dict:
    parsed = parse_schema(schema)
    stream = BytesIO()
    schemaless_writer(stream, parsed, record)
    stream.seek(0)
    return schemaless_reader(stream, parsed)


def test_every_table_has_key_and_value_schemas_with_its_columns() -> None:
    for topology in all_topologies().values():
        table = topology.table
        names = [field["name"] for field in value_schema(table)["fields"]]
        assert names == [column.name for column in table.columns]
        key_fields = key_schema(table)["fields"]
        assert {field["name"] for field in key_fields} <= set(names)
        parse_schema(key_schema(table))


def test_values_keep_their_types_and_nulls_through_avro() -> None:
    table = all_topologies()["purchase_windowed_counts"].table
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    row = {
        "user_id": "u1",
        "item_id": None,
        "window_start": start,
        "window_end": start.replace(minute=30),
        "purchase_count": 2**40,
    }
    assert roundtrip(value_schema(table), row) == row
    key = {"user_id": "u1", "item_id": None, "window_start": start}
    assert roundtrip(key_schema(table), key) == key


def test_a_column_without_an_avro_type_is_refused() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("x", sa.Float, primary_key=True))
    with pytest.raises(TypeError, match="no Avro type"):
        value_schema(table)
