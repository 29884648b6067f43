"""The wire format, the writer-schema cache, and the sorting of failures."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    header_schema_id_serializer,
)
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from hypothesis import given
from hypothesis import strategies as st

from processor.avro import SchemaRegistry, load_schema
from processor.errors import DecodeError, MisconfiguredRegistry, RegistryUnavailable
from processor.settings import Settings
from tests.unit.avro_support import deserialize, mock_registry, serialize

RECORD = {
    "type": "record",
    "name": "Row",
    "namespace": "tests",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "name", "type": ["null", "string"], "default": None},
    ],
}


class CountingRegistryClient(MockSchemaRegistryClient):
    """The mock registry, counting schema fetches."""

    def __init__(self) -> None:
        super().__init__({"url": "mock://counting"})
        self.fetches = 0

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
        self.fetches += 1
        return super().get_schema(schema_id, *args, **kwargs)


class FailingRegistryClient(MockSchemaRegistryClient):
    """A registry that answers every schema fetch with one HTTP error."""

    def __init__(self, status: int) -> None:
        super().__init__({"url": "mock://failing"})
        self.status = status

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(self.status, self.status * 100, "simulated")


def test_decodes_what_confluent_kafka_writes() -> None:
    registry = mock_registry()
    data = serialize(registry, "t", RECORD, {"id": 7, "name": "héllo ✓"})

    value, schema_id = registry.decode(data)

    assert value == {"id": 7, "name": "héllo ✓"}
    assert schema_id == struct.unpack(">I", data[1:5])[0]


def test_decodes_a_top_level_union() -> None:
    registry = mock_registry()
    data = serialize(registry, "t", ["null", RECORD], {"id": 1, "name": None})

    assert registry.decode(data)[0] == {"id": 1, "name": None}


def test_takes_the_schema_guid_from_the_header_when_there_is_one() -> None:
    registry = mock_registry()
    headers: list[tuple[str, bytes]] = []
    data = serialize(
        registry,
        "t",
        RECORD,
        {"id": 3, "name": "x"},
        conf={"schema.id.serializer": header_schema_id_serializer},
        headers=headers,
    )

    assert data[0] != 0  # no prefix: the body alone
    assert registry.decode(data, headers)[0] == {"id": 3, "name": "x"}


def test_takes_an_integer_schema_id_from_the_header() -> None:
    registry = mock_registry()
    prefixed = serialize(registry, "t", RECORD, {"id": 4, "name": None})
    header = [("__value_schema_id", prefixed[:5])]

    assert registry.decode(prefixed[5:], header) == (
        {"id": 4, "name": None},
        struct.unpack(">I", prefixed[1:5])[0],
    )


def test_reads_the_key_header_for_keys() -> None:
    registry = mock_registry()
    prefixed = serialize(registry, "t", RECORD, {"id": 5, "name": None})
    headers = [("__value_schema_id", b"\x00\x00\x00\x00\x63"), ("__key_schema_id", prefixed[:5])]

    assert registry.decode(prefixed[5:], headers, "key")[0] == {"id": 5, "name": None}


def test_a_malformed_schema_id_header_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not a schema id"):
        mock_registry().decode(b"\x02", [("__value_schema_id", b"\x07\x01")])


def test_fetches_each_writer_schema_once() -> None:
    client = CountingRegistryClient()
    registry = SchemaRegistry(client)
    data = serialize(registry, "t", RECORD, {"id": 1, "name": None})

    for _ in range(3):
        registry.decode(data)

    assert client.fetches == 1


def test_derives_once_per_writer_schema() -> None:
    registry = mock_registry()
    data = serialize(registry, "t", RECORD, {"id": 1, "name": None})
    builds = []

    def field_names(writer: Any) -> list[str]:
        builds.append(writer.schema_id)
        return [field["name"] for field in writer.parsed["fields"]]

    _, schema_id = registry.decode(data)
    for _ in range(3):
        assert registry.writer_schema(schema_id).derived(field_names) == ["id", "name"]
    assert builds == [schema_id]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not in the Confluent wire format"),
        (b"\x00\x00\x01", "not in the Confluent wire format"),
        (b"\x01\x00\x00\x00\x01\x02", "not in the Confluent wire format"),
        (b'{"id": 1}', "not in the Confluent wire format"),
        (b"\x00\x00\x00\x03\xe7\x02", "schema 999: unknown to the registry"),
    ],
)
def test_bytes_that_are_no_record_are_decode_errors(data: bytes, message: str) -> None:
    registry = mock_registry()
    serialize(registry, "t", RECORD, {"id": 1, "name": None})  # the registry holds a subject
    with pytest.raises(DecodeError, match=message):
        registry.decode(data)


def test_a_truncated_body_is_a_decode_error() -> None:
    registry = mock_registry()
    data = serialize(registry, "t", RECORD, {"id": 1, "name": "long enough"})

    with pytest.raises(DecodeError, match="does not match its writer schema 1"):
        registry.decode(data[:-3])


def test_bytes_after_the_datum_are_a_decode_error() -> None:
    registry = mock_registry()
    data = serialize(registry, "t", RECORD, {"id": 1, "name": None})

    with pytest.raises(DecodeError, match="2 bytes after the datum"):
        registry.decode(data + b"\x00\x00")


def test_a_schema_that_is_not_avro_is_a_decode_error() -> None:
    registry = mock_registry()
    schema_id = registry.client.register_schema("j-value", Schema('{"type": "object"}', "JSON"))

    with pytest.raises(DecodeError, match="JSON schema, not Avro"):
        registry.decode(b"\x00" + schema_id.to_bytes(4, "big") + b"{}")


# Module-level: hypothesis runs a test many times, and a fixture once.
FUZZ_REGISTRY = mock_registry()
FUZZ_PREFIX = serialize(FUZZ_REGISTRY, "t", RECORD, {"id": 1, "name": None})[:5]


@given(body=st.binary(max_size=64))
def test_arbitrary_bodies_decode_or_raise_decode_error(body: bytes) -> None:
    try:
        value, _ = FUZZ_REGISTRY.decode(FUZZ_PREFIX + body)
    except DecodeError:
        return
    assert set(value) == {"id", "name"}


@pytest.mark.parametrize("status", [500, 503, 401, 403, 429])
def test_registry_errors_that_are_not_the_records_fault_are_unavailability(status: int) -> None:
    registry = SchemaRegistry(FailingRegistryClient(status))

    with pytest.raises(RegistryUnavailable, match=str(status)):
        registry.decode(b"\x00\x00\x00\x00\x01\x02")


def test_an_unreachable_registry_is_unavailability_not_a_decode_error() -> None:
    client = SchemaRegistryClient({"url": "http://127.0.0.1:9", "max.retries": 0})

    with pytest.raises(RegistryUnavailable, match="unreachable"):
        SchemaRegistry(client).decode(b"\x00\x00\x00\x00\x01\x02")


def test_a_failed_fetch_is_retried_on_the_next_record() -> None:
    client = FailingRegistryClient(503)
    client.register_schema("t-value", Schema(json.dumps(RECORD), "AVRO"))
    registry = SchemaRegistry(client)
    with pytest.raises(RegistryUnavailable):
        registry.decode(b"\x00\x00\x00\x00\x01\x02")
    client.status = 404

    with pytest.raises(DecodeError, match="unknown to the registry"):
        registry.decode(b"\x00\x00\x00\x00\x01\x02")


def test_the_encoder_writes_what_confluent_kafka_reads() -> None:
    registry = mock_registry()
    encoder = registry.encoder("out-value", RECORD)

    data = encoder.encode({"id": 9, "name": "nine"})

    assert data[:5] == b"\x00" + encoder.schema_id.to_bytes(4, "big")
    assert deserialize(registry, "out", data) == {"id": 9, "name": "nine"}
    assert registry.client.get_latest_version("out-value").schema_id == encoder.schema_id


def test_registering_the_same_schema_again_keeps_its_id() -> None:
    registry = mock_registry()

    assert (
        registry.encoder("out-value", RECORD).schema_id
        == registry.encoder("out-value", RECORD).schema_id
    )


def test_load_schema_fills_in_placeholders() -> None:
    schema = load_schema("cdc/users.key", namespace="pg9.user_data.users")

    assert schema["namespace"] == "pg9.user_data.users"
    assert schema["connect.name"] == "pg9.user_data.users.Key"


def test_an_unknown_id_is_looked_up_once() -> None:
    """Each record of an id the registry does not know is a dead letter; asking again for
    each of them would cost a round trip per record."""
    client = CountingRegistryClient()
    client.register_schema("t-value", Schema(json.dumps(RECORD), "AVRO"))
    registry = SchemaRegistry(client)
    for _ in range(3):
        with pytest.raises(DecodeError, match="schema 999: unknown to the registry"):
            registry.decode(b"\x00\x00\x00\x03\xe7\x02")
    assert client.fetches == 1


def test_an_id_unknown_to_a_registry_holding_nothing_is_misconfiguration() -> None:
    """A wrong registry or an empty context would make every good record a dead letter."""
    with pytest.raises(MisconfiguredRegistry, match=r"SCHEMA_REGISTRY_URL .* holds no subjects"):
        mock_registry().decode(b"\x00\x00\x00\x03\xe7\x02")


def test_a_registry_url_that_answers_404_for_subjects_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://user:secret-pw@registry.example:8081/x")
    registry = SchemaRegistry(Settings())

    def not_found(*_args: Any, **_kwargs: Any) -> Any:
        raise SchemaRegistryError(404, 40401, "HTTP 404 Not Found")

    monkeypatch.setattr(registry.client, "get_subjects", not_found)
    with pytest.raises(MisconfiguredRegistry, match="SCHEMA_REGISTRY_URL") as raised:
        registry.check()
    assert "secret-pw" not in str(raised.value)
    assert "registry.example:8081/x" in str(raised.value)
