"""The ACLs `pstreams acl` prints and grants, and what a refusal by Kafka is reported as."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclOperation

from processor.acl import grants, lacking
from processor.permissions import PermissionDenied, denial
from processor.settings import Settings
from processor.topology import all_topologies

TOPOLOGIES = all_topologies()


def by_resource(topology: str, settings: Settings) -> dict[tuple[str, str], set[str]]:
    return {
        (grant.resource.name, grant.name): {op.name for op in grant.operations}
        for grant in grants(TOPOLOGIES[topology], settings)
    }


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_each_topology_may_read_its_inputs_and_group_and_write_its_dead_letters(
    topology: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUMER_GROUP_PREFIX", "team-")
    settings = Settings()
    found = by_resource(topology, settings)
    group = f"team-{topology}"
    assert found[("GROUP", group)] == {"READ"}
    for topic in TOPOLOGIES[topology].inputs(settings):
        assert found[("TOPIC", topic)] == {"READ", "DESCRIBE_CONFIGS"}
    dead_letters = settings.dead_letter_topic_for(topology)
    assert found[("TOPIC", dead_letters)] == {"CREATE", "WRITE", "DESCRIBE_CONFIGS"}
    assert found[("TOPIC", f"changelog__{group}--")] >= {"CREATE", "READ", "WRITE"}
    assert found[("TRANSACTIONAL_ID", f"{group}-")] == {"WRITE"}
    assert not any("DESCRIBE" in ops and ops & {"READ", "WRITE"} for ops in found.values()), (
        "READ and WRITE imply DESCRIBE"
    )


def test_only_what_the_settings_make_the_topology_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCESSING_GUARANTEE", "at-least-once")
    monkeypatch.setenv("LATE_EVENTS_TOPIC", "late-purchases")
    settings = Settings()
    windowed = by_resource("purchase_windowed_counts", settings)
    assert windowed[("TOPIC", "late-purchases")] == {"CREATE", "WRITE", "DESCRIBE_CONFIGS"}
    assert windowed[("TOPIC", settings.dynamodb_topic)] == {"DESCRIBE"}
    assert not any(resource == "TRANSACTIONAL_ID" for resource, _ in windowed)
    assert ("TOPIC", settings.interactions_topic) in by_resource("interaction_data", settings)
    assert ("TOPIC", "late-purchases") not in by_resource("co_purchase_counts", settings)


def test_a_printed_grant_names_its_pattern_and_operations() -> None:
    printed = [str(grant) for grant in grants(TOPOLOGIES["co_purchase_counts"], Settings())]
    assert printed[0] == "GROUP pstreams-co_purchase_counts (literal): READ"
    assert "TOPIC changelog__pstreams-co_purchase_counts-- (prefixed): " in printed[3]


def _answer(value: object = None, error: KafkaError | None = None) -> Future:
    future: Future = Future()
    if error is not None:
        future.set_exception(KafkaException(error))
    else:
        future.set_result(value)
    return future


class _Admin:
    """Answers `describe_topics` as a broker would for a principal allowed `allowed`."""

    def __init__(self, allowed: dict[str, list[AclOperation] | KafkaError]) -> None:
        self.allowed = allowed

    def describe_topics(self, topics, **_options) -> dict[str, Future]:
        answers = {}
        for name in topics.topic_names:
            allowed = self.allowed[name]
            if isinstance(allowed, KafkaError):
                answers[name] = _answer(error=allowed)
            else:
                answers[name] = _answer(SimpleNamespace(authorized_operations=allowed))
        return answers


def test_lacking_names_each_operation_the_broker_does_not_allow() -> None:
    settings = Settings()
    wanted = grants(TOPOLOGIES["co_purchase_counts"], settings)
    changelog = "changelog__pstreams-co_purchase_counts--counts"
    admin = _Admin(
        {
            settings.interactions_topic: [AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS],
            changelog: KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
            "not-yet-created": KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART),
        }
    )
    found = lacking(admin, wanted, [settings.interactions_topic, changelog, "not-yet-created"])
    assert found[0] == f"READ on topic {settings.interactions_topic}"
    assert found[1:] == [
        f"{op} on topic {changelog}" for op in ("CREATE", "READ", "WRITE", "DESCRIBE_CONFIGS")
    ]


@pytest.mark.parametrize(
    ("code", "named"),
    [
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "READ on consumer group pstreams-x"),
        (KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "WRITE on transactional ids"),
        (KafkaError.CLUSTER_AUTHORIZATION_FAILED, "a cluster operation"),
    ],
)
def test_an_authorization_failure_deep_in_a_chain_is_named(code: int, named: str) -> None:
    try:
        try:
            raise KafkaException(KafkaError(code, "Broker: not authorized"))
        except KafkaException as error:
            raise RuntimeError("commit failed") from error
    except RuntimeError as wrapped:
        found = denial(wrapped, "pstreams-x")
    assert isinstance(found, PermissionDenied) and named in str(found)


def test_other_kafka_errors_are_not_permissions() -> None:
    timeout = KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out"))
    assert denial(timeout, "pstreams-x") is None
    assert denial(ValueError("no Kafka here"), "pstreams-x") is None
