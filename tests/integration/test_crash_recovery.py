"""Crash tests (SPEC 4): topologies SIGKILLed at seeded pseudo-random instants while a
dataset loads, restarted, and every table still equals the reference model.

Each kill picks a topology, a point in the load and a pause before the kill (the
topologies work on the burst just loaded and are somewhere in a checkpoint: they commit
every second); every other kill then waits for the topology's sink to write to PostgreSQL
and kills it a few milliseconds into the checkpoint's commit. Some kills wipe the
topology's state directory first, so it comes back as a new replica that restores its
stores from the changelog topics; some kill the restarted process again moments after it
started, while it joins its group and restores. Two ways of coming back are tested: the
children of `pstreams run --all`, restarted by its supervisor, and separate
`pstreams run NAME` processes restarted by the test, as an orchestrator restarts a
container. `PSTREAMS_CRASH_SEED` draws another plan; docs/testing.md has the details.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from processor.progress import wait_until_caught_up
from processor.seed.load import DatasetLoader
from processor.settings import Settings
from processor.topology import all_topologies
from tests.integration.faults import (
    FaultSchedule,
    Processes,
    Separate,
    Supervised,
    count_records,
    dataset,
    execute_kill,
    kill_plan,
    warm_up_records,
)
from tests.integration.support import differences, expected_tables

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("PSTREAMS_CRASH_SEED", "20261201"))


def crash_while_loading(
    settings: Settings,
    processes: Callable[[list[str]], Processes],
    dataset: Path,
    partitions: int,
    kills: int,
) -> None:
    """Load `dataset` while `kills` planned kills happen, wait, compare with the reference."""
    names = sorted(all_topologies())
    loader = DatasetLoader(settings, partitions)
    running = processes(names)
    warm_up = warm_up_records(dataset)
    records = sum(map(count_records, dataset.glob("*.jsonl")))
    plan = kill_plan(random.Random(SEED), names, range(warm_up + 1, records), kills)
    schedule = FaultSchedule(
        settings,
        warm_up,
        [(k.after_record, lambda k=k: execute_kill(settings, running, k)) for k in plan],
    )
    started = time.monotonic()
    loader.load(dataset, schedule.on_record)
    schedule.finish()
    topologies = all_topologies()
    lags = wait_until_caught_up(settings, list(topologies.values()), timeout=300)
    context = f"seed {SEED}, kills after records " + "; ".join(schedule.done)
    assert not lags, f"{context}: {[str(lag) for lag in lags]}"
    expected = expected_tables(settings, dataset, partitions, in_event_time_order=True)
    problems = differences(settings, expected)
    assert not problems, f"{context}:\n" + "\n".join(problems)
    print(f"{context}; caught up {time.monotonic() - started:.0f} s after the load began")


def test_children_of_the_supervisor_killed_and_restarted(
    settings: Settings, pstreams, tmp_path: Path
) -> None:
    crash_while_loading(
        settings,
        lambda names: Supervised(pstreams),
        dataset(tmp_path, interactions=1000, seed=SEED % 1000),
        partitions=2,
        kills=6,
    )


@pytest.mark.slow
def test_separate_processes_killed_many_times(settings: Settings, pstreams, tmp_path: Path) -> None:
    crash_while_loading(
        settings,
        lambda names: Separate(pstreams, names),
        dataset(tmp_path, interactions=4000, seed=SEED % 1000 + 1),
        partitions=3,
        kills=16,
    )
