"""Avro in the Confluent wire format, with writer schemas fetched from a schema registry.

Decoding takes the schema id from the `__key_schema_id` / `__value_schema_id` header when
there is one (newer serializers) and otherwise from the 5-byte prefix (magic byte 0,
big-endian id), then reads the body with fastavro and the writer schema, which is fetched
once per id and kept parsed. confluent-kafka's own deserializer runs its data-contract
machinery on every message; this path adds ~0.5 µs to bare fastavro (docs/decoding.md).

Failures caused by the bytes raise `DecodeError` (dead-letter the record); failures to
reach the registry raise `RegistryUnavailable` (retry, the record may be fine).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from string import Template
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import SchemaParseException

from processor.errors import DecodeError, MisconfiguredRegistry, RegistryUnavailable
from processor.settings import Settings

SchemaId = int | UUID
"""A registry schema id: an integer from the 5-byte prefix, or a GUID from a header."""

Headers = Sequence[tuple[str, bytes | None]]
Field = Literal["key", "value"]

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

_MAGIC_ID = 0
_MAGIC_GUID = 1
_PREFIX = struct.Struct(">BI")  # magic byte, schema id
_GUID_LENGTH = 16
_HEADER_NAMES: dict[Field, str] = {"key": "__key_schema_id", "value": "__value_schema_id"}

T = TypeVar("T")


def load_schema(name: str, **placeholders: str) -> Any:
    """The JSON of `schemas/<name>.avsc`, with `${placeholder}`s filled in if given.

    E.g. `load_schema("tables/interaction_data")`,
    `load_schema("cdc/users.value", namespace="pg1.user_data.users")`.
    """
    text = (SCHEMAS_DIR / f"{name}.avsc").read_text()
    return json.loads(Template(text).substitute(placeholders) if placeholders else text)


class WriterSchema:
    """A writer schema as fetched once from the registry, with what was derived from it."""

    __slots__ = ("_derived", "named", "parsed", "schema_id")

    def __init__(self, schema_id: SchemaId, schema: Any) -> None:
        self.schema_id = schema_id
        # Named types by full name, which resolve the references inside `parsed`.
        self.named: dict[str, Any] = {}
        # fastavro keeps custom properties such as `connect.name`, which decoders read.
        self.parsed = parse_schema(schema, named_schemas=self.named)
        self._derived: dict[Callable[[WriterSchema], Any], Any] = {}

    def derived(self, build: Callable[[WriterSchema], T]) -> T:
        """`build(self)`, computed once per writer schema (a decoder's converters, say)."""
        try:
            return self._derived[build]
        except KeyError:
            value = self._derived[build] = build(self)
            return value


@dataclass(frozen=True, slots=True)
class AvroEncoder:
    """Writes values of one registered schema in the wire format."""

    schema_id: int
    parsed: Any

    def encode(self, value: Any) -> bytes:
        stream = BytesIO()
        stream.write(_PREFIX.pack(_MAGIC_ID, self.schema_id))
        schemaless_writer(stream, self.parsed, value)
        return stream.getvalue()


class SchemaRegistry:
    """confluent-kafka's `SchemaRegistryClient` plus parsed writer schemas cached by id."""

    def __init__(self, source: Settings | SchemaRegistryClient) -> None:
        if isinstance(source, Settings):
            self.client = SchemaRegistryClient(source.schema_registry_config)
            self._url = _without_credentials(source.schema_registry_url)
        else:
            self.client, self._url = source, "(a given client)"
        self._writers: dict[SchemaId, WriterSchema] = {}
        # Ids the registry does not know, with the error: each record of one such id
        # would otherwise cost another look-up.
        self._unknown: dict[SchemaId, DecodeError] = {}
        self._holds_subjects = False

    def check(self) -> None:
        """Stop now if the registry answers 404 for its own list of subjects: the URL is
        not a schema registry's (a wrong path, or a context that does not exist). An
        unreachable registry is left to the records' retries."""
        try:
            self._holds_subjects = bool(self.client.get_subjects())
        except SchemaRegistryError as error:
            if error.http_status_code == 404:
                raise MisconfiguredRegistry(
                    f"SCHEMA_REGISTRY_URL {self._url} answers 404 for its subjects: it is"
                    f" not the URL of a schema registry ({error})"
                ) from error
        except httpx.HTTPError:
            pass

    def decode(
        self, data: bytes, headers: Headers | None = None, field: Field = "value"
    ) -> tuple[Any, SchemaId]:
        """The Avro datum in `data` (a record's key or value) and its writer schema's id.

        Raises `DecodeError` for bytes that are no such datum, `RegistryUnavailable` when
        the writer schema cannot be fetched now.
        """
        schema_id = _header_schema_id(headers, _HEADER_NAMES[field]) if headers else None
        start = 0
        if schema_id is None:
            try:
                magic, schema_id = _PREFIX.unpack_from(data)
            except struct.error:
                magic = None
            if magic != _MAGIC_ID:
                raise DecodeError(
                    f"{field} is not in the Confluent wire format: it starts with "
                    f"{bytes(data[: _PREFIX.size]).hex() or 'nothing'}, expected magic byte 00 "
                    "and a 4-byte schema id"
                )
            start = _PREFIX.size
        writer = self._writers.get(schema_id) or self.writer_schema(schema_id)
        stream = BytesIO(data)
        stream.seek(start)
        try:
            datum = schemaless_reader(stream, writer.parsed, None)
        except Exception as error:  # fastavro fails in many ways on arbitrary bytes
            raise DecodeError(
                f"{field} does not match its writer schema {schema_id}: "
                f"{type(error).__name__}: {error}"
            ) from error
        if stream.tell() != len(data):
            raise DecodeError(
                f"{field} has {len(data) - stream.tell()} bytes after the datum of "
                f"writer schema {schema_id}"
            )
        return datum, schema_id

    def writer_schema(self, schema_id: SchemaId) -> WriterSchema:
        """The writer schema of an id, fetched from the registry the first time only; an
        id it does not know is remembered as such."""
        writer = self._writers.get(schema_id)
        if writer is None:
            if schema_id in self._unknown:
                raise self._unknown[schema_id]
            try:
                writer = self._writers[schema_id] = self._fetch(schema_id)
            except DecodeError as error:
                self._unknown[schema_id] = error
                raise
        return writer

    def encoder(self, subject: str, schema: Any) -> AvroEncoder:
        """An encoder for `schema`, registered under `subject` now (once per encoder)."""
        parsed = parse_schema(schema)
        registered = Schema(json.dumps(schema), "AVRO")
        with _registry_errors(f"registering a schema under {subject}", record_at_fault=False):
            schema_id = self.client.register_schema(subject, registered)
        return AvroEncoder(schema_id, parsed)

    def _fetch(self, schema_id: SchemaId) -> WriterSchema:
        try:
            with _registry_errors(f"fetching schema {schema_id}", record_at_fault=True):
                schema = (
                    self.client.get_schema_by_guid(str(schema_id))
                    if isinstance(schema_id, UUID)
                    else self.client.get_schema(schema_id)
                )
        except DecodeError:
            self._require_subjects(schema_id)
            raise
        if schema.schema_type not in (None, "AVRO"):
            raise DecodeError(f"schema {schema_id} is a {schema.schema_type} schema, not Avro")
        try:
            return WriterSchema(schema_id, json.loads(schema.schema_str))
        except (ValueError, TypeError, SchemaParseException) as error:
            raise DecodeError(f"schema {schema_id} is not a usable Avro schema: {error}") from error

    def _require_subjects(self, schema_id: SchemaId) -> None:
        """An id unknown to a registry that holds schemas is the record's fault; unknown to
        one that holds none (a wrong registry, an empty context), it is misconfiguration."""
        if self._holds_subjects:
            return
        with _registry_errors("listing the registry's subjects", record_at_fault=False):
            subjects = self.client.get_subjects()
        if not subjects:
            raise MisconfiguredRegistry(
                f"schema {schema_id} is unknown to SCHEMA_REGISTRY_URL {self._url}, which"
                " holds no subjects at all: the wrong registry, or the wrong context"
            )
        self._holds_subjects = True


def _without_credentials(url: str) -> str:
    """A URL for messages: any user and password in it left out."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


# Statuses that say nothing about the request: the registry may answer it later.
_TRANSIENT_STATUSES = frozenset({401, 403, 408, 429})


@contextmanager
def _registry_errors(action: str, *, record_at_fault: bool) -> Iterator[None]:
    """Sorts registry failures into retry-later and, if `record_at_fault`, the record's fault.

    Authentication failures count as transient: a credential fix must not have cost the
    records read in the meantime.
    """
    try:
        yield
    except SchemaRegistryError as error:
        status = error.http_status_code
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise RegistryUnavailable(f"{action}: the registry answered {error}") from error
        if record_at_fault:
            verdict = "unknown to" if status == 404 else "refused by"
            raise DecodeError(f"{action}: {verdict} the registry ({error})") from error
        raise
    except httpx.HTTPError as error:
        raise RegistryUnavailable(f"{action}: the registry is unreachable: {error}") from error


def _header_schema_id(headers: Headers, name: str) -> SchemaId | None:
    """The schema id carried by header `name`: magic 0 + 4-byte id, or magic 1 + GUID."""
    for header, value in headers:
        if header != name or value is None:
            continue
        if len(value) == 1 + 4 and value[0] == _MAGIC_ID:
            return int.from_bytes(value[1:], "big")
        if len(value) == 1 + _GUID_LENGTH and value[0] == _MAGIC_GUID:
            return UUID(bytes=bytes(value[1:]))
        raise DecodeError(f"header {name} holds {bytes(value).hex()}, not a schema id")
    return None
