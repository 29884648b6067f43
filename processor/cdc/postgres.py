"""Debezium PostgreSQL change records, in every shape the connectors write, as `RowChange`s.

Accepted without configuration, told apart by the writer schema (once per schema):
- the flat row (`after.state.only=true`), possibly as a `["null", Value]` union;
- the same with ExtractNewRecordState metadata: `__deleted` ("true"/"false"), `__op`, and
  other `__` fields, which are dropped from the row;
- the full envelope (`before`, `after`, `op` c/u/d/r/t/m, `source`, `ts_ms`);
- a tombstone (null value), a delete of the row named by the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from processor.avro import Headers, SchemaRegistry, WriterSchema
from processor.cdc.debezium_types import Conversions, non_null_branch, python_conversions
from processor.cdc.debezium_types import to_python as convert_row
from processor.errors import DecodeError

RowOp = Literal["upsert", "delete", "truncate"]

METADATA_PREFIX = "__"
_UPSERT_OPS = frozenset(("c", "u", "r"))
_ENVELOPE_FIELDS = frozenset(("before", "after", "op"))


@dataclass(frozen=True, slots=True)
class RowChange:
    """One change of a source table: upsert `row`, delete `key`, or truncate the table."""

    table: str
    op: RowOp
    key: dict[str, Any]
    """The primary-key columns (empty for a truncate)."""
    row: dict[str, Any] | None
    """The whole row after an upsert, in Python types; None otherwise."""


@dataclass(frozen=True, slots=True)
class _ValueShape:
    """How to read the values of one writer schema."""

    envelope: bool
    conversions: Conversions
    """Of the row: the flat value, or the envelope's `after`."""
    metadata: tuple[str, ...]
    """`__` fields of a flat row, read for the operation and then dropped."""


class PostgresCdcDecoder:
    """Turns the key and value bytes of a CDC topic's record into a `RowChange`."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    def decode(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> RowChange | None:
        """The change, or None for records that change nothing (Debezium `m` messages)."""
        table = topic.rpartition(".")[2]
        if value is None:
            return RowChange(table, "delete", self._key(key, headers), None)
        datum, schema_id = self._registry.decode(value, headers)
        shape = self._registry.writer_schema(schema_id).derived(_value_shape)
        if shape.envelope:
            return self._from_envelope(table, datum, shape, key, headers)
        if datum is None:  # the null branch of a ["null", Value] schema: as a tombstone
            return RowChange(table, "delete", self._key(key, headers), None)
        deleted = datum.get("__deleted") == "true" or datum.get("__op") == "d"
        for name in shape.metadata:
            del datum[name]
        if deleted:
            return RowChange(table, "delete", self._key(key, headers), None)
        return RowChange(
            table, "upsert", self._key(key, headers), convert_row(datum, shape.conversions)
        )

    def _from_envelope(
        self,
        table: str,
        envelope: dict[str, Any],
        shape: _ValueShape,
        key: bytes | None,
        headers: Headers | None,
    ) -> RowChange | None:
        op = envelope["op"]
        if op in _UPSERT_OPS:
            row = envelope["after"]
            if row is None:
                raise DecodeError(f"a {op!r} event without an after row")
            return RowChange(
                table, "upsert", self._key(key, headers), convert_row(row, shape.conversions)
            )
        if op == "d":  # by the key: `before` may hold only the key columns, or nothing
            return RowChange(table, "delete", self._key(key, headers), None)
        if op == "t":
            return RowChange(table, "truncate", {}, None)
        if op == "m":
            return None
        raise DecodeError(f"unknown Debezium operation {op!r}")

    def _key(self, key: bytes | None, headers: Headers | None) -> dict[str, Any]:
        if key is None:
            raise DecodeError("record has no key, so the row it changes is unknown")
        datum, schema_id = self._registry.decode(key, headers, "key")
        if not isinstance(datum, dict):
            raise DecodeError(f"key is {datum!r}, not a record of primary-key columns")
        return convert_row(datum, self._registry.writer_schema(schema_id).derived(_key_conversions))


def _value_shape(writer: WriterSchema) -> _ValueShape:
    record = _record(writer, writer.parsed, "value")
    fields = {field["name"]: field for field in record["fields"]}
    if fields.keys() >= _ENVELOPE_FIELDS:
        row = _record(writer, fields["after"]["type"], "after row")
        return _ValueShape(True, python_conversions(row, writer.named), ())
    metadata = tuple(name for name in fields if name.startswith(METADATA_PREFIX))
    return _ValueShape(False, python_conversions(record, writer.named), metadata)


def _key_conversions(writer: WriterSchema) -> Conversions:
    return python_conversions(_record(writer, writer.parsed, "key"), writer.named)


def _record(writer: WriterSchema, avro_type: Any, what: str) -> dict[str, Any]:
    record = non_null_branch(avro_type, writer.named)
    if not isinstance(record, dict) or record.get("type") != "record":
        raise DecodeError(f"writer schema {writer.schema_id}: the {what} is not a record")
    return record
