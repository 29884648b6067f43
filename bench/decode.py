"""Per-record decode cost: `SchemaRegistry.decode` against bare `fastavro.schemaless_reader`.

Run `.venv/bin/python bench/decode.py`. Records are written by the connector emulations
through a mock registry, so the figures need no broker or registry. Besides the
wire-format decode it times the whole CDC decoders and confluent-kafka's deserializer.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from io import BytesIO
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
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


def microseconds(calls: list[Callable[[], Any]], number: int, rounds: int = 7) -> list[float]:
    """µs per call of each of `calls`, best of `rounds` runs taken in turn.

    Taking turns exposes every call to the same load on a busy machine, so the ratios
    hold even when the absolute figures wander.
    """
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for index, call in enumerate(calls):
            best[index] = min(best[index], timeit.timeit(call, number=number))
    return [seconds / number * 1e6 for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
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

    print(
        f"{'record':<20}{'fastavro':>10}{'decode':>10}{'ratio':>8}{'full':>10}{'confluent':>11}"
        "  (µs/record)"
    )
    for name, record, decode_fully in cases:
        bare, ours, full, confluent = measure(registry, record, decode_fully, number)
        figures = f"{bare:>10.2f}{ours:>10.2f}{ours / bare:>8.2f}{full:>10.2f}{confluent:>11.2f}"
        print(f"{name:<20}{figures}")
    print("fastavro  = schemaless_reader on the body, writer schema already parsed")
    print("decode    = SchemaRegistry.decode (wire format, cached writer schema)")
    print("full      = PostgresCdcDecoder.decode (key, value, Debezium types) or")
    print("            DynamoDbCdcDecoder.decode (value, DynamoDB JSON parsed and checked)")
    print("confluent = confluent-kafka's AvroDeserializer, for comparison")


def measure(
    registry: SchemaRegistry,
    record: CdcRecord,
    decode_fully: Callable[[CdcRecord], Any],
    number: int,
) -> tuple[float, float, float, float]:
    """µs per call: bare fastavro, `SchemaRegistry.decode`, whole decoder, confluent-kafka."""
    value = record.value
    assert value is not None
    _, schema_id = registry.decode(value)
    parsed = registry.writer_schema(schema_id).parsed
    body = value[5:]
    confluent = AvroDeserializer(registry.client)
    context = SerializationContext("bench", MessageField.VALUE)
    bare, ours, full, theirs = microseconds(
        [
            lambda: schemaless_reader(BytesIO(body), parsed, None),
            lambda: registry.decode(value),
            lambda: decode_fully(record),
            lambda: confluent(value, context),
        ],
        number,
    )
    return bare, ours, full, theirs


def _postgres(decoder: PostgresCdcDecoder, table: str) -> Callable[[CdcRecord], Any]:
    topic = f"pg1.user_data.{table}"
    return lambda record: decoder.decode(topic, record.key, record.value)


def _dynamodb(decoder: DynamoDbCdcDecoder) -> Callable[[CdcRecord], Any]:
    return lambda record: decoder.decode(record.value)


if __name__ == "__main__":
    main()
