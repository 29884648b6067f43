"""Runs one topology: its Quix application, its PostgreSQL sink and its operations
endpoints, until it is stopped."""

from __future__ import annotations

import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.topics import TopicManager

from processor.acl import grants, lacking, transactions_refused
from processor.avro import SchemaRegistry
from processor.backoff import Backoff
from processor.membership import MembershipWatch
from processor.metrics import REJOINS, STATISTICS_INTERVAL_MS, KafkaStatistics
from processor.operations import OperationsServer, Probes, postgres_check
from processor.pacing import pace_checkpoints
from processor.permissions import PermissionDenied, kafka_errors
from processor.pipeline import Pipeline
from processor.settings import Settings
from processor.sinks.postgres import PostgresTableSink, create_engine
from processor.table_topic import TableTopic
from processor.topics import PromptTopicAdmin
from processor.topology import Topology

if TYPE_CHECKING:
    from processor.lake import LakeTable

logger = logging.getLogger(__name__)

# What Quix Streams logs once a topology's application is built and about to poll: tools
# that start topologies (the demo, the benchmark) wait for it before they load data.
STARTED_LOG_LINE = "The application started"


# How long the broker may hold a fetch that finds nothing new. Each stage of a topology
# reads what the stage before it committed; with librdkafka's 500 ms default the
# four-hop highly_rated_item_details took 1.7-2.0 s alone, with 50 ms 1.2-1.3 s
# (docs/performance.md).
FETCH_WAIT_MAX_MS = 50


class TopologyApplication(Application):
    """Quix's application, remembering a request to stop (SIGTERM, SIGINT) apart from a
    stop on an error (a topology asked to stop never rejoins its group), and the error.

    The error is taken when Quix stops on it, first thing as the run unwinds: closing
    the consumer afterwards can fail as well (`_DESTROY` in a partition assignment), and
    that error then replaces it, with no link back to it.
    """

    stop_requested = False
    failure: BaseException | None = None

    def __init__(self, **quix_arguments: Any) -> None:
        super().__init__(**quix_arguments)
        # Quix 3.28's `run` installs its SIGTERM handler, then opens the state, the
        # consumer and the checkpoint, and only then marks itself running, which undoes
        # a stop asked for in between: the loop ran on until a second signal (a replica
        # told to leave as it started). A stop asked for before the loop is kept.
        tracker = self._run_tracker
        mark_running = tracker.set_as_running

        def set_as_running() -> None:
            mark_running()
            if self.stop_requested:
                tracker.stop()

        tracker.set_as_running = set_as_running

    def stop(self, fail: bool = False) -> None:
        if fail:
            self.failure = self.failure or sys.exc_info()[1]
        else:
            self.stop_requested = True
        super().stop(fail=fail)


def build_application(
    settings: Settings, topology: str, statistics: KafkaStatistics, topics: TopicManager
) -> TopologyApplication:
    """A Quix application configured from the settings, one consumer group per topology.

    Logging is left to `processor.logs` (one format for every logger); librdkafka's
    statistics feed `statistics`; `topics` (`topic_manager`) keeps the topics it uses.
    """
    reporting = {"statistics.interval.ms": STATISTICS_INTERVAL_MS}
    group = settings.consumer_group(topology)
    return TopologyApplication(
        broker_address=_connection(settings),
        consumer_group=group,
        topic_manager=topics,
        auto_offset_reset=settings.auto_offset_reset,
        # Input deleted by retention before it was read: stop, rather than let Quix
        # wipe the state and recount what is left (docs/guarantees.md).
        auto_recover_from_source_offset_out_of_range=False,
        commit_interval=settings.commit_interval_s,
        # An idle poll blocks the loop, and with it the commit of a checkpoint that is
        # due: no longer than the live interval (Quix's default is 1 s).
        consumer_poll_timeout=min(settings.commit_interval_s, 1.0),
        consumer_extra_config={"session.timeout.ms": settings.kafka_session_timeout_ms}
        | {"fetch.wait.max.ms": FETCH_WAIT_MAX_MS}
        | reporting
        | {"stats_cb": MembershipWatch(statistics).on_consumer},
        producer_extra_config=settings.kafka_producer_config
        | {"transactional.id": settings.transactional_id(topology)}
        | reporting
        | {"stats_cb": statistics.on_producer},
        state_dir=settings.state_dir / topology,
        processing_guarantee=settings.processing_guarantee,
        loglevel=None,
    )


