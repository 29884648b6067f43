"""Soak (SPEC 4, all faults at once): `pstreams run --all` works through a dataset on
4 partitions while its children are SIGKILLed at random moments, its PostgreSQL goes away
and comes back, the broker restarts, bad records of ten kinds are mixed into the inputs,
and a second replica of two topologies joins mid-run and later leaves, so partitions
move with their state.

Then every table equals the reference, every bad record is in a dead-letter topic with
the headers that name it, the replicas left cleanly, and the supervisor restarted its
children for the kills and for nothing else. The short soak runs in `make test`, the
full one (the benchmark dataset, 20 kills, a 60 s outage, 1,000 bad records) in
`make test-slow`. `PSTREAMS_CRASH_SEED` draws another plan (docs/testing.md).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer

from processor.avro import SchemaRegistry
from processor.connectors import DynamoDbCdcEmulator, PostgresCdcEmulator
from processor.local.stack import LocalStack
from processor.pipeline import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, SOURCE_TOPIC_HEADER
from processor.progress import wait_until_caught_up
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader, read_jsonl
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.faults import (
    FaultSchedule,
    SinkDatabase,
    Supervised,
    broker_stopped,
    count_records,
    execute_kill,
    kill_plan,
    warm_up_records,
)
from tests.integration.support import (
    child_failures,
    differences,
    expected_tables,
    generated_items,
    read_topic,
)

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("PSTREAMS_CRASH_SEED", "20261201"))
PARTITIONS = 4
# The topologies a second replica of joins mid-run, and later leaves.
SCALED = ("item_shared_by_user_pair", "highly_rated_item_details")


@dataclass(frozen=True)
class Soak:
    dataset: SeedOptions
    kills: int
    postgres_outage_s: float
    bad_records_per_kind: int


SHORT = Soak(
    SeedOptions(users=60, items=25, interactions=2000, reviews=120, seed=SEED % 1000, changes=80),
    kills=4,
    postgres_outage_s=10.0,
    bad_records_per_kind=10,
)
FULL = Soak(  # the benchmark dataset (docs/performance.md)
    SeedOptions(users=1000, items=500, interactions=100_000, reviews=2000, seed=SEED % 1000),
    kills=20,
    postgres_outage_s=60.0,
    bad_records_per_kind=100,
)


@dataclass(frozen=True)
class BadRecord:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None


def bad_records(settings: Settings, dataset: Path, per_kind: int) -> list[BadRecord]:
    """`per_kind` records of each of ten kinds no table may take (docs/guarantees.md, "Bad
    input"), in the order they are produced: the kinds interleaved."""
    registry = SchemaRegistry(settings)
    dynamodb = DynamoDbCdcEmulator(registry, settings.dynamodb_topic)
    postgres = PostgresCdcEmulator(registry, settings.pg_topic_prefix)
    document_schema = {
        "type": "record",
        "name": "Value",
        "fields": [{"name": "document", "type": ["null", "string"], "default": None}],
    }
    not_json = registry.encoder("not-json-value", document_schema).encode({"document": "{no"})
    item_row = next(iter(read_jsonl(dataset / "items.jsonl")))
    ahead = str(int(time.time()) + 2 * 3600)
    records = []
    for n, item in enumerate(generated_items(per_kind, seed=SEED)):
        interaction = dynamodb.insert(item)
        kinds: dict[str, tuple[str, bytes | None, bytes | None]] = {
            "not Avro": (settings.dynamodb_topic, interaction.key, b"\x07not avro at all"),
            "unknown schema id": (settings.dynamodb_topic, interaction.key, b"\0\0\x0f\x42\x3f\2"),
            "fractional timestamp": (
                settings.dynamodb_topic,
                *dynamodb.insert(item | {"timestamp": {"S": "1700000000.5"}}),
            ),
            "NUL in an attribute": (
                settings.dynamodb_topic,
                *dynamodb.insert(item | {"session_id": {"S": "a\x00b"}}),
            ),
            "document not JSON": (settings.dynamodb_topic, interaction.key, not_json),
            "2 h ahead of the clock": (
                settings.dynamodb_topic,
                *dynamodb.insert(item | {"timestamp": {"S": ahead}}),
            ),
            "timestamp not a number": (
                settings.dynamodb_topic,
                *dynamodb.insert(item | {"timestamp": {"S": "yesterday"}}),
            ),
            "users key not Avro": (settings.pg_topic("users"), b"not a key", b"\0\0\0"),
            "NUL in an item's text": (
                settings.pg_topic("items"),
                *postgres.upsert(
                    "items", item_row | {"item_id": 1_000_000 + n, "image_url": "a\x00b"}
                ),
            ),
            "categories value not Avro": (settings.pg_topic("categories"), b"\x07", b"garbage"),
        }
        records += [BadRecord(kind, *record) for kind, record in kinds.items()]
    return records


def produce_bad(settings: Settings, records: list[BadRecord]) -> list[tuple[BadRecord, tuple]]:
    """Produce `records`; each with where it landed (topic, partition, offset)."""
    producer = Producer(settings.producer_config)
    landed: list[tuple[BadRecord, tuple]] = []

    def delivered(record: BadRecord) -> Callable:
        def report(error, message) -> None:
            assert error is None, error
            landed.append((record, (message.topic(), message.partition(), message.offset())))

        return report

    for n, record in enumerate(records):
        producer.produce(
            record.topic,
            key=record.key,
            value=record.value,
            partition=n % PARTITIONS,
            on_delivery=delivered(record),
        )
    assert producer.flush(60) == 0
    return landed


def dead_letters(settings: Settings) -> dict[str, set[tuple[str, int, int]]]:
    """For each topology, the source records its dead-letter topic names (headers)."""
    found = {}
    for name in all_topologies():
        named = set()
        for message in read_topic(settings, settings.dead_letter_topic_for(name)):
            headers = {key: value.decode() for key, value in message.headers() or []}
            named.add(
                (
                    headers[SOURCE_TOPIC_HEADER],
                    int(headers[SOURCE_PARTITION_HEADER]),
                    int(headers[SOURCE_OFFSET_HEADER]),
                )
            )
        found[name] = named
    return found


def soak(
    soak: Soak,
    local_stack: LocalStack,
    settings: Settings,
    stack_env: dict[str, str],
    sink_database: SinkDatabase,
    pstreams,
    tmp_path: Path,
) -> None:
    write_dataset(generate(soak.dataset), tmp_path / "dataset")
    dataset = tmp_path / "dataset"
    env = stack_env | {"POSTGRES_URL": sink_database.address}
    sink = settings.model_copy(update={"postgres_url": sink_database.address})
    names = sorted(all_topologies())
    loader = DatasetLoader(settings, PARTITIONS)  # source rows into the stack's PostgreSQL
    running = Supervised(pstreams, env)
    supervisor_log = tmp_path / "pstreams-0.log"  # the first process the test started
    replicas: dict[str, subprocess.Popen] = {}

    def replicas_join() -> str:
        for name in SCALED:
            replica = env | {"INSTANCE_ID": "replica-2", "STATE_DIR": str(tmp_path / "state-2")}
            replicas[name] = pstreams("run", name, env=replica)
        return f"second replicas of {', '.join(SCALED)} joined"

    def replicas_leave() -> str:
        for name, process in replicas.items():
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 0, f"the second replica of {name} failed"
        return "the second replicas left"

    def broker_restart() -> str:
        with broker_stopped(local_stack):
            pass  # started again at once
        return "the broker restarted"

    rng = random.Random(SEED)
    warm_up = warm_up_records(dataset)
    records = sum(map(count_records, dataset.glob("*.jsonl")))
    points = range(warm_up + 1, records)
    kills = kill_plan(rng, names, points, soak.kills)
    bad = bad_records(settings, dataset, soak.bad_records_per_kind)
    bad_landed: list[tuple[BadRecord, tuple]] = []

    def produce_batch(batch: list[BadRecord]) -> str:
        bad_landed.extend(produce_bad(settings, batch))
        return f"{len(batch)} bad records"

    join, leave = sorted(rng.sample(points, 2))
    events: list[tuple[int, Callable[[], str]]] = [
        *(
            (kill.after_record, lambda kill=kill: execute_kill(sink, running, kill))
            for kill in kills
        ),
        *(
            (point, lambda n=n: produce_batch(bad[n::5]))
            for n, point in enumerate(rng.sample(points, 5))
        ),
        (rng.choice(points), lambda: sink_database.outage(soak.postgres_outage_s)),
        (rng.choice(points), broker_restart),
        (join, replicas_join),
        (leave, replicas_leave),
    ]
    schedule = FaultSchedule(sink, warm_up, events)
    loader.load(dataset, schedule.on_record)
    schedule.finish()
    sink_database.wait_until_back()
    lags = wait_until_caught_up(sink, list(all_topologies().values()), timeout=900)
    context = f"seed {SEED}; after records " + "; ".join(schedule.done)
    assert not lags, f"{context}: {[str(lag) for lag in lags]}"
    expected = expected_tables(sink, dataset, PARTITIONS, in_event_time_order=True)
    problems = differences(sink, expected)
    assert not problems, f"{context}:\n" + "\n".join(problems)

    assert len(bad_landed) == len(bad)
    named = dead_letters(sink)
    missing = [
        f"{record.kind} at {where}"
        for record, where in bad_landed
        if not any(where in letters for letters in named.values())
    ]
    assert missing == [], f"{context}: bad records without a dead letter: {missing}"
    sigkills = sum(1 + (kill.again_after_s is not None) for kill in kills)
    failures = child_failures(supervisor_log)
    assert [line for line in failures if "exited with -9;" not in line] == [], context
    assert len(failures) == sigkills, context
    print(f"{context}; {len(bad)} bad records, all dead-lettered")


def test_short_soak_in_the_default_run(
    local_stack, settings, stack_env, sink_database, pstreams, tmp_path
) -> None:
    soak(SHORT, local_stack, settings, stack_env, sink_database, pstreams, tmp_path)


@pytest.mark.slow
def test_full_soak_on_the_benchmark_dataset(
    local_stack, settings, stack_env, sink_database, pstreams, tmp_path
) -> None:
    soak(FULL, local_stack, settings, stack_env, sink_database, pstreams, tmp_path)
