"""The local registry against confluent-kafka's own client and Avro serdes.

Every test gets fresh clients: the client caches registrations, and a cached answer
would hide what the server does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from processor.local.stack import LocalStack

pytestmark = pytest.mark.integration

USER_V1 = {
    "type": "record",
    "name": "User",
    "namespace": "test",
    "fields": [{"name": "user_id", "type": "int"}, {"name": "username", "type": "string"}],
}
# A compatible evolution: a new optional column, as CDC topics see them.
USER_V2 = USER_V1 | {
    "fields": [
        *USER_V1["fields"],
        {"name": "location", "type": ["null", "string"], "default": None},
    ]
}


def avro(schema: dict, indent: int | None = None, sort_keys: bool = False) -> Schema:
    return Schema(json.dumps(schema, indent=indent, sort_keys=sort_keys), "AVRO")


@pytest.fixture
def new_client(local_stack: LocalStack) -> Callable[[], SchemaRegistryClient]:
    return lambda: SchemaRegistryClient({"url": local_stack.registry_url})


@pytest.fixture
def subject() -> str:
    return f"test-{uuid.uuid4().hex}-value"


def registry_error(call: Callable[[], object]) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as raised:
        call()
    return raised.value


def test_registering_the_same_schema_again_returns_the_existing_registration(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    first = new_client().register_schema_full_response(subject, avro(USER_V1))
    # Other whitespace and key order: the same schema for the registry.
    again = new_client().register_schema_full_response(
        subject, avro(USER_V1, indent=4, sort_keys=True)
    )

    assert first.version == 1
    assert (again.schema_id, again.version, again.guid) == (
        first.schema_id,
        first.version,
        first.guid,
    )
    assert new_client().get_versions(subject) == [1]


def test_a_schema_has_one_global_id_across_subjects(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    other_subject = f"{subject}-other"
    in_subject = new_client().register_schema(subject, avro(USER_V1))
    in_other_subject = new_client().register_schema(other_subject, avro(USER_V1))
    evolved = new_client().register_schema(other_subject, avro(USER_V2))

    assert in_other_subject == in_subject
    assert evolved != in_subject


def test_an_evolved_schema_becomes_the_next_version(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    v1 = new_client().register_schema_full_response(subject, avro(USER_V1))
    v2 = new_client().register_schema_full_response(subject, avro(USER_V2))
    client = new_client()

    assert (v1.version, v2.version) == (1, 2)
    assert v2.schema_id != v1.schema_id
    assert client.get_versions(subject) == [1, 2]
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (v2.schema_id, 2)
    assert json.loads(latest.schema.schema_str) == USER_V2
    first = client.get_version(subject, 1)
    assert (first.schema_id, json.loads(first.schema.schema_str)) == (v1.schema_id, USER_V1)


def test_lookup_finds_the_version_holding_a_schema(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    v1_id = new_client().register_schema(subject, avro(USER_V1))
    new_client().register_schema(subject, avro(USER_V2))

    found = new_client().lookup_schema(subject, avro(USER_V1, indent=2))
    assert (found.subject, found.version, found.schema_id) == (subject, 1, v1_id)

    unregistered = USER_V1 | {"name": "Stranger"}
    not_in_subject = registry_error(lambda: new_client().lookup_schema(subject, avro(unregistered)))
    assert (not_in_subject.http_status_code, not_in_subject.error_code) == (404, 40403)
    no_subject = registry_error(lambda: new_client().lookup_schema(f"{subject}-x", avro(USER_V1)))
    assert (no_subject.http_status_code, no_subject.error_code) == (404, 40401)


def test_a_schema_is_found_by_its_id(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    schema_id = new_client().register_schema(subject, avro(USER_V1, indent=2))

    schema = new_client().get_schema(schema_id)
    assert schema.schema_type == "AVRO"
    assert json.loads(schema.schema_str) == USER_V1

    unknown = registry_error(lambda: new_client().get_schema(2**31 - 1))
    assert (unknown.http_status_code, unknown.error_code) == (404, 40403)


def test_subjects_are_listed_and_filtered_by_prefix(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    names = [f"{subject}-a", f"{subject}-b", f"{subject}-c"]
    for name in names:
        new_client().register_schema(name, avro(USER_V1))
    client = new_client()

    assert set(names) <= set(client.get_subjects())
    assert client.get_subjects(subject_prefix=subject) == names
    assert client.get_subjects(subject_prefix=subject, offset=1, limit=1) == names[1:2]


def test_missing_subjects_and_versions_are_404_with_confluent_codes(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    new_client().register_schema(subject, avro(USER_V1))
    client = new_client()

    no_subject = registry_error(lambda: client.get_versions(f"{subject}-missing"))
    no_latest = registry_error(lambda: client.get_latest_version(f"{subject}-missing"))
    no_version = registry_error(lambda: client.get_version(subject, 2))
    bad_version = registry_error(lambda: client.get_version(subject, 0))

    assert (no_subject.http_status_code, no_subject.error_code) == (404, 40401)
    assert (no_latest.http_status_code, no_latest.error_code) == (404, 40401)
    assert (no_version.http_status_code, no_version.error_code) == (404, 40402)
    assert (bad_version.http_status_code, bad_version.error_code) == (422, 42202)


@pytest.mark.parametrize(
    "schema_text",
    [
        '{"type": "record", "name": "Broken", "fields": [',
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}',
        '{"type": "record", "fields": []}',
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "int", "default": "a"}]}',
    ],
    ids=["not-json", "unknown-type", "no-name", "bad-default"],
)
def test_an_invalid_schema_is_rejected_with_422(
    new_client: Callable[[], SchemaRegistryClient], subject: str, schema_text: str
) -> None:
    error = registry_error(
        lambda: new_client().register_schema(subject, Schema(schema_text, "AVRO"))
    )

    assert (error.http_status_code, error.error_code) == (422, 42201)
    assert subject not in new_client().get_subjects()


def test_only_avro_without_references_is_accepted(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    json_schema = registry_error(
        lambda: new_client().register_schema(subject, Schema('{"type": "object"}', "JSON"))
    )
    assert (json_schema.http_status_code, json_schema.error_code) == (422, 42201)


def test_compatibility_is_stored_globally_and_per_subject(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    client = new_client()
    new_client().register_schema(subject, avro(USER_V1))
    global_level = client.get_compatibility()

    unset = registry_error(lambda: client.get_compatibility(subject))
    assert (unset.http_status_code, unset.error_code) == (404, 40408)
    assert client.set_compatibility(subject, "full") == {"compatibility": "FULL"}
    assert client.get_compatibility(subject) == "FULL"
    assert client.get_compatibility() == global_level
    invalid = registry_error(lambda: client.set_compatibility(subject, "SOMETIMES"))
    assert (invalid.http_status_code, invalid.error_code) == (422, 42203)

    other_level = "NONE" if global_level != "NONE" else "BACKWARD"
    try:
        client.set_compatibility(level=other_level)
        assert client.get_compatibility() == other_level
    finally:
        client.set_compatibility(level=global_level)


def test_a_subject_is_soft_deleted_before_it_is_deleted_permanently(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    v1_id = new_client().register_schema(subject, avro(USER_V1))
    new_client().register_schema(subject, avro(USER_V2))
    client = new_client()

    client.set_compatibility(subject, "FULL")

    too_early = registry_error(lambda: client.delete_subject(subject, permanent=True))
    assert (too_early.http_status_code, too_early.error_code) == (404, 40405)
    assert client.delete_subject(subject) == [1, 2]
    config_gone = registry_error(lambda: client.get_compatibility(subject))
    assert config_gone.error_code == 40408  # deleting a subject deletes its level too
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.get_versions(subject, deleted=True) == [1, 2]
    twice = registry_error(lambda: client.delete_subject(subject))
    assert (twice.http_status_code, twice.error_code) == (404, 40404)

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    # Ids stay valid after their subject is gone: records written with them still decode.
    assert json.loads(new_client().get_schema(v1_id).schema_str) == USER_V1


def test_avro_serdes_round_trip_through_the_registry(
    new_client: Callable[[], SchemaRegistryClient], subject: str
) -> None:
    topic = subject.removesuffix("-value")
    context = SerializationContext(topic, MessageField.VALUE)
    row = {"user_id": 7, "username": "ada"}

    data = AvroSerializer(new_client(), json.dumps(USER_V1))(row, context)
    decoded = AvroDeserializer(new_client())(data, context)

    registered = new_client().lookup_schema(subject, avro(USER_V1))
    assert data[0] == 0  # Confluent wire format: magic byte, then the schema id
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert decoded == row


def test_http_errors_are_json_in_the_registry_media_type(local_stack: LocalStack) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{local_stack.registry_url}/no/such/path", timeout=5)

    assert raised.value.code == 404
    assert raised.value.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert json.loads(raised.value.read())["error_code"] == 404
