"""DynamoDB items from the Confluent DynamoDB CDC source, after `ExtractField$Value(after)`.

The connector writes each item as a string of DynamoDB JSON in the field `document`:
every attribute is an object with one type descriptor (`{"S": "12"}`, `{"N": "17"}`,
`{"M": {...}}`), named as in AWS's `AttributeValue`. Items keep that typed form, checked,
because the analytics take an attribute's value only when it is typed `S`.
"""

from __future__ import annotations

import re
from base64 import b64decode
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from processor.avro import Headers, SchemaRegistry, WriterSchema
from processor.cdc.debezium_types import non_null_branch
from processor.errors import DecodeError

AttributeValue = Mapping[str, Any]
"""One typed value: a mapping with exactly one type descriptor, e.g. `{"N": "1.5"}`."""
Item = Mapping[str, AttributeValue]

# DynamoDB's own limits: nesting depth of M and L, and the magnitude of numbers.
MAX_DEPTH = 32
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Short enough, and without an exponent, a number is within DynamoDB's range for sure.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_PLAIN_NUMBER_LENGTH = 38
_SMALLEST_EXPONENT = -130
_LARGEST_EXPONENT = 125


def string_attribute(item: Item, name: str) -> str | None:
    """The analytics' value of an attribute: its string if it is typed `S`, else None."""
    value = item.get(name)
    return None if value is None else value.get("S")


def to_python(item: Item) -> dict[str, Any]:
    """Plain Python values: N -> int when integral else Decimal, B -> bytes, sets -> set."""
    return {name: _python_value(value) for name, value in item.items()}


def parse_document(document: str) -> Item:
    """The item in a DynamoDB JSON document, checked attribute by attribute."""
    try:
        item = orjson.loads(document)  # also rejects lone surrogates and absurd nesting
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"document is not JSON: {error}") from error
    if type(item) is not dict:
        raise DecodeError(f"document is {_brief(item)}, not a JSON object of attributes")
    for name, value in item.items():
        # The common case, a string attribute, without a function call.
        if type(value) is not dict or len(value) != 1 or type(value.get("S")) is not str:
            _check(value, name, 1)
    return item


class DynamoDbCdcDecoder:
    """Reads the DynamoDB topic's values: None for a REMOVE, else the item."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    def decode(self, value: bytes | None, headers: Headers | None = None) -> Item | None:
        if value is None:
            return None
        datum, schema_id = self._registry.decode(value, headers)
        if datum is None:  # the null branch of a ["null", Value] schema
            return None
        if self._registry.writer_schema(schema_id).derived(_is_envelope):
            if datum.get("op") == "d" or datum["after"] is None:
                return None
            datum = datum["after"]
        document = datum.get("document")
        if not isinstance(document, str):
            raise DecodeError("record has no document")
        return parse_document(document)


def _is_envelope(writer: WriterSchema) -> bool:
    """Whether values are the connector's envelope (before the SMT) or its `after` record."""
    record = non_null_branch(writer.parsed, writer.named)
    fields = {field["name"] for field in record["fields"]} if isinstance(record, dict) else ()
    if "after" in fields:
        return True
    if "document" in fields:
        return False
    raise DecodeError(
        f"writer schema {writer.schema_id} has neither a document nor an after field: "
        "not a DynamoDB CDC record"
    )


def _check(value: Any, path: str, depth: int) -> None:
    """Raise DecodeError unless `value` is a well-formed attribute value."""
    if type(value) is not dict or len(value) != 1:
        raise DecodeError(
            f"attribute {path}: {_brief(value)} is not an object with one type descriptor"
        )
    ((descriptor, content),) = value.items()
    match descriptor:
        case "S":
            valid = type(content) is str
        case "N":
            valid = _is_number(content)
        case "BOOL":
            valid = type(content) is bool
        case "NULL":
            valid = content is True
        case "B":
            valid = _is_binary(content)
        case "SS":
            valid = type(content) is list and all(type(member) is str for member in content)
        case "NS":
            valid = type(content) is list and all(_is_number(member) for member in content)
        case "BS":
            valid = type(content) is list and all(_is_binary(member) for member in content)
        case "M" | "L":
            _check_nested(descriptor, content, path, depth)
            return
        case _:
            raise DecodeError(f"attribute {path}: unknown type descriptor {descriptor!r}")
    if not valid:
        raise DecodeError(f"attribute {path}: {_brief(content)} is not a valid {descriptor} value")


def _check_nested(descriptor: str, content: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(f"attribute {path}: nested deeper than {MAX_DEPTH} levels")
    if descriptor == "M" and type(content) is dict:
        for name, member in content.items():
            _check(member, f"{path}.{name}", depth + 1)
    elif descriptor == "L" and type(content) is list:
        for index, member in enumerate(content):
            _check(member, f"{path}[{index}]", depth + 1)
    else:
        raise DecodeError(f"attribute {path}: {_brief(content)} is not a valid {descriptor} value")


def _is_number(text: Any) -> bool:
    if type(text) is not str:
        return False
    if len(text) <= _PLAIN_NUMBER_LENGTH and _PLAIN_NUMBER.fullmatch(text):
        return True
    if not _NUMBER.fullmatch(text):
        return False
    number = Decimal(text)
    return not number or _SMALLEST_EXPONENT <= number.adjusted() <= _LARGEST_EXPONENT


def _is_binary(text: Any) -> bool:
    if type(text) is not str:
        return False
    try:
        b64decode(text, validate=True)
    except ValueError:
        return False
    return True


def _number(text: str) -> int | Decimal:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else number


def _python_value(value: AttributeValue) -> Any:
    ((descriptor, content),) = value.items()
    match descriptor:
        case "N":
            return _number(content)
        case "NULL":
            return None
        case "B":
            return b64decode(content)
        case "SS":
            return set(content)
        case "NS":
            return {_number(member) for member in content}
        case "BS":
            return {b64decode(member) for member in content}
        case "M":
            return to_python(content)
        case "L":
            return [_python_value(member) for member in content]
        case _:  # S and BOOL hold their Python value already
            return content


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
