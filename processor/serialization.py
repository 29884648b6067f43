"""Quix Streams serializers backed by the project's schema registry access."""

from __future__ import annotations

from typing import Any

from quixstreams.models import SerializationContext
from quixstreams.models.serializers import Serializer

from processor.avro import AvroEncoder, SchemaRegistry


class RegistryAvroSerializer(Serializer):
    """Avro in the Confluent wire format; the schema is registered under `subject` once.

    Registration happens when the serializer is made, i.e. at start-up, so a registry
    that refuses the schema (e.g. incompatible evolution) stops the topology right away.
    """

    def __init__(self, registry: SchemaRegistry, subject: str, schema: Any) -> None:
        self._encoder: AvroEncoder = registry.encoder(subject, schema)

    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        return self._encoder.encode(value)
