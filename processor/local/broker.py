"""The local broker: Apache Kafka in KRaft mode, one node that is broker and controller.

Built from Maven Central jars (`maven.KAFKA`) and run on `java.find_java()`. Its log
directory lives under the stack's root, so a restarted broker keeps its topics,
committed offsets and transactions. The settings are Kafka's own defaults except where
one node or local use needs otherwise (`_server_properties`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from confluent_kafka import Consumer, KafkaException, TopicPartition

from processor.local import jvm, maven, process
from processor.local.ports import HOST, accepts_connections

# Kafka's own scripts start brokers with a 1 GB heap and these G1 settings.
_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)
# A controlled shutdown writes its last metadata and closes the logs cleanly.
_SHUTDOWN_GRACE_S = 30.0

# Kafka 4's metadata cache answers "no such partition" for a partition that exists but
# has no leader at the moment, and the transaction coordinator then skips that
# partition's commit or abort marker as if the topic had been deleted (KAFKA-20734,
# unfixed in 4.3.2 and 4.4.0). One node leaves every partition without a leader while
# it shuts down and restarts, so a transaction ending then stays open for good: its
# records block `read_committed` readers and its offsets are never stable, and the
# topology that committed them stalls. This Byteman rule gives the answer of the
# upstream fix (and of Kafka 3), "a leader not known yet", which makes the coordinator
# keep the markers and send them once the partition has a leader again
# (docs/guarantees.md, "A broker restart"; tests/integration/test_broker_shutdown.py).
LEADERLESS_IS_NOT_DELETED = """\
RULE a partition without a leader is not a deleted partition (KAFKA-20734)
CLASS org.apache.kafka.metadata.KRaftMetadataCache
METHOD getPartitionLeaderEndpoint(String, int, org.apache.kafka.common.network.ListenerName)
AT EXIT
IF !$!.isPresent() AND $0.getLeaderAndIsr($1, $2).isPresent()
DO return java.util.Optional.of(org.apache.kafka.common.Node.noNode())
ENDRULE
"""


@dataclass(frozen=True)
class SecuredListener:
    """A second listener as Confluent Cloud's: SASL_SSL with PLAIN users, and Kafka's
    standard authorizer, so a client there may do only what ACLs grant its principal.

    The plaintext and controller listeners stay open to anyone (their principal,
    `User:ANONYMOUS`, is a super user), so the stack's own tools keep working unchanged.
    """

    port: int
    keystore: Path
    """PEM file: the broker's private key (PKCS#8, unencrypted) and certificate chain."""
    users: Mapping[str, str]
    """PLAIN user names and their passwords."""
    super_users: tuple[str, ...] = ()
    """Users the authorizer lets do anything (an administrator that grants ACLs)."""

    def server_properties(self) -> dict[str, str]:
        jaas_users = " ".join(f'user_{name}="{secret}"' for name, secret in self.users.items())
        super_users = ["User:ANONYMOUS", *(f"User:{name}" for name in self.super_users)]
        return {
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {jaas_users};"
            ),
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": ";".join(super_users),
        }


@dataclass(frozen=True)
class Broker:
    """A single-node Kafka cluster on the loopback `port`, its controller on `controller_port`."""

    port: int
    controller_port: int
    directory: Path
    secured: SecuredListener | None = None
    name: ClassVar[str] = "broker"
    product: ClassVar[str] = f"Apache Kafka {maven.KAFKA_VERSION} (KRaft, with the KAFKA-20734 fix)"

    @property
    def address(self) -> str:
        """The bootstrap servers value."""
        return f"{HOST}:{self.port}"

    @property
    def _config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def _data_dir(self) -> Path:
        return self.directory / "data"

    def start(self, log_path: Path) -> int:
        classpath = maven.KAFKA.classpath()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._config_path.write_text(self._server_properties())
        log_config = jvm.write_log_config(self.directory)
        java = str(jvm.find_java().executable)
        if not (self._data_dir / "meta.properties").exists():
            # A new cluster: its id and this node as the one voter of the controller quorum.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            format_storage = ["kafka.tools.StorageTool", "format", "--standalone"]
            # `=` form: an id may begin with "-", which a separate argument would make an option.
            format_storage += [f"--cluster-id={cluster_id}", "-c", str(self._config_path)]
            java_options = [f"-Dlog4j2.configurationFile={log_config}", "-cp", classpath]
            process.run_logged([java, *java_options, *format_storage], log_path, timeout=120)
        argv = [java, *_JVM_OPTIONS, f"-Dlog4j2.configurationFile={log_config}"]
        argv.append(self._fix_agent())
        argv += ["-cp", classpath, "kafka.Kafka", str(self._config_path)]
        return process.spawn_detached(argv, log_path)

    def _fix_agent(self) -> str:
        """The `-javaagent` option that applies `LEADERLESS_IS_NOT_DELETED`."""
        rules = self.directory / "kafka-fixes.btm"
        rules.write_text(LEADERLESS_IS_NOT_DELETED)
        agent = maven.BYTEMAN.directory() / f"byteman-{maven.BYTEMAN_VERSION}.jar"
        return f"-javaagent:{agent}=script:{rules}"

    def answers(self) -> bool:
        # The TCP probe first: librdkafka logs every refused connection to stderr.
        if not accepts_connections(self.port):
            return False
        # Ready once a group's coordinator answers: on a new cluster that creates the
        # offsets topic; after a restart it waits until the broker loaded it. Clients
        # that commit earlier get NOT_COORDINATOR, which some calls do not retry.
        probe = Consumer({"bootstrap.servers": self.address, "group.id": "pstreams-local-up"})
        try:
            probe.committed([TopicPartition("__consumer_offsets", 0)], timeout=2)
        except KafkaException:
            return False
        finally:
            probe.close()
        return True

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, ["kafka.Kafka", str(self._config_path)])

    def stop(self, pid: int) -> bool:
        return process.stop(pid, jvm.shutdown_escalation(_SHUTDOWN_GRACE_S))

    @property
    def secured_address(self) -> str:
        """The bootstrap servers value of the SASL_SSL listener."""
        assert self.secured is not None, "this broker has no secured listener"
        return f"{HOST}:{self.secured.port}"

    def _server_properties(self) -> str:
        listeners = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        if self.secured is not None:
            listeners += f",SASL_SSL://{self.secured_address}"
            protocols += ",SASL_SSL:SASL_SSL"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": protocols,
            "log.dirs": str(self._data_dir),
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            # One partition for the groups' offsets and one for transactions: a restart
            # loads each in one pass, and `answers` then speaks for every group.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # No one else is coming: a group's first member need not wait for more.
            "group.initial.rebalance.delay.ms": "0",
            # As on Confluent Cloud: topics exist only when something creates them.
            "auto.create.topics.enable": "false",
            # Local datasets carry event times years old, which the default 7-day
            # time-based retention would delete as soon as a segment rolls.
            "log.retention.ms": "-1",
        }
        if self.secured is not None:
            settings |= self.secured.server_properties()
        return "".join(f"{name}={value}\n" for name, value in settings.items())
