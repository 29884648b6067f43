"""Bytes written by confluent-kafka's own `AvroSerializer`, against its mock registry.

The decoders are tested on what the reference implementation writes, not on what our
own encoder writes, so that a shared misunderstanding cannot pass unnoticed.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from processor.avro import SchemaRegistry


def mock_registry() -> SchemaRegistry:
    """A `SchemaRegistry` over a fresh, empty in-memory registry."""
    return SchemaRegistry(SchemaRegistryClient.new_client({"url": "mock://tests"}))


def serialize(
    registry: SchemaRegistry,
    topic: str,
    schema: Any,
    datum: Any,
    field: str = MessageField.VALUE,
    conf: dict[str, Any] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """`datum` as confluent-kafka writes it, `schema` auto-registered under `<topic>-<field>`."""
    serializer = AvroSerializer(registry.client, json.dumps(schema), conf=conf)
    return serializer(datum, SerializationContext(topic, field, headers))


def deserialize(
    registry: SchemaRegistry, topic: str, data: bytes, field: str = MessageField.VALUE
) -> Any:
    """`data` as confluent-kafka reads it."""
    return AvroDeserializer(registry.client)(data, SerializationContext(topic, field))
