"""Runs one topology: its Quix application, its PostgreSQL sink, until it is stopped."""

from __future__ import annotations

import logging

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from processor.avro import SchemaRegistry
from processor.backoff import Backoff
from processor.pipeline import Pipeline
from processor.settings import Settings
from processor.sinks.postgres import PostgresTableSink, create_engine
from processor.topology import Topology

logger = logging.getLogger(__name__)


def build_application(settings: Settings, topology: str) -> Application:
    """A Quix application configured from the settings, one consumer group per topology."""
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_config),
        consumer_group=settings.consumer_group(topology),
        auto_offset_reset=settings.auto_offset_reset,
        commit_interval=settings.commit_interval_s,
        consumer_extra_config={"session.timeout.ms": settings.kafka_session_timeout_ms},
        # A stable transactional id: a restarted replica fences its killed predecessor
        # and aborts its open transaction at once, instead of waiting for the broker's
        # transaction timeout while the group's offsets stay locked.
        producer_extra_config=settings.kafka_producer_config
        | {"transactional.id": f"{settings.consumer_group(topology)}-{settings.instance_id}"},
        state_dir=settings.state_dir / topology,
        processing_guarantee=settings.processing_guarantee,
        loglevel=settings.log_level,
    )


def run_topology(topology: Topology, settings: Settings) -> None:
    """Build the topology's stream into its table and process until SIGINT or SIGTERM."""
    app = build_application(settings, topology.name)
    pipeline = Pipeline(app, settings, topology.name, SchemaRegistry(settings))
    sink = PostgresTableSink(
        create_engine(settings.sqlalchemy_url, settings.postgres_schema),
        topology.table,
        settings.postgres_schema,
        Backoff(settings.sink_retry_max_backoff_s),
    )
    topology.build(pipeline).sink(sink)
    logger.info(
        "running topology %s as consumer group %s", topology.name, app.config.consumer_group
    )
    app.run()
