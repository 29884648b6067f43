"""Configuration is read from the environment and fails at start-up naming the variable."""

from __future__ import annotations

import pytest

from processor.settings import Settings, load_settings


def test_defaults_point_at_a_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.kafka_config == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "PLAINTEXT",
    }
    assert settings.pg_topic("users") == "pg1.user_data.users"
    assert settings.dead_letter_topic_for("interaction_data") == (
        "pstreams-dead-letter-interaction_data"
    )


def test_confluent_cloud_credentials_reach_librdkafka_and_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "KEY")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "SECRET")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "https://psrc.example/")
    monkeypatch.setenv("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "srkey:srsecret")
    settings = Settings()
    assert settings.kafka_config["sasl.mechanism"] == "PLAIN"
    assert settings.kafka_config["sasl.password"] == "SECRET"
    assert settings.schema_registry_config == {
        "url": "https://psrc.example",
        "basic.auth.user.info": "srkey:srsecret",
    }
    assert "SECRET" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POSTGRES_URL", "mysql://x"),
        ("SCHEMA_REGISTRY_URL", "localhost:8081"),
        ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "no-colon"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("DEAD_LETTER_TOPIC", "one-topic-for-all"),
        ("COMMIT_INTERVAL_S", "0"),
        ("POSTGRES_SCHEMA", "bad schema"),
        ("TABLE_TOPICS", "no_such_table"),
        ("TABLE_TOPICS", "interaction_data"),
        ("TABLE_TOPICS", "co_purchase_counts="),
    ],
)
def test_an_invalid_variable_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert variable in str(stopped.value)


def test_sasl_without_credentials_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert "KAFKA_SASL_USERNAME" in str(stopped.value)


def test_table_topics_name_each_table_or_all() -> None:
    assert Settings().table_topic("co_purchase_counts") is None
    chosen = Settings(table_topics="co_purchase_counts, user_purchase_totals=flink.totals")
    assert chosen.table_topic("co_purchase_counts") == "co_purchase_counts"
    # A plain str: librdkafka's admin client refuses SQLAlchemy's quoted_name.
    assert type(chosen.table_topic("co_purchase_counts")) is str
    assert type(Settings(table_topics="all").table_topic("co_purchase_counts")) is str
    assert chosen.table_topic("user_purchase_totals") == "flink.totals"
    assert chosen.table_topic("item_shared_by_user_pair") is None
    everything = Settings(table_topics="all")
    assert everything.table_topic("purchase_windowed_counts") == "purchase_windowed_counts"
    assert everything.table_topic("interaction_data") is None  # it is INTERACTIONS_TOPIC
