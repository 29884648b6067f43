"""One configuration for every topology, read from the environment.

Each field is one environment variable of the same name in upper case. Invalid values
fail at start-up with pydantic's message, which names the variable.
"""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment of a pstreams process; `docs/configuration.md` lists every variable."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM file of the certificate authorities that sign the brokers' certificates, when
    # they are not among the system's (a private CA; Confluent Cloud's are public).
    kafka_ssl_ca_location: FilePath | None = None
    # How long a killed replica keeps its partitions before the group gives them to its
    # successor (librdkafka's default: 45 s); 6 s is the broker's smallest by default.
    kafka_session_timeout_ms: int = Field(6000, ge=1000)
    # Extra librdkafka producer settings, a JSON object (e.g. {"compression.type": "lz4"}).
    kafka_producer_config: dict[str, str | int | float | bool] = Field(default_factory=dict)

    schema_registry_url: str = "http://localhost:8081"
    schema_registry_basic_auth_user_info: SecretStr | None = None

    # Kafka Connect's REST API, for `pstreams seed load --cdc debezium` only.
    connect_url: str = "http://localhost:8083"

    postgres_url: str = "postgresql://postgres@localhost:5432/postgres"
    postgres_schema: str = Field("public", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    pg_topic_prefix: str = Field("pg1", pattern=r"^[A-Za-z0-9_.-]+$")
    dynamodb_topic: str = Field("personalization-dev-user-personalization", min_length=1)
    interactions_topic: str = Field("interaction_data", min_length=1)
    # `{topology}` is replaced by the topology's name.
    dead_letter_topic: str = Field("pstreams-dead-letter-{topology}", min_length=1)
    # purchase_windowed_counts (SPEC 2.6; docs/windows.md).
    window_allowed_lateness_s: int = Field(0, ge=0)
    window_idle_timeout_s: float = Field(300.0, ge=0)
    late_events_topic: str | None = Field(None, min_length=1)
    # An interaction whose event time is further ahead of the processing clock is bad
    # input (a device with a broken clock): Kafka 4 refuses records over an hour ahead of
    # the broker's, and one would move a watermark into the future (docs/guarantees.md).
    event_time_max_ahead_s: float = Field(3000.0, gt=0)

    # Tables also published to compacted Kafka topics, as the replaced Flink tables were:
    # `all`, or topology names separated by commas, each with an optional `=topic`
    # (default: the table's name). Empty: none (docs/configuration.md).
    table_topics: str = ""

    # The data lake: each table's changes as Parquet files under `s3://bucket/prefix` or
    # a local directory. Empty: none. `LAKE_TABLES`: `all`, or topology names separated by
    # commas. The S3 endpoint is for S3-compatible stores (docs/configuration.md).
    lake_url: str = ""
    lake_tables: str = "all"
    lake_s3_endpoint_url: str | None = None
    lake_s3_region: str | None = None

    # How long a topology waits at start-up for an input topic to be created (by its
    # connector, or by interaction_data) before it stops, naming the variable.
    input_topic_wait_s: float = Field(300.0, gt=0)

    state_dir: Path = Path("state")
    consumer_group_prefix: str = "pstreams-"
    # Names this replica; distinct per replica of a topology (a StatefulSet pod name is).
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1)
    processing_guarantee: Literal["exactly-once", "at-least-once"] = "exactly-once"
    # How stale a table may be while its topology keeps up (Kafka Streams commits every
    # 100 ms under exactly-once, too); backlogs get longer checkpoints (processor/pacing.py).
    commit_interval_s: float = Field(0.1, gt=0)
    # The longest a checkpoint runs while a backlog is worked off (processor/pacing.py).
    backlog_commit_interval_s: float = Field(10.0, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    sink_retry_max_backoff_s: float = Field(30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # `json`: one JSON object per line, for log collectors.
    log_format: Literal["text", "json"] = "text"
    # /healthz, /readyz, /metrics. 0 lets the OS pick a free port (logged at start).
    ops_host: str = Field("0.0.0.0", min_length=1)
    ops_port: int = Field(9400, ge=0, le=65535)
    # `run --all`: a child whose /healthz has not answered 200 this long is restarted.
    child_liveness_timeout_s: float = Field(60.0, gt=0)

    @field_validator("postgres_url")
    @classmethod
    def _postgres_scheme(cls, url: str) -> str:
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must be a postgresql:// URL")
        return url

    @field_validator("schema_registry_url", "connect_url")
    @classmethod
    def _http_scheme(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("schema_registry_basic_auth_user_info")
    @classmethod
    def _user_info_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must be 'key:secret'")
        return value

    @field_validator("dead_letter_topic")
    @classmethod
    def _dead_letter_placeholder(cls, template: str) -> str:
        if "{topology}" not in template:
            raise ValueError("must contain '{topology}' so each topology has its own topic")
        return template

    @field_validator("table_topics")
    @classmethod
    def _table_topics_known(cls, value: str) -> str:
        table_topic_names(value)
        return value

    @field_validator("lake_tables")
    @classmethod
    def _lake_tables_known(cls, value: str) -> str:
        lake_table_names(value)
        return value

    @field_validator("lake_url")
    @classmethod
    def _lake_scheme(cls, url: str) -> str:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in ("", "s3", "file"):
            raise ValueError("must be s3://bucket/prefix, file:///path or a directory path")
        return url

    @model_validator(mode="after")
    def _sasl_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required when "
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        return self

    def table_topic(self, topology: str) -> str | None:
        """The topic a topology's table is published to (`TABLE_TOPICS`), if any."""
        return table_topic_names(self.table_topics).get(topology)

    def writes_lake(self, topology: str) -> bool:
        """Are the topology's table's changes written to the lake (`LAKE_URL`, `LAKE_TABLES`)?"""
        return bool(self.lake_url) and topology in lake_table_names(self.lake_tables)

    def pg_topic(self, table: str) -> str:
        """Topic of one captured PostgreSQL table, as the CDC connector names it."""
        return f"{self.pg_topic_prefix}.user_data.{table}"

    def variable_naming(self, topic: str) -> str:
        """The variable that names an input topic, for errors about the topic."""
        if topic == self.dynamodb_topic:
            return "DYNAMODB_TOPIC"
        if topic == self.interactions_topic:
            return "INTERACTIONS_TOPIC"
        if topic.startswith(f"{self.pg_topic_prefix}."):
            return "PG_TOPIC_PREFIX"
        return "the topology's inputs"

    def consumer_group(self, topology: str) -> str:
        """One consumer group per topology; also the prefix of its internal topics."""
        return f"{self.consumer_group_prefix}{topology}"

    def transactional_id(self, topology: str) -> str:
        """Stable per replica: a restarted replica fences its killed predecessor and
        aborts its open transaction at once, instead of waiting for the broker's
        transaction timeout while the group's offsets stay locked."""
        return f"{self.consumer_group(topology)}-{self.instance_id}"

    def dead_letter_topic_for(self, topology: str) -> str:
        return self.dead_letter_topic.format(topology=topology)

    @cached_property
    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings for producers, consumers and admin clients alike."""
        config = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            assert self.kafka_sasl_username and self.kafka_sasl_password
            config |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_sasl_username,
                "sasl.password": self.kafka_sasl_password.get_secret_value(),
            }
        if self.kafka_ssl_ca_location is not None:
            config["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        return config

    @cached_property
    def producer_config(self) -> dict[str, object]:
        """librdkafka settings of every producer: the connection plus KAFKA_PRODUCER_CONFIG."""
        return self.kafka_config | self.kafka_producer_config

    @cached_property
    def schema_registry_config(self) -> dict[str, str]:
        """Configuration for confluent-kafka's `SchemaRegistryClient`."""
        config = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth_user_info is not None:
            config["basic.auth.user.info"] = (
                self.schema_registry_basic_auth_user_info.get_secret_value()
            )
        return config

    @property
    def sqlalchemy_url(self) -> str:
        """`POSTGRES_URL` with the psycopg 3 driver named, as SQLAlchemy wants it."""
        scheme, rest = self.postgres_url.split("://", 1)
        return f"postgresql+psycopg://{rest}" if "+" not in scheme else self.postgres_url


def table_topic_names(spec: str) -> dict[str, str]:
    """The table topics that a `TABLE_TOPICS` value asks for, by topology; a
    `ValueError` names what is wrong in it."""
    from processor.topology import all_topologies  # the topologies import these settings

    topologies = all_topologies()
    allowed = [name for name, topology in topologies.items() if topology.table_topic]
    entries = [entry.strip() for entry in spec.split(",") if entry.strip()]
    if entries == ["all"]:
        return {name: str(topologies[name].table.name) for name in allowed}
    names: dict[str, str] = {}
    for entry in entries:
        name, _, topic = (part.strip() for part in entry.partition("="))
        if name not in allowed:
            raise ValueError(
                f"{name!r} is not a topology whose table can be published; choose from"
                f" {', '.join(allowed)}, or 'all'"
                + (
                    " (interaction_data's rows are on INTERACTIONS_TOPIC)"
                    if name in topologies
                    else ""
                )
            )
        if "=" in entry and not topic:
            raise ValueError(f"{entry!r} names no topic after '='")
        names[name] = topic or str(topologies[name].table.name)  # not quoted_name
    return names


def lake_table_names(spec: str) -> list[str]:
    """The topologies that a `LAKE_TABLES` value names; a `ValueError` names an unknown one."""
    from processor.topology import all_topologies  # the topologies import these settings

    known = list(all_topologies())
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if names == ["all"]:
        return known
    for name in names:
        if name not in known:
            choices = ", ".join(known)
            raise ValueError(f"{name!r} is not a topology; choose from {choices}, or 'all'")
    return names


def load_settings() -> Settings:
    """Read the environment; a bad variable raises `SystemExit` naming it."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'configuration'}: {e['msg']}"
            for e in error.errors()
        )
        raise SystemExit(f"invalid configuration: {problems}") from None
