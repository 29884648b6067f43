"""Runs a real topology's dataframe over simulated topics, checkpoints, crashes and a table.

The topology's own `build` wires real Quix `StreamingDataFrame`s through a real
`processor.pipeline.Pipeline` (its stores, outboxes, checkpoint hook and internal topics);
only what lies outside the dataframe is simulated, in memory:

- `Cluster`: what survives a process: the topic logs (partition by key hash, as the
  producers' default partitioner does), the consumer group's committed offsets, the
  committed state of every store partition (Quix's own in-memory store partitions), and
  the derived table (the sink's upserts and deletes applied to a dict by key).
- `Process`: one run of the topology over the cluster: a fake Quix application and
  processing context (topics, dataframes, store registration, a checkpoint handing out
  store transactions, a producer that appends to the logs at commit), and Quix's real
  message context for each delivered record.
- A `Schedule` decides, step by step, which partition delivers its next record, when a
  checkpoint commits, and when one is lost: sink backpressure (the same process rewinds
  to the committed offsets with a new checkpoint) or a crash (a new process starts from
  the cluster, possibly after the table was already written). Records produced in a lost
  checkpoint are dropped or, as the local broker shows aborted transactions to
  read-committed consumers, delivered anyway.

Inputs are the values the parsers emit (`RowChange`, `Interaction`): no Avro, no broker,
no RocksDB. Anything of Quix's API the fakes do not provide fails with AttributeError.
"""

from __future__ import annotations

import contextvars
import zlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from quixstreams.context import set_message_context
from quixstreams.dataframe import DataFrameRegistry, StreamingDataFrame
from quixstreams.models import MessageContext, Topic, TopicConfig
from quixstreams.models.topics import TopicAdmin, TopicManager
from quixstreams.sinks import SinkManager
from quixstreams.state.base import PartitionTransaction
from quixstreams.state.memory.partition import MemoryStorePartition

from processor.backoff import Backoff
from processor.pipeline import Pipeline
from processor.settings import Settings
from processor.sinks.postgres import PostgresTableSink
from processor.topology import Topology

# Retention the pipeline's derived topic configs read from every source topic.
RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}
MAX_LOST_CHECKPOINTS = 4


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a topic log: internal topics hold bytes, source topics parsed values."""

    key: bytes | None
    value: Any
    timestamp_ms: int = 0


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a keyed record (the default partitioners hash the key bytes)."""
    return zlib.crc32(key) % partitions


@dataclass
class Cluster:
    """Everything that outlives a topology process."""

    partitions: int
    logs: dict[str, list[list[Record]]] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    stores: dict[tuple[str, int], MemoryStorePartition] = field(default_factory=dict)
    table: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)

    def log(self, topic: str) -> list[list[Record]]:
        if topic not in self.logs:
            self.logs[topic] = [[] for _ in range(self.partitions)]
        return self.logs[topic]

    def append(self, topic: str, partition: int, record: Record) -> None:
        self.log(topic)[partition].append(record)

    def store(self, stream_id: str, partition: int) -> MemoryStorePartition:
        key = (stream_id, partition)
        if key not in self.stores:
            self.stores[key] = MemoryStorePartition(changelog_producer=None)
        return self.stores[key]

    def table_rows(self) -> list[tuple[Any, ...]]:
        """The table's rows as tuples in column order (as `tests.reference.compare` reads)."""
        return list(self.table.values())


class DictTableSink(PostgresTableSink):
    """The real sink (coalescing per key, absolute values), writing to the cluster's dict."""

    def __init__(self, table: sa.Table, rows: dict[tuple[Any, ...], tuple[Any, ...]]) -> None:
        engine = sa.create_engine("postgresql+psycopg://")  # never connects: `_write` is ours
        super().__init__(engine, table, "public", Backoff(maximum=1.0))
        self._rows = rows

    def _write(self, pending: dict[tuple[Any, ...], tuple[Any, ...] | None]) -> None:
        for key, row in pending.items():
            if row is None:
                self._rows.pop(key, None)
            else:
                self._rows[key] = row


