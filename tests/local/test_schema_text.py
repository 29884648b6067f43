"""Which schema texts the registry treats as the same schema, and which it refuses."""

from __future__ import annotations

import json

import pytest

from processor.local.registry.schema_text import InvalidSchema, parse_avro

RECORD = {
    "type": "record",
    "name": "Item",
    "fields": [
        {"name": "item_id", "type": "int"},
        {"name": "status", "type": "string", "default": "in_stock"},
    ],
}


def test_whitespace_and_key_order_do_not_change_the_fingerprint() -> None:
    compact = parse_avro(json.dumps(RECORD, separators=(",", ":")))
    pretty = parse_avro(json.dumps(RECORD, indent=4, sort_keys=True))

    assert pretty.fingerprint == compact.fingerprint
    assert json.loads(pretty.text) == RECORD


@pytest.mark.parametrize(
    "changed",
    [
        RECORD | {"fields": RECORD["fields"][::-1]},  # field order is part of the encoding
        RECORD | {"fields": [RECORD["fields"][0], RECORD["fields"][1] | {"default": "gone"}]},
        RECORD | {"doc": "documented"},
    ],
    ids=["field-order", "default", "doc"],
)
def test_a_change_that_matters_changes_the_fingerprint(changed: dict) -> None:
    assert parse_avro(json.dumps(changed)).fingerprint != parse_avro(json.dumps(RECORD)).fingerprint


def test_the_text_keeps_the_writers_key_order_without_whitespace() -> None:
    assert (
        parse_avro('{ "type" : "map", "values" : "long" }').text == '{"type":"map","values":"long"}'
    )


@pytest.mark.parametrize(
    "text", ["", "{", '"nope"', '{"type": "enum", "name": "E", "symbols": ["a", "a"]}', "42"]
)
def test_invalid_texts_are_refused(text: str) -> None:
    with pytest.raises(InvalidSchema, match="Invalid schema"):
        parse_avro(text)
