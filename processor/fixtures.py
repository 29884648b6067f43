"""Recorded topic fixtures (SPEC section 7): the directory format, recording and replaying.

A fixture is a directory of reviewable text:

    fixture.json          format version, and per topic its partition count and records
    schemas.json          the writer schemas the records reference, by recorded id
    topics/<topic>.jsonl  one record per line, in partition then offset order

Keys, values and header values are the recorded bytes in base64. Replaying registers
each schema under `<topic>-key` / `<topic>-value` of the target topic (the subject
naming of Confluent's connectors), rewrites the 4-byte ids of the Confluent wire format
in keys, values and `__key_schema_id` / `__value_schema_id` headers, and produces every
record to its recorded partition with its recorded timestamp. See docs/fixtures.md.
"""

from __future__ import annotations

import base64
import heapq
import json
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from processor.settings import Settings
from processor.topics import create_topics

FORMAT = 1
MANIFEST = "fixture.json"
SCHEMAS = "schemas.json"
TOPICS = "topics"

Field = Literal["key", "value"]
Headers = list[tuple[str, bytes | None]]

_WIRE_PREFIX = struct.Struct(">BI")  # magic byte 0, big-endian schema id
_ID_HEADERS: dict[str, Field] = {"__key_schema_id": "key", "__value_schema_id": "value"}


class FixtureError(RuntimeError):
    """A fixture cannot be recorded or replayed; the message says why."""


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One Kafka record as it was read: coordinates and the raw bytes."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp_ms,
            "key": _b64(self.key),
            "value": _b64(self.value),
        }
        if self.headers:
            line["headers"] = [[name, _b64(value)] for name, value in self.headers]
        return line

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> RecordedMessage:
        return cls(
            partition=line["partition"],
            offset=line["offset"],
            timestamp_ms=line.get("timestamp"),
            key=_unb64(line.get("key")),
            value=_unb64(line.get("value")),
            headers=[(name, _unb64(value)) for name, value in line.get("headers", [])],
        )

    def schema_ids(self) -> Iterator[tuple[Field, int]]:
        """The (field, schema id) pairs this record references in the wire format."""
        for name, data in (("key", self.key), ("value", self.value)):
            schema_id = wire_schema_id(data)
            if schema_id is not None:
                yield name, schema_id  # type: ignore[misc]
        for name, data in self.headers:
            schema_id = wire_schema_id(data) if name in _ID_HEADERS else None
            if schema_id is not None:
                yield _ID_HEADERS[name], schema_id

    def with_schema_ids(self, new_id: Callable[[Field, int], int]) -> RecordedMessage:
        """This record with every referenced schema id replaced by `new_id(field, id)`."""
        headers = [
            (name, _rewrite(data, lambda i, f=_ID_HEADERS[name]: new_id(f, i)))
            if name in _ID_HEADERS
            else (name, data)
            for name, data in self.headers
        ]
        return RecordedMessage(
            self.partition,
            self.offset,
            self.timestamp_ms,
            _rewrite(self.key, lambda i: new_id("key", i)),
            _rewrite(self.value, lambda i: new_id("value", i)),
            headers,
        )


def wire_schema_id(data: bytes | None) -> int | None:
    """The schema id of Confluent wire-format bytes (magic 0 + 4-byte id), else None."""
    if data is None or len(data) < _WIRE_PREFIX.size or data[0] != 0:
        return None
    return _WIRE_PREFIX.unpack_from(data)[1]


def _rewrite(data: bytes | None, new_id: Callable[[int], int]) -> bytes | None:
    schema_id = wire_schema_id(data)
    if schema_id is None:
        return data
    assert data is not None
    return _WIRE_PREFIX.pack(0, new_id(schema_id)) + data[_WIRE_PREFIX.size :]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass
