"""Every shape of Debezium PostgreSQL record, written by confluent-kafka's serializer.

The schemas follow the shapes captured from the connectors and derived from Debezium's
documentation (docs/decoding.md), written out here independently of schemas/cdc/.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.serialization import MessageField

from processor.cdc.debezium_types import EARLIEST, LATEST
from processor.cdc.postgres import PostgresCdcDecoder, RowChange
from processor.errors import DecodeError
from tests.unit.avro_support import mock_registry, serialize

TOPIC = "pg1.user_data.users"
NAMESPACE = "pg1.user_data.users"
MICRO_TIMESTAMP = {
    "type": "long",
    "connect.version": 1,
    "connect.name": "io.debezium.time.MicroTimestamp",
}
DATE = {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}
KEY_SCHEMA = {
    "type": "record",
    "name": "Key",
    "namespace": NAMESPACE,
    "fields": [{"name": "user_id", "type": "int"}],
    "connect.name": f"{NAMESPACE}.Key",
}
COLUMNS = [
    {"name": "user_id", "type": "int"},
    {"name": "username", "type": "string"},
    {"name": "gender", "type": ["null", "string"], "default": None},
    {"name": "location", "type": ["null", "string"], "default": None},
    {"name": "registration_date", "type": ["null", MICRO_TIMESTAMP], "default": None},
    {"name": "date_of_birth", "type": ["null", DATE], "default": None},
]
# INSERT ... VALUES (42, 'alice', 'F', 'Berlin', '2024-01-15 10:30:00', '1990-05-20')
ROW = {
    "user_id": 42,
    "username": "alice",
    "gender": "F",
    "location": "Berlin",
    "registration_date": 1705314600000000,
    "date_of_birth": 7444,
}
DECODED_ROW = ROW | {
    "registration_date": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
    "date_of_birth": date(1990, 5, 20),
}


def value_schema(columns: list[dict[str, Any]] = COLUMNS) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Value",
        "namespace": NAMESPACE,
        "fields": columns,
        "connect.name": f"{NAMESPACE}.Value",
    }


def envelope_schema(source_namespace: str) -> dict[str, Any]:
    optional_long = {"type": ["null", "long"], "default": None}
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": NAMESPACE,
        "fields": [
            {"name": "before", "type": ["null", value_schema()], "default": None},
            {"name": "after", "type": ["null", "Value"], "default": None},
            {
                "name": "source",
                "type": {
                    "type": "record",
                    "name": "Source",
                    "namespace": source_namespace,
                    "fields": [
                        {"name": "version", "type": "string"},
                        {"name": "connector", "type": "string"},
                        {"name": "name", "type": "string"},
                        {"name": "ts_ms", "type": "long"},
                        {"name": "db", "type": "string"},
                        {"name": "schema", "type": "string"},
                        {"name": "table", "type": "string"},
                        {"name": "lsn", **optional_long},
                    ],
                },
            },
            {"name": "op", "type": "string"},
            {"name": "ts_ms", **optional_long},
        ],
        "connect.name": f"{NAMESPACE}.Envelope",
    }


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict:
    source = {
        "version": "3.2.0.Final",
        "connector": "postgresql",
        "name": "pg1",
        "ts_ms": 1705314600123,
        "db": "appdb",
        "schema": "user_data",
        "table": "users",
        "lsn": 24023128,
    }
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}


@pytest.fixture
def registry() -> Any:
    return mock_registry()


@pytest.fixture
def decoder(registry: Any) -> PostgresCdcDecoder:
    return PostgresCdcDecoder(registry)


def key_bytes(registry: Any, user_id: int = 42) -> bytes:
    return serialize(registry, TOPIC, KEY_SCHEMA, {"user_id": user_id}, MessageField.KEY)


def test_after_state_row_is_an_upsert_with_python_types(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, value_schema(), ROW)

    change = decoder.decode(TOPIC, key_bytes(registry), value)

    assert change == RowChange("users", "upsert", {"user_id": 42}, DECODED_ROW)


def test_after_state_row_under_a_top_level_union(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, ["null", value_schema()], ROW)

    assert decoder.decode(TOPIC, key_bytes(registry), value) == RowChange(
        "users", "upsert", {"user_id": 42}, DECODED_ROW
    )


def test_tombstone_deletes_the_row_of_its_key(registry: Any, decoder: Any) -> None:
    assert decoder.decode(TOPIC, key_bytes(registry, 7), None) == RowChange(
        "users", "delete", {"user_id": 7}, None
    )


def test_table_is_the_last_segment_of_the_topic(registry: Any, decoder: Any) -> None:
    change = decoder.decode("prod.eu.user_data.users", key_bytes(registry), None)

    assert change is not None and change.table == "users"


@pytest.mark.parametrize(("deleted", "op"), [("false", "upsert"), ("true", "delete")])
def test_rewrite_mode_deleted_field(registry: Any, decoder: Any, deleted: str, op: str) -> None:
    schema = value_schema([*COLUMNS, {"name": "__deleted", "type": ["null", "string"]}])
    value = serialize(registry, TOPIC, schema, ROW | {"__deleted": deleted})

    change = decoder.decode(TOPIC, key_bytes(registry), value)

    assert change == RowChange(
        "users", op, {"user_id": 42}, DECODED_ROW if op == "upsert" else None
    )


@pytest.mark.parametrize(("op", "expected"), [("c", "upsert"), ("u", "upsert"), ("d", "delete")])
def test_added_metadata_fields_give_the_op_and_leave_the_row(
    registry: Any, decoder: Any, op: str, expected: str
) -> None:
    metadata = [
        {"name": "__op", "type": ["null", "string"], "default": None},
        {"name": "__table", "type": ["null", "string"], "default": None},
        {"name": "__lsn", "type": ["null", "long"], "default": None},
        {"name": "__source_ts_ms", "type": ["null", "long"], "default": None},
    ]
    datum = ROW | {"__op": op, "__table": "users", "__lsn": 5, "__source_ts_ms": 1}
    value = serialize(registry, TOPIC, value_schema([*COLUMNS, *metadata]), datum)

    change = decoder.decode(TOPIC, key_bytes(registry), value)

    assert change is not None
    assert (change.op, change.row) == (expected, DECODED_ROW if expected == "upsert" else None)


SOURCE_NAMESPACES = ["io.debezium.connector.v2.postgresql", "io.debezium.connector.postgresql"]


@pytest.mark.parametrize("source_namespace", SOURCE_NAMESPACES)
@pytest.mark.parametrize("op", ["c", "u", "r"])
def test_envelope_create_update_read_are_upserts_of_after(
    registry: Any, decoder: Any, source_namespace: str, op: str
) -> None:
    value = serialize(registry, TOPIC, envelope_schema(source_namespace), envelope(op, None, ROW))

    assert decoder.decode(TOPIC, key_bytes(registry), value) == RowChange(
        "users", "upsert", {"user_id": 42}, DECODED_ROW
    )


@pytest.mark.parametrize("source_namespace", SOURCE_NAMESPACES)
def test_envelope_delete_with_key_only_before_deletes_by_key(
    registry: Any, decoder: Any, source_namespace: str
) -> None:
    key_only = {name: None for name in ROW} | {"user_id": 42, "username": ""}
    value = serialize(
        registry, TOPIC, envelope_schema(source_namespace), envelope("d", key_only, None)
    )

    assert decoder.decode(TOPIC, key_bytes(registry), value) == RowChange(
        "users", "delete", {"user_id": 42}, None
    )


def test_envelope_truncate_needs_no_key(registry: Any, decoder: Any) -> None:
    value = serialize(
        registry, TOPIC, envelope_schema(SOURCE_NAMESPACES[0]), envelope("t", None, None)
    )

    assert decoder.decode(TOPIC, None, value) == RowChange("users", "truncate", {}, None)


def test_envelope_message_is_ignored(registry: Any, decoder: Any) -> None:
    value = serialize(
        registry, TOPIC, envelope_schema(SOURCE_NAMESPACES[0]), envelope("m", None, None)
    )

    assert decoder.decode(TOPIC, None, value) is None


@pytest.mark.parametrize(
    ("op", "after", "message"),
    [("x", ROW, "unknown Debezium operation 'x'"), ("c", None, "without an after row")],
)
def test_malformed_envelopes_are_decode_errors(
    registry: Any, decoder: Any, op: str, after: Any, message: str
) -> None:
    schema = envelope_schema(SOURCE_NAMESPACES[0])
    value = serialize(registry, TOPIC, schema, envelope(op, None, after))

    with pytest.raises(DecodeError, match=message):
        decoder.decode(TOPIC, key_bytes(registry), value)


def test_a_row_without_a_key_is_a_decode_error(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, value_schema(), ROW)

    with pytest.raises(DecodeError, match="no key"):
        decoder.decode(TOPIC, None, value)


def test_a_tombstone_without_a_key_is_a_decode_error(decoder: Any) -> None:
    with pytest.raises(DecodeError, match="no key"):
        decoder.decode(TOPIC, None, None)


def test_a_key_that_is_not_a_record_is_a_decode_error(registry: Any, decoder: Any) -> None:
    key = serialize(registry, TOPIC, "string", "42", MessageField.KEY)

    with pytest.raises(DecodeError, match="not a record of primary-key columns"):
        decoder.decode(TOPIC, key, None)


def test_a_value_that_is_not_a_record_is_a_decode_error(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, "string", "hello")

    with pytest.raises(DecodeError, match="value is not a record"):
        decoder.decode(TOPIC, key_bytes(registry), value)


def test_garbage_value_bytes_are_a_decode_error(registry: Any, decoder: Any) -> None:
    with pytest.raises(DecodeError, match="wire format"):
        decoder.decode(TOPIC, key_bytes(registry), b"\x7fgarbage")


def test_schema_evolution_added_and_missing_columns(registry: Any, decoder: Any) -> None:
    """v1 lacks `location`; v2 has a column this code never heard of. Both decode."""
    without_location = [column for column in COLUMNS if column["name"] != "location"]
    added = {"name": "loyalty_tier", "type": ["null", "string"], "default": None}
    old = serialize(registry, TOPIC, value_schema(without_location), ROW)
    new = serialize(
        registry, TOPIC, value_schema([*COLUMNS, added]), ROW | {"loyalty_tier": "gold"}
    )
    assert old[1:5] != new[1:5]  # two writer schemas under one subject

    old_change = decoder.decode(TOPIC, key_bytes(registry), old)
    new_change = decoder.decode(TOPIC, key_bytes(registry), new)

    assert old_change is not None and new_change is not None
    assert old_change.row == {k: v for k, v in DECODED_ROW.items() if k != "location"}
    assert new_change.row == DECODED_ROW | {"loyalty_tier": "gold"}


VARIABLE_SCALE_DECIMAL = {
    "type": "record",
    "name": "VariableScaleDecimal",
    "namespace": "io.debezium.data",
    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
    "connect.version": 1,
    "connect.name": "io.debezium.data.VariableScaleDecimal",
}
TYPED_COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "micros", "type": ["null", MICRO_TIMESTAMP], "default": None},
    {
        "name": "millis",
        "type": ["null", {"type": "long", "connect.name": "io.debezium.time.Timestamp"}],
        "default": None,
    },
    {"name": "day", "type": ["null", DATE], "default": None},
    {
        "name": "zoned",
        "type": ["null", {"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp"}],
        "default": None,
    },
    {
        "name": "price",
        "type": [
            "null",
            {
                "type": "bytes",
                "scale": 2,
                "precision": 10,
                "connect.version": 1,
                "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
                "connect.name": "org.apache.kafka.connect.data.Decimal",
                "logicalType": "decimal",
            },
        ],
        "default": None,
    },
    {"name": "ratio", "type": ["null", VARIABLE_SCALE_DECIMAL], "default": None},
    # A second use of a named type is a reference by name.
    {"name": "huge", "type": ["null", "io.debezium.data.VariableScaleDecimal"], "default": None},
    # time.precision.mode=connect: Avro logical types, which fastavro converts itself.
    {
        "name": "connect_timestamp",
        "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
        "default": None,
    },
    {
        "name": "connect_date",
        "type": ["null", {"type": "int", "logicalType": "date"}],
        "default": None,
    },
    # DEFAULT CURRENT_TIMESTAMP, as the real V2 connector registered it.
    {
        "name": "created",
        "type": [MICRO_TIMESTAMP | {"connect.default": 0}, "null"],
        "default": 0,
    },
]
HUGE = 12345678901234567890123456789012345678901


def typed_value(registry: Any, **columns: Any) -> bytes:
    datum = {column["name"]: None for column in TYPED_COLUMNS} | {"id": 1, "created": 0}
    schema = value_schema(TYPED_COLUMNS)
    return serialize(registry, "pg1.user_data.typed", schema, datum | columns)


def typed_key(registry: Any) -> bytes:
    schema = KEY_SCHEMA | {"fields": [{"name": "id", "type": "int"}]}
    return serialize(registry, "pg1.user_data.typed", schema, {"id": 1}, MessageField.KEY)


def test_debezium_types_become_python_values(registry: Any, decoder: Any) -> None:
    value = typed_value(
        registry,
        micros=1705314600123456,
        millis=1705314600123,
        day=7444,
        zoned="2024-01-15T10:30:00.123456Z",
        price=Decimal("19.99"),
        ratio={"scale": 3, "value": (-12345).to_bytes(2, "big", signed=True)},
        huge={"scale": 5, "value": HUGE.to_bytes(18, "big", signed=True)},
        connect_timestamp=datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        connect_date=date(1990, 5, 20),
        created=1705314600000000,
    )

    change = decoder.decode("pg1.user_data.typed", typed_key(registry), value)

    assert change is not None
    assert change.row == {
        "id": 1,
        "micros": datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC),
        "millis": datetime(2024, 1, 15, 10, 30, 0, 123000, tzinfo=UTC),
        "day": date(1990, 5, 20),
        "zoned": datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC),
        "price": Decimal("19.99"),
        "ratio": Decimal("-12.345"),
        "huge": Decimal("123456789012345678901234567890123456.78901"),
        "connect_timestamp": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        "connect_date": date(1990, 5, 20),
        "created": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
    }


def test_infinite_timestamps_become_the_extreme_datetimes(registry: Any, decoder: Any) -> None:
    value = typed_value(
        registry,
        micros=9223372036825200000,
        millis=-9223372036832400,
        day=2**31 - 1,
        zoned="infinity",
    )

    change = decoder.decode("pg1.user_data.typed", typed_key(registry), value)

    assert change is not None and change.row is not None
    assert (change.row["micros"], change.row["millis"]) == (LATEST, EARLIEST)
    assert (change.row["day"], change.row["zoned"]) == (date.max, LATEST)


@pytest.mark.parametrize("zoned", ["yesterday", "2024-01-15T10:30:00"])
def test_an_invalid_zoned_timestamp_is_a_decode_error(
    registry: Any, decoder: Any, zoned: str
) -> None:
    with pytest.raises(DecodeError, match="column zoned"):
        decoder.decode(
            "pg1.user_data.typed", typed_key(registry), typed_value(registry, zoned=zoned)
        )


def test_key_columns_are_converted_too(registry: Any, decoder: Any) -> None:
    schema = KEY_SCHEMA | {"fields": [{"name": "day", "type": DATE}]}
    key = serialize(registry, "pg1.user_data.days", schema, {"day": 7444}, MessageField.KEY)

    assert decoder.decode("pg1.user_data.days", key, None) == RowChange(
        "days", "delete", {"day": date(1990, 5, 20)}, None
    )
