"""Input deleted by retention before a stateful topology read it: the topology stops,
naming the partition, instead of wiping its state and recounting what is left."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from processor.settings import Settings
from processor.supervisor import EX_CONFIG
from tests.integration.support import dynamodb_source, generated_items, produce, wait

pytestmark = pytest.mark.integration


def test_a_truncated_input_stops_the_topology(
    settings: Settings, stack_env: dict[str, str], pstreams, tmp_path: Path
) -> None:
    emulator = dynamodb_source(settings)
    items = generated_items(300, seed=11)
    produce(settings, [tuple(emulator.insert(item)) for item in items[:100]])
    pstreams("run", "interaction_data")
    counting = pstreams("run", "co_purchase_counts")
    wait(stack_env, "interaction_data", "co_purchase_counts")

    # co_purchase_counts stops; more arrives, and retention deletes all of it unread.
    counting.terminate()
    assert counting.wait(timeout=60) == 0
    produce(settings, [tuple(emulator.insert(item)) for item in items[100:]])
    wait(stack_env, "interaction_data")
    admin = AdminClient(settings.kafka_config)
    metadata = admin.list_topics(settings.interactions_topic, timeout=30)
    ends = []
    for partition in metadata.topics[settings.interactions_topic].partitions:
        tp = TopicPartition(settings.interactions_topic, partition, -1)  # -1: to the end
        ends.append(tp)
    for future in admin.delete_records(ends).values():
        future.result(timeout=30)

    restarted = pstreams("run", "co_purchase_counts")
    assert restarted.wait(timeout=120) == EX_CONFIG
    log = sorted(tmp_path.glob("pstreams-*.log"))[-1].read_text().strip().splitlines()
    assert "below the broker low watermark" in log[-1], log[-5:]
