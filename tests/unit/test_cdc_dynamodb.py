"""DynamoDB CDC records and DynamoDB JSON, including property tests of the edge cases."""

from __future__ import annotations

import json
from base64 import b64encode
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.cdc.dynamodb import (
    MAX_DEPTH,
    DynamoDbCdcDecoder,
    parse_document,
    string_attribute,
    to_python,
)
from processor.connectors import DynamoDbCdcEmulator
from processor.errors import DecodeError
from tests.unit.avro_support import mock_registry, serialize

TOPIC = "personalization-dev-user-personalization"
NAMESPACE = "io.confluent.connect.dynamodb.personalization_dev_user_personalization"
VALUE = {
    "type": "record",
    "name": "Value",
    "namespace": NAMESPACE,
    "fields": [{"name": "document", "type": ["null", "string"], "default": None}],
    "connect.name": f"{NAMESPACE}.Value",
}
# The connector's envelope before the SMT, as captured from it (docs/decoding.md), source
# reduced.
ENVELOPE = [
    "null",
    {
        "type": "record",
        "name": "Envelope",
        "namespace": NAMESPACE,
        "fields": [
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": "long"},
            {"name": "ts_us", "type": "long"},
            {"name": "ts_ns", "type": "long"},
            {
                "name": "source",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Source",
                        "namespace": "io.confluent.connector.dynamodb",
                        "fields": [
                            {"name": "tableName", "type": "string"},
                            {"name": "sync_mode", "type": "string"},
                        ],
                    },
                ],
                "default": None,
            },
            {"name": "before", "type": ["null", VALUE], "default": None},
            {"name": "after", "type": ["null", "Value"], "default": None},
        ],
        "connect.name": f"{NAMESPACE}.Envelope",
    },
]
ITEM = {
    "user_id": {"S": "12"},
    "timestamp": {"S": "1700000000"},
    "action_type": {"S": "purchase"},
    "item_id": {"N": "42"},
    "ttl": {"N": "1794000000"},
}
DOCUMENT = json.dumps(ITEM)


def envelope(op: str, before: str | None, after: str | None) -> dict[str, Any]:
    def value(document: str | None) -> dict[str, Any] | None:
        return None if document is None else {"document": document}

    return {
        "op": op,
        "ts_ms": 1720625711347,
        "ts_us": 1720625711347098,
        "ts_ns": 1720625711347098433,
        "source": {"tableName": TOPIC, "sync_mode": "CDC" if op != "r" else "SNAPSHOT"},
        "before": value(before),
        "after": value(after),
    }


@pytest.fixture
def registry() -> Any:
    return mock_registry()


@pytest.fixture
def decoder(registry: Any) -> DynamoDbCdcDecoder:
    return DynamoDbCdcDecoder(registry)


@pytest.mark.parametrize("schema", [VALUE, ["null", VALUE]], ids=["record", "union"])
def test_document_record_gives_the_item(registry: Any, decoder: Any, schema: Any) -> None:
    value = serialize(registry, TOPIC, schema, {"document": DOCUMENT})

    assert decoder.decode(value) == ITEM


@pytest.mark.parametrize("op", ["r", "c", "u"])
def test_envelope_gives_the_item_after(registry: Any, decoder: Any, op: str) -> None:
    value = serialize(registry, TOPIC, ENVELOPE, envelope(op, None, DOCUMENT))

    assert decoder.decode(value) == ITEM


def test_envelope_remove_is_no_interaction(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, ENVELOPE, envelope("d", DOCUMENT, None))

    assert decoder.decode(value) is None


def test_null_value_is_no_interaction(decoder: Any) -> None:
    assert decoder.decode(None) is None


def test_record_with_a_null_document_is_a_decode_error(registry: Any, decoder: Any) -> None:
    value = serialize(registry, TOPIC, VALUE, {"document": None})

    with pytest.raises(DecodeError, match="no document"):
        decoder.decode(value)


