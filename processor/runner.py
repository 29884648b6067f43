"""Runs one topology: its Quix application, its PostgreSQL sink and its operations
endpoints, until it is stopped."""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY
from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.topics import TopicManager

from processor.acl import grants, lacking, transactions_refused
from processor.avro import SchemaRegistry
from processor.backoff import Backoff
from processor.metrics import STATISTICS_INTERVAL_MS, KafkaStatistics
from processor.operations import OperationsServer, Probes, postgres_check
from processor.pacing import pace_checkpoints
from processor.permissions import PermissionDenied
from processor.pipeline import Pipeline
from processor.settings import Settings
from processor.sinks.postgres import PostgresTableSink, create_engine
from processor.topics import PromptTopicAdmin
from processor.topology import Topology

logger = logging.getLogger(__name__)

# What Quix Streams logs once a topology's application is built and about to poll: tools
# that start topologies (the demo, the benchmark) wait for it before they load data.
STARTED_LOG_LINE = "The application started"


# How long the broker may hold a fetch that finds nothing new. Each stage of a topology
# reads what the stage before it committed; with librdkafka's 500 ms default the
# four-hop highly_rated_item_details took 1.7-2.0 s alone, with 50 ms 1.2-1.3 s
# (docs/performance.md).
FETCH_WAIT_MAX_MS = 50


def build_application(
    settings: Settings, topology: str, statistics: KafkaStatistics, topics: TopicManager
) -> Application:
    """A Quix application configured from the settings, one consumer group per topology.

    Logging is left to `processor.logs` (one format for every logger); librdkafka's
    statistics feed `statistics`; `topics` (`topic_manager`) keeps the topics it uses.
    """
    reporting = {"statistics.interval.ms": STATISTICS_INTERVAL_MS}
    group = settings.consumer_group(topology)
    return Application(
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
        | {"stats_cb": statistics.on_consumer},
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
    """Build the topology's stream into its table and process until SIGINT or SIGTERM."""
    statistics = KafkaStatistics(topology.name)
    REGISTRY.register(statistics)
    probes = Probes(statistics, postgres_check(settings.postgres_url))
    server = OperationsServer(settings.ops_host, settings.ops_port, probes).start()
    try:
        _process(topology, settings, statistics)
    finally:
        server.stop()


def _process(topology: Topology, settings: Settings, statistics: KafkaStatistics) -> None:
    topics = topic_manager(settings, topology.name)
    app = build_application(settings, topology.name, statistics, topics)
    registry = SchemaRegistry(settings)
    registry.check()
    pipeline = Pipeline(app, settings, topology.name, registry)
    sink = PostgresTableSink(
        create_engine(settings.sqlalchemy_url, settings.postgres_schema),
        topology.table,
        settings.postgres_schema,
        Backoff(settings.sink_retry_max_backoff_s),
    )
    table_changes = topology.build(pipeline)
    check_permissions(settings, topology, topics)
    table_changes.sink(sink)
    pace_checkpoints(table_changes.processing_context, settings.backlog_commit_interval_s)
    logger.info(
        "running topology %s as consumer group %s", topology.name, app.config.consumer_group
    )
    app.run()