class SimulatedProducer:
    """Holds what a checkpoint produces until the checkpoint ends."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.pending.append((topic, key, value))

    def produce_row(self, row: Any, topic: Topic, key: Any, timestamp: int | None = None) -> None:
        """What `StreamingDataFrame.to_topic` sends, serialized by the topic itself."""
        message = topic.row_serialize(row=row, key=key)
        self.pending.append((topic.name, message.key, message.value))


class SimulatedStateManager:
    """Accepts Quix's default store of a stream; nothing else is simulated."""

    def __init__(self) -> None:
        self.stream_ids: set[str] = set()

    def register_store(
        self, stream_id: str, store_type: Any = None, changelog_config: Any = None
    ) -> None:
        if store_type is not None:
            raise NotImplementedError(f"store type {store_type!r} is not simulated")
        self.stream_ids.add(stream_id)


class SimulatedCheckpoint:
    """Store transactions of one checkpoint, begun on the committed store partitions."""

    def __init__(self, cluster: Cluster, stream_ids: set[str]) -> None:
        self._cluster = cluster
        self._stream_ids = stream_ids
        self.transactions: dict[tuple[str, int], PartitionTransaction] = {}

    def get_store_transaction(
        self, stream_id: str, partition: int, store_name: str = "default"
    ) -> PartitionTransaction:
        if stream_id not in self._stream_ids or store_name != "default":
            raise KeyError(f"no store {store_name!r} registered for stream {stream_id!r}")
        key = (stream_id, partition)
        if key not in self.transactions:
            self.transactions[key] = self._cluster.store(stream_id, partition).begin()
        return self.transactions[key]

    def commit(self) -> None:
        for transaction in self.transactions.values():
            transaction.prepare(processed_offsets={})
            transaction.flush()


@dataclass
class SimulatedContext:
    """The part of Quix's `ProcessingContext` the dataframes and `processor` use."""

    producer: SimulatedProducer
    state_manager: SimulatedStateManager
    sink_manager: SinkManager
    checkpoint: SimulatedCheckpoint | None = None


class SimulatedApp:
    """`Application.topic` and `Application.dataframe` without a broker."""

    def __init__(self, cluster: Cluster, context: SimulatedContext) -> None:
        self._cluster = cluster
        self._context = context
        self.registry = DataFrameRegistry()
        self.partitions = cluster.partitions
        # Never connects: the dataframes only use it to name streams and derive configs.
        self._topic_manager = TopicManager(TopicAdmin("127.0.0.1:9"), consumer_group="sim")

    def topic(self, name: str, *, config: TopicConfig | None = None, **serdes: Any) -> Topic:
        topic = Topic(name, create_config=config, **serdes)
        topic.broker_config = TopicConfig(
            num_partitions=self._cluster.partitions, replication_factor=1, extra_config=RETENTION
        )
        self._cluster.log(name)
        return topic

    def dataframe(self, topic: Topic) -> StreamingDataFrame:
        sdf = StreamingDataFrame(
            topic,
            topic_manager=self._topic_manager,
            registry=self.registry,
            processing_context=self._context,  # type: ignore[arg-type]
        )
        self.registry.register_root(sdf)
        return sdf


class SimulatedPipeline(Pipeline):
    """A `Pipeline` whose sources are already-parsed values (no decoding, no dead letters);
    every topic, the DynamoDB CDC topic included, has the cluster's partition count."""

    def partitions_of(self, topic_name: str) -> int:
        return self.app.partitions

    def source(self, topic_name: str, parse: Callable[..., Any]) -> StreamingDataFrame:
        topic = self.app.topic(topic_name)
        self._sources.append(topic)
        return self.app.dataframe(topic)


# Settings of every simulated process: the topic names the topologies derive from them.
SETTINGS = Settings(
    pg_topic_prefix="pg",
    interactions_topic="interaction_data",
    dynamodb_topic="dynamodb-cdc",
    consumer_group_prefix="sim-",
    # The reference rule knows no idle sources; 0 turns the idle timeout off.
    window_idle_timeout_s=0,
    late_events_topic="late-purchases",
)


