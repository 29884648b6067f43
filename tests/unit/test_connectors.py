"""The connector emulations: their schemas, their records, and round trips to the decoders."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, get_args

import pytest
from confluent_kafka.serialization import MessageField

from processor.cdc.dynamodb import DynamoDbCdcDecoder
from processor.cdc.postgres import PostgresCdcDecoder, RowChange
from processor.connectors import (
    DynamoDbCdcEmulator,
    DynamoDbShape,
    PostgresCdcEmulator,
    PostgresShape,
    avro_namespace,
)
from tests.unit.avro_support import deserialize, mock_registry

PREFIX = "pg1"
DYNAMODB_TOPIC = "personalization-dev-user-personalization"

# Column lists of SPEC 1.1, in table order.
SPEC_COLUMNS = {
    "users": [
        "user_id", "username", "email", "password_hash", "registration_date", "last_login",
        "first_name", "last_name", "date_of_birth", "gender", "location",
        "preferred_language", "time_zone", "account_status",
    ],
    "categories": ["category_id", "category_name", "parent_category_id"],
    "items": [
        "item_id", "item_name", "description", "category_id", "price", "availability_status",
        "image_url", "release_date", "average_rating", "number_of_ratings", "author_id",
        "brand_id", "creation_timestamp", "last_updated_timestamp",
    ],
    "reviews": ["review_id", "user_id", "item_id", "rating_score", "review_text", "review_date"],
}  # fmt: skip
TABLES = tuple(SPEC_COLUMNS)
KEYS = {"users": "user_id", "categories": "category_id", "items": "item_id", "reviews": "review_id"}

# Rows as a dataset's JSON has them (SPEC 6), and the Python values they must decode to.
JSON_ROWS: dict[str, dict[str, Any]] = {
    "users": {
        "user_id": 42, "username": "alice", "email": "alice@example.com",
        "password_hash": "x1", "registration_date": "2024-01-15T10:30:00",
        "last_login": "2024-06-30T21:02:11.123456", "first_name": "Alice",
        "last_name": "Walker", "date_of_birth": "1990-05-20", "gender": "F",
        "location": "Berlin", "preferred_language": "de", "time_zone": "Europe/Berlin",
        "account_status": "active",
    },
    "categories": {"category_id": 3, "category_name": "Books", "parent_category_id": 1},
    "items": {
        "item_id": 981, "item_name": "A Book", "description": "Good.", "category_id": 3,
        "price": 19.99, "availability_status": "out_of_stock", "image_url": "https://i/981",
        "release_date": "1969-03-01", "average_rating": "4.5", "number_of_ratings": "1289",
        "author_id": 77, "brand_id": 5, "creation_timestamp": "2024-01-15T10:30:00+02:00",
        "last_updated_timestamp": None,
    },
    "reviews": {
        "review_id": 1, "user_id": 42, "item_id": 981, "rating_score": 5,
        "review_text": "Loved it 📚", "review_date": "2024-02-01 08:00:00",
    },
}  # fmt: skip
PYTHON_ROWS: dict[str, dict[str, Any]] = {
    "users": JSON_ROWS["users"]
    | {
        "registration_date": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        "last_login": datetime(2024, 6, 30, 21, 2, 11, 123456, tzinfo=UTC),
        "date_of_birth": date(1990, 5, 20),
    },
    "categories": JSON_ROWS["categories"],
    "items": JSON_ROWS["items"]
    | {
        "price": Decimal("19.99"),
        "release_date": date(1969, 3, 1),
        "average_rating": Decimal("4.50"),
        "number_of_ratings": 1289,
        "creation_timestamp": datetime(2024, 1, 15, 8, 30, tzinfo=UTC),
    },
    "reviews": JSON_ROWS["reviews"] | {"review_date": datetime(2024, 2, 1, 8, tzinfo=UTC)},
}

POSTGRES_SHAPES = get_args(PostgresShape)
DYNAMODB_SHAPES = get_args(DynamoDbShape)


def topic(table: str) -> str:
    return f"{PREFIX}.user_data.{table}"


@pytest.fixture
def registry() -> Any:
    return mock_registry()


@pytest.mark.parametrize("shape", POSTGRES_SHAPES)
@pytest.mark.parametrize("table", TABLES)
def test_upsert_round_trips_to_the_decoder(registry: Any, table: str, shape: Any) -> None:
    emulator = PostgresCdcEmulator(registry, PREFIX, shape)

    record = emulator.upsert(table, JSON_ROWS[table])

    assert PostgresCdcDecoder(registry).decode(topic(table), *record) == RowChange(
        table, "upsert", {KEYS[table]: JSON_ROWS[table][KEYS[table]]}, PYTHON_ROWS[table]
    )


@pytest.mark.parametrize(
    ("shape", "tombstones"),
    [("after-state", [True]), ("rewrite", [False, True]), ("envelope", [False, True])],
)
@pytest.mark.parametrize("table", TABLES)
def test_delete_round_trips_to_the_decoder(
    registry: Any, table: str, shape: Any, tombstones: list[bool]
) -> None:
    key = {KEYS[table]: 1}

    written = PostgresCdcEmulator(registry, PREFIX, shape).delete(table, key)

    assert [value is None for _, value in written] == tombstones
    decoder = PostgresCdcDecoder(registry)
    assert [decoder.decode(topic(table), *record) for record in written] == [
        RowChange(table, "delete", key, None)
    ] * len(written)


def test_rewrite_shape_marks_rows_with_deleted(registry: Any) -> None:
    emulator = PostgresCdcEmulator(registry, PREFIX, "rewrite")
    upsert = emulator.upsert("categories", JSON_ROWS["categories"])
    delete = emulator.delete("categories", {"category_id": 3})[0]

    assert deserialize(registry, topic("categories"), upsert.value)["__deleted"] == "false"
    assert deserialize(registry, topic("categories"), delete.value) == {
        "category_id": 3,
        "category_name": "",  # NOT NULL, unknown in a key-only before image
        "parent_category_id": None,
        "__deleted": "true",
    }


def test_envelope_shape_ops_and_source(registry: Any) -> None:
    emulator = PostgresCdcEmulator(registry, PREFIX, "envelope", database="appdb")
    row = JSON_ROWS["categories"]

    records = [
        emulator.upsert("categories", row, snapshot=True),
        emulator.upsert("categories", row),
        *emulator.delete("categories", {"category_id": 3}),
        emulator.upsert("categories", row),
    ]

    envelopes = [
        deserialize(registry, topic("categories"), value) if value is not None else None
        for _, value in records
    ]
    assert [e and e["op"] for e in envelopes] == ["r", "u", "d", None, "c"]
    snapshot, update, delete, _, create = envelopes
    assert snapshot["source"]["snapshot"] == "true" and update["source"]["snapshot"] == "false"
    assert {k: update["source"][k] for k in ("connector", "name", "db", "schema", "table")} == {
        "connector": "postgresql",
        "name": PREFIX,
        "db": "appdb",
        "schema": "user_data",
        "table": "categories",
    }
    assert update["source"]["lsn"] < delete["source"]["lsn"] < create["source"]["lsn"]
    assert (delete["before"]["category_id"], delete["after"]) == (3, None)
    assert create["before"] is None and create["after"]["category_name"] == "Books"


@pytest.mark.parametrize("shape", POSTGRES_SHAPES)
@pytest.mark.parametrize("table", TABLES)
def test_registered_schemas_follow_debezium_naming(registry: Any, table: str, shape: Any) -> None:
    PostgresCdcEmulator(registry, PREFIX, shape).upsert(table, JSON_ROWS[table])
    key = json.loads(registry.client.get_latest_version(f"{topic(table)}-key").schema.schema_str)
    value = json.loads(
        registry.client.get_latest_version(f"{topic(table)}-value").schema.schema_str
    )

    row = value[1] if shape == "after-state" else value
    if shape == "envelope":
        assert value["connect.name"] == f"{topic(table)}.Envelope"
        assert value["fields"][2]["type"]["namespace"] == "io.debezium.connector.v2.postgresql"
        row = value["fields"][0]["type"][1]
    assert (key["name"], key["namespace"], key["connect.name"]) == (
        "Key",
        topic(table),
        f"{topic(table)}.Key",
    )
    assert [field["name"] for field in key["fields"]] == [KEYS[table]]
    assert (row["name"], row["namespace"], row["connect.name"]) == (
        "Value",
        topic(table),
        f"{topic(table)}.Value",
    )
    columns = [field["name"] for field in row["fields"]]
    expected = SPEC_COLUMNS[table] + (["__deleted"] if shape == "rewrite" else [])
    assert columns == expected


def test_not_null_columns_are_plain_and_others_optional(registry: Any) -> None:
    PostgresCdcEmulator(registry, PREFIX).upsert("reviews", JSON_ROWS["reviews"])
    schema = json.loads(
        registry.client.get_latest_version(f"{topic('reviews')}-value").schema.schema_str
    )

    optional = {field["name"] for field in schema[1]["fields"] if isinstance(field["type"], list)}
    assert optional == {"review_text"}


def test_a_null_in_a_column_with_a_default_is_written_as_the_default(registry: Any) -> None:
    """As AvroData does with ignore.default.for.nullables=false (Confluent Cloud default)."""
    row = JSON_ROWS["items"] | {"availability_status": None, "item_name": None}

    record = PostgresCdcEmulator(registry, PREFIX).upsert("items", row)

    change = PostgresCdcDecoder(registry).decode(topic("items"), *record)
    assert change is not None and change.row is not None
    assert (change.row["availability_status"], change.row["item_name"]) == ("in_stock", None)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"category_id": 1}, "categories.category_name is NOT NULL"),
        ({"category_name": "x"}, "key column"),
        ({"category_id": 1, "category_name": "x", "colour": "red"}, "no column"),
    ],
)
def test_rows_the_database_would_refuse_are_rejected(
    registry: Any, row: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresCdcEmulator(registry, PREFIX).upsert("categories", row)


def test_a_hyphenated_prefix_is_scrubbed_in_schema_names_not_topics(registry: Any) -> None:
    emulator = PostgresCdcEmulator(registry, "my-db.8")
    record = emulator.upsert("categories", JSON_ROWS["categories"])

    value = registry.client.get_latest_version("my-db.8.user_data.categories-value").schema
    assert json.loads(value.schema_str)[1]["namespace"] == "my_db.x8.user_data.categories"
    assert PostgresCdcDecoder(registry).decode(emulator.topic("categories"), *record) is not None


@pytest.mark.parametrize(
    ("name", "scrubbed"),
    [
        ("pg1.user_data.users", "pg1.user_data.users"),
        ("t8.0.1", "t8.x0.x1"),
        ("a-b.c d", "a_b.c_d"),
    ],
)
def test_avro_namespace(name: str, scrubbed: str) -> None:
    assert avro_namespace(name) == scrubbed


INTERACTION = {
    "user_id": {"S": "12"},
    "timestamp": {"S": "1700000000"},
    "action_type": {"S": "purchase"},
    "item_id": {"S": "981"},
    "ttl": {"N": "1794000000"},
}


@pytest.mark.parametrize("shape", DYNAMODB_SHAPES)
def test_dynamodb_insert_and_remove_round_trip(registry: Any, shape: Any) -> None:
    emulator = DynamoDbCdcEmulator(registry, DYNAMODB_TOPIC, shape)
    decoder = DynamoDbCdcDecoder(registry)

    insert = emulator.insert(INTERACTION)
    remove = emulator.remove(INTERACTION)

    assert decoder.decode(insert.value) == INTERACTION
    assert decoder.decode(remove.value) is None
    for record in (insert, remove):
        key = deserialize(registry, DYNAMODB_TOPIC, record.key, MessageField.KEY)
        assert key == {"user_id": "12", "timestamp": "1700000000"}


def test_dynamodb_document_shape_writes_a_null_value_for_a_remove(registry: Any) -> None:
    emulator = DynamoDbCdcEmulator(registry, DYNAMODB_TOPIC)

    assert emulator.remove(INTERACTION).value is None
    assert deserialize(registry, DYNAMODB_TOPIC, emulator.insert(INTERACTION).value) == {
        "document": json.dumps(INTERACTION, separators=(",", ":"))
    }


def test_dynamodb_envelope_shape_ops_and_source(registry: Any) -> None:
    emulator = DynamoDbCdcEmulator(registry, DYNAMODB_TOPIC, "envelope")

    records = [
        emulator.insert(INTERACTION, snapshot=True),
        emulator.insert(INTERACTION),
        emulator.remove(INTERACTION),
    ]

    snapshot, insert, remove = (deserialize(registry, DYNAMODB_TOPIC, r.value) for r in records)
    assert [snapshot["op"], insert["op"], remove["op"]] == ["r", "c", "d"]
    assert (
        snapshot["source"]["sync_mode"] == "SNAPSHOT" and snapshot["source"]["snapshotCount"] == 1
    )
    assert insert["source"]["sync_mode"] == "CDC" and insert["source"]["seq_no"] == "1"
    assert json.loads(remove["before"]["document"]) == INTERACTION and remove["after"] is None


def test_dynamodb_schemas_follow_the_connector(registry: Any) -> None:
    DynamoDbCdcEmulator(registry, DYNAMODB_TOPIC)
    latest = registry.client.get_latest_version

    key = json.loads(latest(f"{DYNAMODB_TOPIC}-key").schema.schema_str)
    value = json.loads(latest(f"{DYNAMODB_TOPIC}-value").schema.schema_str)

    assert (key["name"], key["namespace"]) == ("ConnectDefault", "io.confluent.connect.avro")
    assert value[0] == "null"
    assert value[1]["namespace"] == (
        "io.confluent.connect.dynamodb.personalization_dev_user_personalization"
    )
    assert [field["name"] for field in value[1]["fields"]] == ["document"]


def test_an_item_without_its_string_keys_is_rejected(registry: Any) -> None:
    emulator = DynamoDbCdcEmulator(registry, DYNAMODB_TOPIC)

    with pytest.raises(ValueError, match="user_id"):
        emulator.insert(INTERACTION | {"user_id": {"N": "12"}})
