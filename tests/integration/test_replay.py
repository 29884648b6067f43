"""Recorded fixtures replayed into the local stack give the checked-in tables.

`test_fixture` replays each fixture of tests/fixtures/ (`pstreams replay`, onto this
test's topic names), runs every topology and compares every table and the dead-letter
counts with `expected/`. `test_record_then_replay_into_a_fresh_stack` records a run on
one stack (`pstreams record`) and replays it into a stack started for the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Producer

from processor.fixtures import Fixture, RecordedMessage, record
from processor.local.stack import down, free_stack_ports, up
from processor.progress import wait_until_caught_up
from processor.seed import SeedOptions, generate, write_dataset
from processor.seed.load import DatasetLoader
from processor.settings import Settings
from processor.topics import create_topics
from processor.topology import all_topologies
from tests.fixtures.recipes import (
    RECIPES,
    Recipe,
    dead_letter_counts,
    read_dead_letters,
    read_expected,
    renaming,
)
from tests.reference.compare import diff, read_tables

pytestmark = pytest.mark.integration

REFRESH = "make fixtures (python -m tests.fixtures.refresh)"


def pstreams_command(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "processor", *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_until_caught_up(settings: Settings, pstreams, env: dict[str, str]) -> dict[str, list]:
    """Every topology run to the end of its input; the tables they wrote."""
    supervisor = pstreams("run", "--all", env=env)
    try:
        lags = wait_until_caught_up(settings, list(all_topologies().values()), timeout=300)
        assert not lags, [str(lag) for lag in lags]
        assert supervisor.poll() is None, "pstreams run --all exited"
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=90)
    tables = read_tables(settings.sqlalchemy_url, settings.postgres_schema)
    return {name: tables.get(name, []) for name in all_topologies()}


# The default run replays the after-state fixture, the shape only the emulation writes;
# the Debezium tests run the other two shapes end to end, so their fixtures are `slow`
# (docs/testing.md: the default run stays under 15 minutes).
@pytest.mark.parametrize(
    "recipe",
    [
        pytest.param(recipe, id=name, marks=() if name == "after-state" else pytest.mark.slow)
        for name, recipe in RECIPES.items()
    ],
)
def test_fixture(recipe: Recipe, settings: Settings, stack_env: dict[str, str], pstreams) -> None:
    expected = read_expected(recipe.expected)
    stale = sorted(all_topologies().keys() - expected.keys())
    assert not stale, f"{recipe.name} has no expected {', '.join(stale)}: run {REFRESH}"
    renames = [f"--rename={recorded}={target}" for recorded, target in renaming(settings).items()]
    pstreams_command(stack_env, "replay", str(recipe.recorded), *renames)

    actual = run_until_caught_up(settings, pstreams, stack_env)

    problems = diff({name: expected[name] for name in all_topologies()}, actual)
    assert not problems, "\n".join(problems)
    wanted_dead_letters = read_dead_letters(recipe)
    assert dead_letter_counts(settings) == {
        name: wanted_dead_letters.get(name) for name in all_topologies()
    }


def test_record_then_replay_into_a_fresh_stack(
    settings: Settings,
    stack_env: dict[str, str],
    pstreams,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = SeedOptions(users=10, items=6, interactions=80, reviews=15, seed=9, changes=30)
    write_dataset(generate(options), tmp_path / "dataset")
    # The CDC topics on two partitions, the interactions on one: purchase_windowed_counts
    # depends on how partitions interleave (docs/windows.md), which no replay reproduces.
    create_topics(settings.kafka_config, [settings.dynamodb_topic], partitions=1)
    DatasetLoader(settings, partitions=2).load(tmp_path / "dataset")
    inputs = [settings.pg_topic(t) for t in ("users", "categories", "items", "reviews")]
    inputs.append(settings.dynamodb_topic)
    pstreams_command(
        stack_env, "record", "--from-beginning", "--out", str(tmp_path / "fx"), "--topics", *inputs
    )
    original = run_until_caught_up(settings, pstreams, stack_env)
    assert sum(map(len, original.values())) > 0

    root = Path(tempfile.mkdtemp(prefix="pstreams-test-fresh-stack-"))
    try:
        fresh = up(root, free_stack_ports())
        fresh_env = stack_env | fresh.env() | {"STATE_DIR": str(tmp_path / "fresh-state")}
        for name, value in fresh_env.items():
            monkeypatch.setenv(name, value)
        fresh_settings = Settings()
        pstreams_command(fresh_env, "replay", str(tmp_path / "fx"))
        copy = record(fresh_settings, inputs, from_beginning=True)
        replayed = run_until_caught_up(fresh_settings, pstreams, fresh_env)
    finally:
        down(root)

    assert diff(original, replayed) == []
    recorded = Fixture.read(tmp_path / "fx")
    assert {recorded.partitions[topic] for topic in inputs} == {1, 2}
    for topic in inputs:  # same partitions, offsets, timestamps and sizes on the fresh stack
        assert sorted(map(outline, copy.records[topic])) == list(
            map(outline, recorded.records[topic])
        ), topic


def outline(message: RecordedMessage) -> tuple:
    size = None if message.value is None else len(message.value)
    return message.partition, message.offset, message.timestamp_ms, size


def test_a_live_recording_takes_what_arrives_until_max(settings: Settings) -> None:
    topic = settings.dynamodb_topic
    create_topics(settings.kafka_config, [topic], partitions=2)
    producer = Producer(settings.producer_config)
    producer.produce(topic, key=b"before", value=b"old", partition=0)
    assert producer.flush(30) == 0
    recording = ThreadPoolExecutor(1).submit(record, settings, [topic], max_records=3)
    produced = []
    while not recording.done() and len(produced) < 120:  # until it has its 3
        value = b"%d" % len(produced)
        producer.produce(topic, value=value, partition=len(produced) % 2, headers=[("h", None)])
        producer.flush(30)
        produced.append(value)
        time.sleep(0.5)

    fixture = recording.result(timeout=30)

    values = [message.value for message in fixture.records[topic]]
    assert len(values) == 3 and set(values) <= set(produced)  # not the record from before
    assert all(m.headers == [("h", None)] for m in fixture.records[topic])
    assert fixture.partitions == {topic: 2}
    assert fixture.schemas == {}