class Fixture:
    """A fixture in memory: partition counts, records per topic, schemas by recorded id.

    `unknown_schema_ids` are ids records carry that the source registry did not know
    (bad records, typically); replay leaves them as they are.
    """

    partitions: dict[str, int]
    records: dict[str, list[RecordedMessage]]
    schemas: dict[int, dict[str, Any]]
    unknown_schema_ids: list[int] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        topics_dir = directory / TOPICS
        topics_dir.mkdir(parents=True, exist_ok=True)
        for stale in topics_dir.glob("*.jsonl"):
            if stale.stem not in self.records:
                stale.unlink()
        for topic, records in self.records.items():
            ordered = sorted(records, key=lambda r: (r.partition, r.offset))
            lines = "".join(_json_line(record.to_json()) for record in ordered)
            (topics_dir / f"{topic}.jsonl").write_text(lines, encoding="utf-8")
        schemas = {str(schema_id): schema for schema_id, schema in sorted(self.schemas.items())}
        (directory / SCHEMAS).write_text(_pretty(schemas), encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "topics": {
                topic: {"partitions": self.partitions[topic], "records": len(records)}
                for topic, records in sorted(self.records.items())
            },
            "unknown_schema_ids": sorted(self.unknown_schema_ids),
        }
        (directory / MANIFEST).write_text(_pretty(manifest), encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> Fixture:
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            schemas = json.loads((directory / SCHEMAS).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise FixtureError(
                f"{directory} is not a fixture: {error.filename} is missing"
            ) from None
        if manifest.get("format") != FORMAT:
            raise FixtureError(f"{directory}: fixture format {manifest.get('format')!r} unknown")
        records = {}
        for topic in manifest["topics"]:
            path = directory / TOPICS / f"{topic}.jsonl"
            with path.open(encoding="utf-8") as lines:
                records[topic] = [
                    RecordedMessage.from_json(json.loads(line)) for line in lines if line.strip()
                ]
        return cls(
            partitions={t: info["partitions"] for t, info in manifest["topics"].items()},
            records=records,
            schemas={int(schema_id): schema for schema_id, schema in schemas.items()},
            unknown_schema_ids=manifest.get("unknown_schema_ids", []),
        )


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


# --- recording ----------------------------------------------------------------------


def record(
    settings: Settings,
    topics: Iterable[str],
    *,
    max_records: int | None = None,
    from_beginning: bool = False,
) -> Fixture:
    """Read `topics` into a fixture, with the writer schemas their records reference.

    From the beginning: every record below the partition ends taken at the start, so it
    stops at the end of what exists. Otherwise: the records that arrive from now on,
    until `max_records` per topic or KeyboardInterrupt. `max_records` caps each topic.
    """
    topics = list(dict.fromkeys(topics))
    consumer = Consumer(
        settings.kafka_config
        | {
            "group.id": f"pstreams-record-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = _partition_counts(consumer, topics)
        reader = _Reader(consumer, partitions, max_records, from_beginning)
        records = reader.read()
    finally:
        consumer.close()
    schemas, unknown = fetch_schemas(
        SchemaRegistryClient(settings.schema_registry_config),
        {i for rs in records.values() for r in rs for _, i in r.schema_ids()},
    )
    return Fixture(partitions, records, schemas, unknown)


def _partition_counts(consumer: Consumer, topics: list[str]) -> dict[str, int]:
    metadata = consumer.list_topics(timeout=10).topics
    missing = [topic for topic in topics if topic not in metadata]
    if missing:
        raise FixtureError(f"no such topic(s) on the broker: {', '.join(missing)}")
    return {topic: len(metadata[topic].partitions) for topic in topics}


class _Reader:
    """Consumes assigned partitions up to their stop points."""

    def __init__(
        self,
        consumer: Consumer,
        partitions: dict[str, int],
        max_records: int | None,
        from_beginning: bool,
    ) -> None:
        self._consumer = consumer
        self._max = max_records
        self.records: dict[str, list[RecordedMessage]] = {topic: [] for topic in partitions}
        # The end of each partition to stop at (None: no end, live recording).
        self._ends: dict[tuple[str, int], int | None] = {}
        assignment = []
        for topic, count in partitions.items():
            for partition in range(count):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                start = low if from_beginning else high
                if not from_beginning or high > low:
                    self._ends[(topic, partition)] = high if from_beginning else None
                    assignment.append(TopicPartition(topic, partition, start))
        consumer.incremental_assign(assignment)

    def read(self) -> dict[str, list[RecordedMessage]]:
        try:
            while self._ends:
                message = self._consumer.poll(1.0)
                if message is not None:
                    self._take(message)
        except KeyboardInterrupt:
            pass  # a live recording ends here; what was read is kept
        return self.records

    def _take(self, message: Message) -> None:
        coordinates = (message.topic(), message.partition())
        if coordinates not in self._ends:
            return
        end = self._ends[coordinates]
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if end is not None:  # everything below the end has been read
                    self._done(coordinates)
                return
            raise FixtureError(f"reading {coordinates[0]}[{coordinates[1]}]: {error}")
        topic_records = self.records[coordinates[0]]
        if end is not None and message.offset() >= end:
            self._done(coordinates)
            return
        timestamp_type, timestamp = message.timestamp()
        topic_records.append(
            RecordedMessage(
                message.partition(),
                message.offset(),
                timestamp if timestamp_type != TIMESTAMP_NOT_AVAILABLE else None,
                message.key(),
                message.value(),
                list(message.headers() or []),
            )
        )
        if self._max is not None and len(topic_records) >= self._max:
            for other in [c for c in self._ends if c[0] == coordinates[0]]:
                self._done(other)
        elif end is not None and message.offset() >= end - 1:
            self._done(coordinates)

    def _done(self, coordinates: tuple[str, int]) -> None:
        del self._ends[coordinates]
        self._consumer.incremental_unassign([TopicPartition(*coordinates)])


def fetch_schemas(
    client: SchemaRegistryClient, schema_ids: Iterable[int]
) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """The schemas of `schema_ids` as stored in a fixture, and the ids the registry lacks."""
    schemas: dict[int, dict[str, Any]] = {}
    unknown = []
    for schema_id in sorted(set(schema_ids)):
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as error:
            if error.http_status_code != 404:
                raise FixtureError(f"fetching schema {schema_id}: {error}") from error
            unknown.append(schema_id)
            continue
        if schema.references:
            raise FixtureError(f"schema {schema_id} has references, which fixtures do not hold")
        schema_type = schema.schema_type or "AVRO"
        text: Any = schema.schema_str
        if schema_type == "AVRO":
            text = json.loads(text)  # kept as JSON so that a reviewer can read it
        schemas[schema_id] = {"schemaType": schema_type, "schema": text}
    return schemas, unknown


# --- replaying ----------------------------------------------------------------------


def replay(
    settings: Settings,
    fixture: Fixture,
    rename: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Produce `fixture` into the configured broker; returns the records per target topic.

    `rename` maps recorded topic names to target names (the rest keep theirs). Topics
    are created when missing with the recorded partition count; an existing topic with
    fewer partitions is an error. Records go out in timestamp order across topics (the
    recorded interleaving as far as timestamps tell it), each to its recorded partition.
    """
    targets = {topic: (rename or {}).get(topic, topic) for topic in fixture.records}
    _ensure_topics(settings, {targets[t]: n for t, n in fixture.partitions.items()})
    ids = _SchemaIds(SchemaRegistryClient(settings.schema_registry_config), fixture)
    producer = Producer(settings.producer_config)
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    counts = dict.fromkeys(targets.values(), 0)
    for topic, message in replay_order(fixture.records):
        target = targets[topic]
        rewritten = message.with_schema_ids(lambda f, i, t=target: ids.target_id(t, f, i))
        kwargs: dict[str, Any] = {"partition": message.partition, "on_delivery": delivered}
        if message.timestamp_ms is not None:
            kwargs["timestamp"] = message.timestamp_ms
        if rewritten.headers:
            kwargs["headers"] = rewritten.headers
        while True:
            try:
                producer.produce(target, key=rewritten.key, value=rewritten.value, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        counts[target] += 1
    if producer.flush(60) or failures:
        raise FixtureError(f"records not delivered: {failures[:1] or 'flush timed out'}")
    return counts


def replay_order(
    records: Mapping[str, list[RecordedMessage]],
) -> Iterator[tuple[str, RecordedMessage]]:
    """Each partition in offset order, partitions merged by timestamp (stable)."""

    def keyed(topic: str, partition: int) -> Iterator[tuple[int, str, RecordedMessage]]:
        for message in records[topic]:
            if message.partition == partition:
                yield (message.timestamp_ms or 0, topic, message)

    streams = [
        keyed(topic, partition)
        for topic in records
        for partition in sorted({message.partition for message in records[topic]})
    ]
    for _, topic, message in heapq.merge(*streams, key=lambda entry: entry[0]):
        yield topic, message


def _ensure_topics(settings: Settings, partitions: Mapping[str, int]) -> None:
    existing = AdminClient(settings.kafka_config).list_topics(timeout=10).topics
    too_small = [
        f"{topic} has {len(existing[topic].partitions)} partitions, the fixture needs {count}"
        for topic, count in partitions.items()
        if topic in existing and len(existing[topic].partitions) < count
    ]
    if too_small:
        raise FixtureError("; ".join(too_small))
    for count in sorted(set(partitions.values())):
        missing = [t for t, n in partitions.items() if n == count and t not in existing]
        create_topics(settings.kafka_config, missing, count)


class _SchemaIds:
    """Registers recorded schemas in the target registry, once per (topic, field, id)."""

    def __init__(self, client: SchemaRegistryClient, fixture: Fixture) -> None:
        self._client = client
        self._fixture = fixture
        self._ids: dict[tuple[str, Field, int], int] = {}

    def target_id(self, topic: str, field_name: Field, schema_id: int) -> int:
        key = (topic, field_name, schema_id)
        if key not in self._ids:
            self._ids[key] = self._register(f"{topic}-{field_name}", schema_id)
        return self._ids[key]

    def _register(self, subject: str, schema_id: int) -> int:
        recorded = self._fixture.schemas.get(schema_id)
        if recorded is None:  # unknown to the source registry too: leave the bytes alone
            return schema_id
        text = recorded["schema"]
        if not isinstance(text, str):
            text = json.dumps(text)
        try:
            return self._client.register_schema(subject, Schema(text, recorded["schemaType"]))
        except SchemaRegistryError as error:
            raise FixtureError(
                f"registering recorded schema {schema_id} under {subject}: {error}"
            ) from error