def _connection(settings: Settings) -> ConnectionConfig:
    return ConnectionConfig.from_librdkafka_dict(settings.kafka_config)


def topic_manager(settings: Settings, topology: str) -> TopicManager:
    """Quix's topic manager of a topology, creating topics promptly (`PromptTopicAdmin`)."""
    return TopicManager(PromptTopicAdmin(_connection(settings)), settings.consumer_group(topology))


def check_permissions(settings: Settings, topology: Topology, topics: TopicManager) -> None:
    """Stop at start-up, naming each operation that the topology's ACLs should allow on
    the topics it uses, or on its transactional id, and the broker does not
    (docs/deployment.md, "ACLs")."""
    admin = AdminClient(settings.kafka_config)
    missing = lacking(admin, grants(topology, settings), topics.all_topics)
    if settings.processing_guarantee == "exactly-once":
        missing += transactions_refused(settings, settings.transactional_id(topology.name))
    if missing:
        raise PermissionDenied(f"Kafka does not allow {', '.join(missing)}")


def run_topology(topology: Topology, settings: Settings) -> None:
    """Build the topology's stream into its table and process until SIGINT or SIGTERM.

    A broker outage is not a crash. A topology that finds at a commit that its consumer
    group no longer counts it as a member (the outage outlasted
    `KAFKA_SESSION_TIMEOUT_MS`) has had its partitions handed on, and its checkpoint
    cannot commit; one whose partition assignment or start-up finds the broker not
    answering cannot go on either. Either way the checkpoint is dropped (its Kafka
    transaction aborted), and the application is built again in this process and
    rejoins the group from the committed offsets and state, as Kafka Streams does with a
    migrated task; a supervisor or an orchestrator need not restart it
    (docs/guarantees.md, "PostgreSQL or the broker unavailable").
    """
    statistics = KafkaStatistics(topology.name)
    REGISTRY.register(statistics)
    probes = Probes(statistics, postgres_check(settings.postgres_url))
    server = OperationsServer(settings.ops_host, settings.ops_port, probes).start()
    backoff = Backoff(maximum=REJOIN_MAX_BACKOFF_S)
    delay = 0.0
    try:
        while True:
            # Until Quix's processing loop takes SIGTERM over, it ends the start-up
            # (waits for topics, the registry, the broker) cleanly, as a stop expects.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            time.sleep(delay)
            started = time.monotonic()
            topics = topic_manager(settings, topology.name)
            app = build_application(settings, topology.name, statistics, topics)
            try:
                _process(topology, settings, app, topics)
                return
            except Exception as error:
                if app.stop_requested and app.failure is None and closed_mid_assignment(error):
                    return  # its checkpoint was committed before the consumer closed
                cause = broker_outage(error) or (app.failure and broker_outage(app.failure))
                if app.stop_requested or cause is None:
                    raise
                if time.monotonic() - started > REJOIN_MAX_BACKOFF_S:
                    backoff.reset()  # it ran a while: a new outage, not the same one
                delay = 0.0 if cause.code() in _MEMBERSHIP_LOST else backoff.next_delay()
                REJOINS.labels(topology.name, cause.name()).inc()
                logger.warning(
                    "topology %s stopped on a broker outage (%s): its checkpoint is dropped,"
                    " and in %.1f s it rejoins consumer group %s from the committed offsets",
                    topology.name,
                    cause.str(),
                    delay,
                    app.config.consumer_group,
                )
    finally:
        server.stop()