def test_a_schema_of_something_else_is_a_decode_error(registry: Any, decoder: Any) -> None:
    schema = VALUE | {"fields": [{"name": "payload", "type": "string"}]}
    value = serialize(registry, TOPIC, schema, {"payload": "{}"})

    with pytest.raises(DecodeError, match="neither a document nor an after field"):
        decoder.decode(value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not JSON"),
        ("", "not JSON"),
        ('"\\ud800"', "not JSON"),  # a lone surrogate
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
        ('{"a": "text"}', "attribute a: 'text' is not an object"),
        ('{"a": {}}', "attribute a: {} is not an object with one type descriptor"),
        ('{"a": {"S": "x", "N": "1"}}', "attribute a: .* is not an object with one"),
        ('{"a": {"s": "x"}}', "unknown type descriptor 's'"),
        ('{"a": {"S": 1}}', "attribute a: 1 is not a valid S value"),
        ('{"a": {"N": "1,5"}}', "not a valid N value"),
        ('{"a": {"N": 15}}', "not a valid N value"),
        ('{"a": {"N": "NaN"}}', "not a valid N value"),
        ('{"a": {"N": "1e126"}}', "not a valid N value"),
        ('{"a": {"N": "1e-131"}}', "not a valid N value"),
        ('{"a": {"BOOL": "true"}}', "not a valid BOOL value"),
        ('{"a": {"NULL": false}}', "not a valid NULL value"),
        ('{"a": {"B": "not base64!"}}', "not a valid B value"),
        ('{"a": {"SS": ["x", 1]}}', "not a valid SS value"),
        ('{"a": {"NS": "1"}}', "not a valid NS value"),
        ('{"a": {"BS": ["@@"]}}', "not a valid BS value"),
        ('{"a": {"M": []}}', "not a valid M value"),
        ('{"a": {"L": {}}}', "not a valid L value"),
        ('{"a": {"M": {"b": {"L": [{"S": "x"}, {"N": "x"}]}}}}', r"attribute a\.b\[1\]: "),
    ],
)
def test_malformed_documents_are_decode_errors(document: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_document(document)


def test_nesting_beyond_dynamodbs_limit_is_a_decode_error() -> None:
    deep: dict[str, Any] = {"S": "bottom"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"L": [deep]}

    with pytest.raises(DecodeError, match="nested deeper than"):
        parse_document(json.dumps({"a": deep}))


def test_string_attribute_is_the_s_value_or_none() -> None:
    item = parse_document(
        '{"user_id": {"S": "12"}, "item_id": {"N": "42"}, "referrer_url": {"NULL": true}}'
    )

    assert string_attribute(item, "user_id") == "12"
    assert string_attribute(item, "item_id") is None  # number-typed: NULL, as in Flink
    assert string_attribute(item, "referrer_url") is None
    assert string_attribute(item, "session_id") is None


def test_integral_numbers_become_ints_others_decimals() -> None:
    values = to_python(
        parse_document(
            '{"a": {"N": "17"}, "b": {"N": "1.50"}, "c": {"N": "2E+3"}, "d": {"N": "-0.0"}}'
        )
    )

    assert values == {"a": 17, "b": Decimal("1.50"), "c": 2000, "d": 0}
    assert [type(value) for value in values.values()] == [int, Decimal, int, int]


# Strategies generate an attribute value together with the Python value it stands for.
numbers = st.one_of(
    st.integers(-(10**38) + 1, 10**38 - 1).map(lambda n: (str(n), n)),
    st.decimals(
        min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=4, allow_nan=False
    ).map(lambda d: (str(d), d)),
)
binaries = st.binary(max_size=16).map(lambda b: (b64encode(b).decode(), b))
scalars = st.one_of(
    st.text().map(lambda s: ({"S": s}, s)),
    numbers.map(lambda n: ({"N": n[0]}, n[1])),
    st.booleans().map(lambda b: ({"BOOL": b}, b)),
    st.just(({"NULL": True}, None)),
    binaries.map(lambda b: ({"B": b[0]}, b[1])),
    st.sets(st.text(), min_size=1, max_size=4).map(lambda s: ({"SS": sorted(s)}, s)),
    st.lists(numbers, min_size=1, max_size=4, unique_by=lambda n: n[1]).map(
        lambda ns: ({"NS": [n[0] for n in ns]}, {n[1] for n in ns})
    ),
    st.lists(binaries, min_size=1, max_size=4, unique_by=lambda b: b[1]).map(
        lambda bs: ({"BS": [b[0] for b in bs]}, {b[1] for b in bs})
    ),
)


def _nested(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.dictionaries(st.text(), children, max_size=4).map(
            lambda d: ({"M": {k: v[0] for k, v in d.items()}}, {k: v[1] for k, v in d.items()})
        ),
        st.lists(children, max_size=4).map(
            lambda xs: ({"L": [x[0] for x in xs]}, [x[1] for x in xs])
        ),
    )


attribute_values = st.recursive(scalars, _nested, max_leaves=12)
items = st.dictionaries(st.text(min_size=1), attribute_values, max_size=8)


@given(item=items, ascii_only=st.booleans())
def test_any_item_round_trips_through_its_json(item: dict, ascii_only: bool) -> None:
    typed = {name: value[0] for name, value in item.items()}
    document = json.dumps(typed, ensure_ascii=ascii_only)

    parsed = parse_document(document)

    assert parsed == typed
    assert to_python(parsed) == {name: value[1] for name, value in item.items()}


# Module-level: hypothesis runs a test many times, and a fixture once.
ROUND_TRIP_REGISTRY = mock_registry()
ROUND_TRIP_EMULATOR = DynamoDbCdcEmulator(ROUND_TRIP_REGISTRY, TOPIC)
ROUND_TRIP_DECODER = DynamoDbCdcDecoder(ROUND_TRIP_REGISTRY)


@given(item=items, user_id=st.text(), timestamp=st.text())
def test_any_item_round_trips_through_the_connector(
    item: dict, user_id: str, timestamp: str
) -> None:
    typed = {name: value[0] for name, value in item.items()}
    typed |= {"user_id": {"S": user_id}, "timestamp": {"S": timestamp}}

    record = ROUND_TRIP_EMULATOR.insert(typed)

    assert ROUND_TRIP_DECODER.decode(record.value) == typed


DESCRIPTORS = ["S", "N", "BOOL", "NULL", "B", "SS", "NS", "BS", "M", "L"]


def _wrong_content(descriptor: str) -> st.SearchStrategy:
    contents = st.one_of(st.integers(), st.floats(), st.none(), st.just([[]]))
    if descriptor != "S":
        contents |= st.just("?!")
    return contents.map(lambda content: {descriptor: content})


malformed_values = st.one_of(
    st.one_of(st.text(), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
    st.just({}),
    st.just({"S": "x", "N": "1"}),
    st.text().filter(lambda d: d not in DESCRIPTORS).map(lambda d: {d: "x"}),
    st.sampled_from(DESCRIPTORS).flatmap(_wrong_content),
)


def _embed(bad: Any) -> st.SearchStrategy:
    """`bad` somewhere inside valid M and L values."""
    return st.recursive(
        st.just(bad),
        lambda inner: st.one_of(
            st.tuples(st.text(), inner).map(lambda kv: {"M": {kv[0]: kv[1]}}),
            st.tuples(attribute_values, inner).map(lambda xs: {"L": [xs[0][0], xs[1]]}),
        ),
        max_leaves=5,
    )


@given(
    good=items,
    bad=malformed_values.flatmap(_embed),
    name=st.text(min_size=1),
)
def test_any_malformed_attribute_anywhere_is_a_decode_error(
    good: dict, bad: Any, name: str
) -> None:
    typed = {key: value[0] for key, value in good.items()} | {name: bad}

    with pytest.raises(DecodeError):
        parse_document(json.dumps(typed))


@given(document=st.text())
def test_any_text_parses_or_raises_decode_error(document: str) -> None:
    try:
        item = parse_document(document)
    except DecodeError:
        return
    assert isinstance(item, dict)


def test_unicode_survives() -> None:
    item = {"名前": {"S": "Grüße, 世界 🌍 ‏שלום"}, "zero\u0000width": {"SS": ["\u200b", "é"]}}

    assert parse_document(json.dumps(item, ensure_ascii=False)) == item
    assert parse_document(json.dumps(item)) == item
