"""The Kafka ACLs one topology needs, and nothing more (docs/deployment.md, "ACLs").

Derived from the settings and the topics the topology declares (`Topology.inputs`,
`outputs`, `described`), so `pstreams acl` prints or grants exactly what the topology
uses, whatever the names configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from processor.settings import Settings
from processor.topology import Topology

# Only what is needed: READ and WRITE imply DESCRIBE (Kafka's authorizer grants it with
# either), so no DESCRIBE is listed beside them. DESCRIBE_CONFIGS is Quix's: it reads the
# configuration of each topic it uses. CREATE is for topics a topology creates itself.
READ_TOPIC = (AclOperation.READ, AclOperation.DESCRIBE_CONFIGS)
WRITE_TOPIC = (AclOperation.CREATE, AclOperation.WRITE, AclOperation.DESCRIBE_CONFIGS)
OWN_TOPIC = (
    AclOperation.CREATE,
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.DESCRIBE_CONFIGS,
)


@dataclass(frozen=True)
class Grant:
    """Operations allowed on one resource, or on every resource whose name starts so."""

    resource: ResourceType
    name: str
    operations: tuple[AclOperation, ...]
    prefixed: bool = False

    def __str__(self) -> str:
        pattern = "prefixed" if self.prefixed else "literal"
        operations = ",".join(operation.name for operation in self.operations)
        return f"{self.resource.name} {self.name} ({pattern}): {operations}"

    def covers(self, topic: str) -> bool:
        if self.resource != ResourceType.TOPIC:
            return False
        return topic.startswith(self.name) if self.prefixed else topic == self.name

    def bindings(self, principal: str) -> list[AclBinding]:
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return [
            AclBinding(
                self.resource, self.name, pattern, principal, "*", op, AclPermissionType.ALLOW
            )
            for op in self.operations
        ]


def grants(topology: Topology, settings: Settings) -> list[Grant]:
    """What `topology`'s principal must be allowed, in the order a reader checks it."""
    group = settings.consumer_group(topology.name)
    outputs = [settings.dead_letter_topic_for(topology.name), *topology.outputs(settings)]
    outputs += filter(None, [settings.table_topic(topology.name)])
    found = [Grant(ResourceType.GROUP, group, (AclOperation.READ,))]
    found += [Grant(ResourceType.TOPIC, topic, READ_TOPIC) for topic in topology.inputs(settings)]
    found += [
        Grant(ResourceType.TOPIC, topic, (AclOperation.DESCRIBE,))
        for topic in topology.described(settings)
    ]
    found += [Grant(ResourceType.TOPIC, topic, WRITE_TOPIC) for topic in outputs]
    found += [
        Grant(ResourceType.TOPIC, f"{kind}__{group}--", OWN_TOPIC, prefixed=True)
        for kind in ("changelog", "repartition")
    ]
    if settings.processing_guarantee == "exactly-once":
        transactional = (AclOperation.WRITE,)
        found.append(
            Grant(ResourceType.TRANSACTIONAL_ID, f"{group}-", transactional, prefixed=True)
        )
    return found


def apply(settings: Settings, principal: str, wanted: Iterable[Grant]) -> int:
    """Create the ACLs of `wanted` for `principal` with the settings' credentials (which
    need ALTER on the cluster); returns how many bindings were created or already held."""
    bindings = [binding for grant in wanted for binding in grant.bindings(principal)]
    admin = AdminClient(dict(settings.kafka_config))  # alive until every answer is in
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result()
    return len(bindings)


def lacking(admin: AdminClient, wanted: list[Grant], topics: Iterable[str]) -> list[str]:
    """The operations of `wanted` on `topics` that the broker does not allow the admin
    client's principal, each as "READ on topic interaction_data".

    Kafka reports what a principal may do on each topic it describes, so this names the
    missing permission exactly, where a refused fetch or produce names neither.
    """
    needs = {}
    for topic in topics:
        grant = next((grant for grant in wanted if grant.covers(topic)), None)
        if grant is not None:
            needs[topic] = grant.operations
    if not needs:
        return []
    futures = admin.describe_topics(
        TopicCollection(list(needs)), include_authorized_operations=True, request_timeout=30
    )
    missing = []
    for topic, future in futures.items():
        try:
            allowed = future.result().authorized_operations
        except KafkaException as error:
            code = error.args[0].code()
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART:  # not created yet: nothing to ask
                continue
            if code != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise
            allowed = []  # not even DESCRIBE
        if allowed is None:  # a broker that does not report operations
            continue
        missing += [f"{op.name} on topic {topic}" for op in needs[topic] if op not in allowed]
    return missing


def transactions_refused(settings: Settings, transactional_id: str) -> list[str]:
    """["WRITE on transactional id …"] if the broker refuses the producer that would
    use `transactional_id`, else [].

    No request reports what a principal may do with a transactional id, so this starts
    the transactions of the id the topology is about to use, as its producer will. Found
    here, the refusal reaches the operator whole: once the application runs, closing
    its consumer can fail too and Quix raises that error in the refusal's place.
    """
    producer = Producer(settings.producer_config | {"transactional.id": transactional_id})
    try:
        producer.init_transactions(30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            raise
        return [f"WRITE on transactional id {transactional_id}"]
    return []
