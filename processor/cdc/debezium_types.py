"""Debezium's semantic column types, to Python values and back.

Debezium marks a TIMESTAMP column as a plain Avro `long` named by the property
`connect.name = io.debezium.time.MicroTimestamp` rather than with an Avro logical type,
so fastavro hands back raw integers. The conversions here are chosen per column from the
writer schema, once per schema, and then applied to every row of that schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from processor.errors import DecodeError

MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
MILLI_TIMESTAMP = "io.debezium.time.Timestamp"
DATE = "io.debezium.time.Date"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DATE = date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH_DATE.toordinal()
# PostgreSQL's 'infinity' timestamps arrive as sentinels far outside Python's range; they
# become the extreme datetimes rather than failing the whole row.
LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)

Convert = Callable[[Any], Any]
Conversions = tuple[tuple[str, Convert], ...]
"""(column, conversion) for the columns of a record that need one."""


def non_null_branch(avro_type: Any, named: Mapping[str, Any]) -> Any:
    """The type of a column without its optionality: `["null", T]` and `[T, "null"]` -> T.

    Named types used a second time are references by name; `named` (fastavro's
    `__named_schemas` of the parsed schema) resolves them.
    """
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        avro_type = branches[0] if len(branches) == 1 else avro_type
    if isinstance(avro_type, str):
        return named.get(avro_type, avro_type)
    return avro_type


def connect_name(avro_type: Any) -> str | None:
    return avro_type.get("connect.name") if isinstance(avro_type, dict) else None


def _extreme(value: int) -> datetime:
    return LATEST if value > 0 else EARLIEST


# Positional timedelta arguments and date.fromordinal: about twice as fast as keywords.
def _from_micro_timestamp(micros: int) -> datetime:
    try:
        return EPOCH + timedelta(0, 0, micros)
    except OverflowError:
        return _extreme(micros)


def _from_milli_timestamp(millis: int) -> datetime:
    try:
        return EPOCH + timedelta(0, 0, 0, millis)
    except OverflowError:
        return _extreme(millis)


def _from_date(days: int) -> date:
    try:
        return date.fromordinal(_EPOCH_ORDINAL + days)
    except (ValueError, OverflowError):
        return date.max if days > 0 else date.min


def _from_zoned_timestamp(text: str) -> datetime:
    if text in ("infinity", "-infinity"):
        return LATEST if text == "infinity" else EARLIEST
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _from_variable_scale_decimal(struct: Mapping[str, Any]) -> Decimal:
    # Built from the digits rather than with scaleb(), which would round to 28 digits.
    sign, digits, _ = Decimal(int.from_bytes(struct["value"], "big", signed=True)).as_tuple()
    return Decimal((sign, digits, -struct["scale"]))


_TO_PYTHON: dict[str, Convert] = {
    MICRO_TIMESTAMP: _from_micro_timestamp,
    MILLI_TIMESTAMP: _from_milli_timestamp,
    DATE: _from_date,
    ZONED_TIMESTAMP: _from_zoned_timestamp,
    VARIABLE_SCALE_DECIMAL: _from_variable_scale_decimal,
}


def python_conversions(record: Mapping[str, Any], named: Mapping[str, Any]) -> Conversions:
    """What turns a decoded row of `record` into Python values (datetime, date, Decimal).

    Avro logical types (Connect Decimal, `timestamp-millis`, `date`) need nothing: fastavro
    converts them already.
    """
    conversions = []
    for field in record["fields"]:
        convert = _TO_PYTHON.get(connect_name(non_null_branch(field["type"], named)))
        if convert is not None:
            conversions.append((field["name"], convert))
    return tuple(conversions)


def to_python(row: dict[str, Any], conversions: Conversions) -> dict[str, Any]:
    """`row` with its Debezium-typed columns converted, in place."""
    for name, convert in conversions:
        value = row.get(name)
        if value is not None:
            try:
                row[name] = convert(value)
            except (ValueError, TypeError, KeyError) as error:
                raise DecodeError(f"column {name}: cannot convert {value!r}: {error}") from error
    return row


def _to_micro_timestamp(value: str | datetime) -> int:
    return (_utc(value) - EPOCH) // timedelta(microseconds=1)


def _to_date(value: str | date) -> int:
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return (day - EPOCH_DATE).days


def _utc(value: str | datetime) -> datetime:
    """A TIMESTAMP (without time zone) as Debezium sees it: its wall clock read as UTC."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _to_decimal(scale: int) -> Convert:
    exponent = Decimal(1).scaleb(-scale)

    def convert(value: Any) -> Decimal:
        # Through str() so that a JSON float such as 19.99 keeps its written digits.
        return Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP)

    return convert


_TO_DEBEZIUM: dict[str, Convert] = {MICRO_TIMESTAMP: _to_micro_timestamp, DATE: _to_date}
_PRIMITIVES: dict[str, Convert] = {"int": int, "long": int, "float": float, "double": float}


def debezium_conversions(record: Mapping[str, Any], named: Mapping[str, Any]) -> Conversions:
    """What turns a row as JSON has it (ISO strings, numbers) into what Debezium writes."""
    conversions = []
    for field in record["fields"]:
        convert = _to_debezium_conversion(non_null_branch(field["type"], named))
        if convert is not None:
            conversions.append((field["name"], convert))
    return tuple(conversions)


def _to_debezium_conversion(avro_type: Any) -> Convert | None:
    if isinstance(avro_type, dict):
        by_name = _TO_DEBEZIUM.get(avro_type.get("connect.name"))
        if by_name is not None:
            return by_name
        if avro_type.get("logicalType") == "decimal":
            return _to_decimal(avro_type.get("scale", 0))
        avro_type = avro_type["type"]
    return _PRIMITIVES.get(avro_type) if isinstance(avro_type, str) else None


def to_debezium(row: Mapping[str, Any], conversions: Conversions) -> dict[str, Any]:
    """A copy of `row` in Debezium's representation (NULLs stay None)."""
    converted = dict(row)
    for name, convert in conversions:
        value = converted.get(name)
        if value is not None:
            converted[name] = convert(value)
    return converted
