"""The JDBC sink connector's configuration: every table topic into its own table of the
copy's schema, read as a consumer of committed checkpoints only."""

from __future__ import annotations

import re

from processor.jdbc_sink import connector_config, jdbc_url
from processor.settings import Settings

SETTINGS = Settings(
    postgres_url="postgresql://sink:secret@db.internal:6543/analytics",
    schema_registry_url="http://registry:8080/apis/ccompat/v7",
)
TOPICS = {"co_purchase_counts": "flink.co-purchases", "user_purchase_totals": "t1-totals"}


def routed_table(config: dict[str, str], topic: str) -> str:
    """The table the connector writes `topic` into: its RegexRouter's rename, in the
    collection name format (Java's `\\Q…\\E` quoting is a literal match)."""
    for name in config["transforms"].split(","):
        literal = config[f"transforms.{name}.regex"].removeprefix("\\Q").removesuffix("\\E")
        if re.fullmatch(re.escape(literal), topic):
            renamed = config[f"transforms.{name}.replacement"]
            return config["collection.name.format"].replace("${topic}", renamed)
    raise AssertionError(f"no transform routes {topic}")


def test_each_topic_goes_to_its_table_in_the_copys_schema() -> None:
    config = connector_config(SETTINGS, TOPICS, "copy")
    assert config["topics"].split(",") == list(TOPICS.values())
    # Schema-qualified: unqualified, the connector found the topology's own table of
    # the name in another schema and wrote into it.
    assert routed_table(config, "flink.co-purchases") == "copy.co_purchase_counts"
    assert routed_table(config, "t1-totals") == "copy.user_purchase_totals"


def test_the_copy_upserts_by_key_deletes_on_tombstones_and_reads_committed() -> None:
    config = connector_config(SETTINGS, TOPICS, "copy")
    assert config["insert.mode"] == "upsert"
    assert config["primary.key.mode"] == "record_key"
    assert config["delete.enabled"] == "true"
    assert config["consumer.override.isolation.level"] == "read_committed"
    assert config["schema.evolution"] == "none"  # the tables are made beforehand


def test_the_database_and_credentials_come_from_postgres_url() -> None:
    config = connector_config(SETTINGS, TOPICS, "copy")
    assert jdbc_url(SETTINGS, "copy") == (
        "jdbc:postgresql://db.internal:6543/analytics?currentSchema=copy"
    )
    assert (config["connection.username"], config["connection.password"]) == ("sink", "secret")
    assert (
        config["value.converter.apicurio.registry.url"] == "http://registry:8080/apis/registry/v2"
    )