# Longest pause before a rejoin while the broker does not answer.
REJOIN_MAX_BACKOFF_S = 30.0
# The group coordinator no longer knows the member, or knows a later generation of it.
_MEMBERSHIP_LOST = frozenset({KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION})
# The broker, or the coordinator or partition leader a call needs, did not answer, or
# not yet: a broker shutting down gives up its partitions' leadership first. A record
# it did not acknowledge within `message.timeout.ms` (under exactly-once the
# transaction timeout, 60 s) fails the checkpoint's flush the same way, as Kafka
# Streams reinitialises a task whose send timed out.
_NOT_ANSWERING = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
_OUTAGE = _MEMBERSHIP_LOST | _NOT_ANSWERING
# What a consumer's calls raise once its close has begun.
_CLOSING_CONSUMER = frozenset({KafkaError._DESTROY, KafkaError._TIMED_OUT})


def broker_outage(exception: BaseException) -> KafkaError | None:
    """The error in the chain of the exception that ended a run saying that the broker
    was away (a lost membership, a call that was not answered), if there is one."""
    return next(
        (e for e in kafka_errors(exception) if e.code() in _OUTAGE),
        None,
    )


def closed_mid_assignment(exception: BaseException) -> bool:
    """Whether the run ended only because the consumer, closing on a stop, was handed
    partitions by a rebalance still under way (a replica leaving as it joins): Quix's
    assignment then finds the handle destroyed, or its look-up of the committed offsets
    goes unanswered by the closing consumer (30 s), an error of the close, not of the
    run."""
    codes = {error.code() for error in kafka_errors(exception)}
    return bool(codes) and codes <= _CLOSING_CONSUMER


def table_topics(
    topology: Topology, pipeline: Pipeline, table_changes: StreamingDataFrame
) -> list[TableTopic]:
    """The topology's table topic (`TABLE_TOPICS`), created compacted when missing and
    written by the producer of the checkpoints."""
    name = pipeline.settings.table_topic(topology.name)
    if name is None:
        return []
    pipeline.compacted_topic(name)
    producer = table_changes.processing_context.producer
    return [TableTopic(name, topology.table, pipeline.registry, producer)]


def lake_tables(topology: Topology, settings: Settings) -> list[LakeTable]:
    """The topology's data lake output (`LAKE_URL`, `LAKE_TABLES`), checked writable now."""
    if not settings.writes_lake(topology.name):
        return []
    # Imported only here: pyarrow adds tens of MB to a process that writes no lake.
    from processor.lake import LakeTable, lake_filesystem

    filesystem, root = lake_filesystem(
        settings.lake_url, settings.lake_s3_endpoint_url, settings.lake_s3_region
    )
    lake = LakeTable(
        filesystem,
        root,
        topology.table,
        settings.instance_id,
        Backoff(settings.sink_retry_max_backoff_s),
    )
    lake.check()
    return [lake]


def _process(
    topology: Topology, settings: Settings, app: TopologyApplication, topics: TopicManager
) -> None:
    registry = SchemaRegistry(settings)
    registry.check()
    pipeline = Pipeline(app, settings, topology.name, registry)
    engine = create_engine(settings.sqlalchemy_url, settings.postgres_schema)
    table_changes = topology.build(pipeline)
    sink = PostgresTableSink(
        engine,
        topology.table,
        settings.postgres_schema,
        Backoff(settings.sink_retry_max_backoff_s),
        also=[
            *(topic.publish for topic in table_topics(topology, pipeline, table_changes)),
            *(lake.write for lake in lake_tables(topology, settings)),
        ],
    )
    check_permissions(settings, topology, topics)
    table_changes.sink(sink)
    pace_checkpoints(table_changes.processing_context, settings.backlog_commit_interval_s)
    logger.info(
        "running topology %s as consumer group %s", topology.name, app.config.consumer_group
    )
    try:
        app.run()
    finally:
        engine.dispose()  # a rejoin builds another