class Process:
    """One process of the topology over the cluster, from the committed offsets on."""

    def __init__(self, topology: Topology, cluster: Cluster) -> None:
        self._cluster = cluster
        self._context = SimulatedContext(
            SimulatedProducer(), SimulatedStateManager(), SinkManager()
        )
        app = SimulatedApp(cluster, self._context)
        pipeline = SimulatedPipeline(app, SETTINGS, topology.name, registry=None)  # type: ignore[arg-type]
        self.sink = DictTableSink(topology.table, cluster.table)
        topology.build(pipeline).sink(self.sink)
        self._executors = app.registry.compose_all()
        self.positions = dict(cluster.committed)
        self._message_context = contextvars.copy_context()
        self._new_checkpoint()

    def _new_checkpoint(self) -> None:
        self._context.checkpoint = SimulatedCheckpoint(
            self._cluster, self._context.state_manager.stream_ids
        )
        self._context.producer.pending = []

    def readable(self) -> list[tuple[str, int]]:
        """The (topic, partition)s with a record to deliver, in a stable order."""
        return [
            (topic, partition)
            for topic in sorted(self._executors)
            for partition, log in enumerate(self._cluster.log(topic))
            if self.positions.get((topic, partition), 0) < len(log)
        ]

    def deliver(self, topic: str, partition: int) -> None:
        offset = self.positions.get((topic, partition), 0)
        record = self._cluster.log(topic)[partition][offset]
        key, value = record.key, record.value
        if isinstance(value, bytes):  # an internal topic: string keys, JSON values
            key, value = (None if key is None else key.decode()), orjson.loads(value)
        context = MessageContext(topic=topic, partition=partition, offset=offset, size=0)
        self._message_context.run(set_message_context, context)
        self._message_context.run(self._executors[topic], value, key, record.timestamp_ms, None)
        self.positions[(topic, partition)] = offset + 1

    def _flush_sinks(self) -> None:
        """Quix's commit step 1: the checkpoint hook first, then the table's sink."""
        for sink in self._context.sink_manager.sinks:
            sink.flush()

    def _publish(self) -> None:
        for topic, key, value in self._context.producer.pending:
            partition = 0 if key is None else partition_for(key, self._cluster.partitions)
            self._cluster.append(topic, partition, Record(key, value))

    def commit(self) -> None:
        """Sinks, state, produced records and offsets, in Quix's order."""
        self._flush_sinks()
        self._context.checkpoint.commit()
        self._publish()
        self._cluster.committed.update(self.positions)
        self._new_checkpoint()

    def backpressure(self, show_aborted: bool) -> None:
        """The table's sink fails to flush: Quix drops the checkpoint and rewinds."""
        for sink in self._context.sink_manager.sinks:
            if sink is self.sink:
                sink.on_paused()
            else:
                sink.flush()
        if show_aborted:
            self._publish()
        self.positions = dict(self._cluster.committed)
        self._new_checkpoint()

    def crash(self, after_sinks: bool, show_aborted: bool) -> None:
        """The process dies, maybe after its sinks wrote but before Kafka committed."""
        if after_sinks:
            self._flush_sinks()
            if show_aborted:
                self._publish()


class Schedule(Protocol):
    """Chooses what happens next; `choose(n)` returns an index below n."""

    def choose(self, n: int) -> int: ...


DELIVER, COMMIT, BACKPRESSURE, CRASH = range(4)
# Relative weights of the steps; delivering (index 0) is the one a shrinker falls back to.
STEP_WEIGHTS = (DELIVER,) * 12 + (COMMIT, BACKPRESSURE, CRASH) * 2


def run(topology: Topology, cluster: Cluster, schedule: Schedule, max_steps: int) -> None:
    """Process the cluster's topics as `schedule` says, then drain them to quiescence."""
    process = Process(topology, cluster)
    lost = 0
    for _ in range(max_steps):
        readable = process.readable()
        step = STEP_WEIGHTS[schedule.choose(len(STEP_WEIGHTS))]
        if step in (BACKPRESSURE, CRASH) and lost < MAX_LOST_CHECKPOINTS:
            lost += 1
            show_aborted = bool(schedule.choose(2))
            if step == BACKPRESSURE:
                process.backpressure(show_aborted)
            else:
                process.crash(after_sinks=bool(schedule.choose(2)), show_aborted=show_aborted)
                process = Process(topology, cluster)
        elif step == DELIVER and readable:
            process.deliver(*readable[schedule.choose(len(readable))])
        else:
            process.commit()
    drain(process)


def drain(process: Process) -> None:
    """Deliver a record of each readable partition and commit, round after round, until
    everything is consumed and a commit produces nothing more."""
    while True:
        for topic, partition in process.readable():
            process.deliver(topic, partition)
        process.commit()
        if not process.readable():
            return


def keyed(key: Hashable) -> bytes:
    """A source record's key bytes (what the partitioner hashes)."""
    return str(key).encode()
