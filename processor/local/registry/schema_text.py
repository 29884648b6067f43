"""Validation and identity of Avro schema texts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import fastavro


class InvalidSchema(ValueError):
    """The text is not a valid Avro schema."""


@dataclass(frozen=True)
class AvroSchemaText:
    """A valid Avro schema: its compact text and the fingerprint that identifies it."""

    text: str
    fingerprint: str


def parse_avro(text: str) -> AvroSchemaText:
    """Validate `text`; texts differing only in whitespace or key order share a fingerprint.

    The fingerprint hashes the JSON re-dumped with sorted keys rather than Avro's parsing
    canonical form, which drops defaults and docs that matter for schema evolution.
    """
    try:
        document = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise InvalidSchema(f"Invalid schema: not JSON: {error}") from error
    try:
        fastavro.parse_schema(document)
    except Exception as error:  # fastavro raises many types; each means the schema is invalid
        raise InvalidSchema(f"Invalid schema: {error}") from error
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return AvroSchemaText(
        text=json.dumps(document, separators=(",", ":")),
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
    )
