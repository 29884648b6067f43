"""Per-record decode cost: `SchemaRegistry.decode` against bare `fastavro.schemaless_reader`.

Run `python bench/decode.py`. Records are written by the connector emulations through a
mock registry, so the figures need no broker or registry. Besides the wire-format
decode it times the whole CDC decoders (key too, Debezium types, DynamoDB JSON checks).
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from io import BytesIO
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import schemaless_reader

from processor.avro import SchemaRegistry
from processor.cdc.dynamodb import DynamoDbCdcDecoder
from processor.cdc.postgres import PostgresCdcDecoder
from processor.connectors import CdcRecord, DynamoDbCdcEmulator, PostgresCdcEmulator

USER = {
    "user_id": 4211,
    "username": "alice_w",
    "email": "alice@example.com",
    "password_hash": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
    "registration_date": "2023-04-01T08:15:00",
    "last_login": "2024-06-30T21:02:11.123456",
    "first_name": "Alice",
    "last_name": "Walker",
    "date_of_birth": "1990-05-20",
    "gender": "F",
    "location": "Berlin",
    "preferred_language": "de",
    "time_zone": "Europe/Berlin",
    "account_status": "active",
}
ITEM = {
    "item_id": 981,
    "item_name": "The Left Hand of Darkness",
    "description": "A novel by Ursula K. Le Guin.",
    "category_id": 12,
    "price": "19.99",
    "availability_status": "in_stock",
    "image_url": "https://images.example.com/items/981.jpg",
    "release_date": "1969-03-01",
    "average_rating": "4.50",
    "number_of_ratings": 1289,
    "author_id": 77,
    "brand_id": 5,
    "creation_timestamp": "2024-01-15T10:30:00",
    "last_updated_timestamp": "2024-06-01T00:00:00",
}
INTERACTION = {
    "user_id": {"S": "4211"},
    "timestamp": {"S": "1719781200"},
    "action_type": {"S": "purchase"},
    "activity_type": {"S": "checkout"},
    "session_id": {"S": "9f1c2b7e-3d4a-4c5b-8e6f-7a8b9c0d1e2f"},
    "device_type": {"S": "mobile"},
    "browser_type": {"S": "Firefox"},
    "current_page_url": {"S": "https://shop.example.com/items/981"},
    "referrer_url": {"S": "https://www.example.org/"},
    "item_id": {"S": "981"},
    "ttl": {"N": "1750000000"},
}


def microseconds(call: Callable[[], Any], number: int) -> float:
    """Best of five runs, per call: the least disturbed measurement."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=50_000, help="calls per run")
    number = parser.parse_args().number

    registry = SchemaRegistry(SchemaRegistryClient.new_client({"url": "mock://bench"}))
    postgres = PostgresCdcEmulator(registry, "pg1")
    dynamodb = DynamoDbCdcEmulator(registry, "user-personalization")
    postgres_decoder = PostgresCdcDecoder(registry)
    dynamodb_decoder = DynamoDbCdcDecoder(registry)
    cases: list[tuple[str, CdcRecord, Callable[[CdcRecord], Any]]] = [
        ("users row", postgres.upsert("users", USER), _postgres(postgres_decoder, "users")),
        ("items row", postgres.upsert("items", ITEM), _postgres(postgres_decoder, "items")),
        ("dynamodb document", dynamodb.insert(INTERACTION), _dynamodb(dynamodb_decoder)),
    ]

    print(f"{'record':<20}{'fastavro':>10}{'decode':>10}{'ratio':>8}{'full':>10}  (µs/record)")
    for name, record, decode_fully in cases:
        bare, ours, full = measure(registry, record, decode_fully, number)
        print(f"{name:<20}{bare:>10.2f}{ours:>10.2f}{ours / bare:>8.2f}{full:>10.2f}")
    print("full = PostgresCdcDecoder.decode (key + value + types) / DynamoDbCdcDecoder.decode")


def measure(
    registry: SchemaRegistry,
    record: CdcRecord,
    decode_fully: Callable[[CdcRecord], Any],
    number: int,
) -> tuple[float, float, float]:
    """µs per call of bare fastavro, of `SchemaRegistry.decode`, of the whole decoder."""
    value = record.value
    assert value is not None
    _, schema_id = registry.decode(value)
    parsed = registry.writer_schema(schema_id).parsed
    body = value[5:]
    return (
        microseconds(lambda: schemaless_reader(BytesIO(body), parsed, None), number),
        microseconds(lambda: registry.decode(value), number),
        microseconds(lambda: decode_fully(record), number),
    )


def _postgres(decoder: PostgresCdcDecoder, table: str) -> Callable[[CdcRecord], Any]:
    topic = f"pg1.user_data.{table}"
    return lambda record: decoder.decode(topic, record.key, record.value)


def _dynamodb(decoder: DynamoDbCdcDecoder) -> Callable[[CdcRecord], Any]:
    return lambda record: decoder.decode(record.value)


if __name__ == "__main__":
    main()
