"""On a broker secured as Confluent Cloud is (SASL_SSL, PLAIN users, ACLs enforced by the
standard authorizer), each topology runs as its own principal with exactly the ACLs
`pstreams acl` grants it; without any one of them it stops at once with a line naming
what is missing; and no password appears in what it logs or serves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from processor.acl import apply, grants
from processor.local.broker import Broker, SecuredListener
from processor.local.ports import free_ports
from processor.local.process import wait_until
from processor.settings import Settings
from processor.supervisor import EX_CONFIG
from processor.topology import all_topologies
from tests.conftest import private_directory
from tests.integration.certificates import make_certificates
from tests.integration.support import differences, expected_tables, wait

pytestmark = pytest.mark.integration

NAMES = sorted(all_topologies())
DEMO = Path(__file__).resolve().parents[2] / "seed" / "demo"
ADMIN = "admin"
# The user of the tests that withhold one ACL.
LACKING = "lacking"


def password(user: str) -> str:
    return f"{user}-secret-pw"


@dataclass(frozen=True)
class SecuredBroker:
    broker: Broker
    ca: Path

    def client_env(self, user: str) -> dict[str, str]:
        """The settings of a client that logs in as `user` on the SASL_SSL listener."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.secured_address,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password(user),
            "KAFKA_SSL_CA_LOCATION": str(self.ca),
        }


@pytest.fixture(scope="module")
def secured_broker(local_stack) -> Iterator[SecuredBroker]:
    """A second Kafka beside the session stack (whose registry and PostgreSQL the tests
    share), with certificates made here; its plaintext listener stays open for loading."""
    directory = private_directory("pstreams-secured-")
    ca, keystore = make_certificates(directory / "tls")
    users = {name: password(name) for name in [ADMIN, *NAMES, LACKING]}
    plain, controller, secure = free_ports(3)
    listener = SecuredListener(secure, keystore, users, super_users=(ADMIN,))
    broker = Broker(plain, controller, directory / "kafka", secured=listener)
    pid = broker.start(directory / "broker.log")
    try:
        assert wait_until(broker.answers, timeout_s=120), (directory / "broker.log").read_text()
        yield SecuredBroker(broker, ca)
    finally:
        broker.stop(pid)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def stack_env(stack_env: dict[str, str], secured_broker: SecuredBroker) -> dict[str, str]:
    """The test's names, on the secured broker's plaintext listener (for loading and
    checking, as the stack's own tools would)."""
    return stack_env | {"KAFKA_BOOTSTRAP_SERVERS": secured_broker.broker.address}


def as_user(stack_env: dict[str, str], secured: SecuredBroker, user: str) -> dict[str, str]:
    return stack_env | secured.client_env(user)


def grant_all(pstreams, env: dict[str, str], topology: str, user: str) -> None:
    """`pstreams acl --apply`, as the administrator, for `user`."""
    granted = pstreams("acl", topology, "--principal", f"User:{user}", "--apply", env=env)
    assert granted.wait(timeout=60) == 0


def test_each_topology_runs_as_its_own_principal_with_only_its_acls(
    stack_env: dict[str, str],
    settings: Settings,
    secured_broker: SecuredBroker,
    pstreams,
    tmp_path: Path,
) -> None:
    assert pstreams("seed", "load", str(DEMO)).wait(timeout=300) == 0
    admin_env = as_user(stack_env, secured_broker, ADMIN)
    ports = free_ports(len(NAMES))
    for name, port in zip(NAMES, ports, strict=True):
        grant_all(pstreams, admin_env, name, name)
        env = as_user(stack_env, secured_broker, name) | {"OPS_PORT": str(port)}
        pstreams("run", name, env=env)
    wait(admin_env)
    expected = expected_tables(settings, DEMO, partitions=1, in_event_time_order=True)
    assert differences(settings, expected) == []

    served = [
        httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).text
        for port in ports
        for path in ("/healthz", "/readyz", "/metrics")
    ]
    logs = [log.read_text() for log in tmp_path.glob("pstreams-*.log")]
    secrets = [password(user) for user in [ADMIN, *NAMES]]
    assert [secret for secret in secrets if any(secret in text for text in served + logs)] == []


def single_acls(topology: str) -> list[tuple[str, int, int]]:
    """(topology, grant, operation) for each single ACL that `pstreams acl` grants."""
    found = grants(all_topologies()[topology], Settings())
    return [
        (topology, index, op)
        for index, grant in enumerate(found)
        for op in range(len(grant.operations))
    ]


# One ACL of each kind by default; every single ACL of every topology is `slow`.
DEFAULT_CASES = {
    ("highly_rated_item_details", 0, 0),  # READ on its consumer group
    ("highly_rated_item_details", 1, 0),  # READ on an input topic
    ("highly_rated_item_details", 4, 1),  # WRITE on its dead-letter topic
    ("highly_rated_item_details", 5, 0),  # CREATE on its changelog topics
    ("highly_rated_item_details", 7, 0),  # WRITE on its transactional ids
}


@pytest.mark.parametrize(
    ("topology", "index", "op"),
    [
        pytest.param(*case, marks=() if case in DEFAULT_CASES else pytest.mark.slow)
        for name in NAMES
        for case in single_acls(name)
    ],
)
def test_without_one_acl_the_topology_stops_naming_it(
    stack_env: dict[str, str],
    settings: Settings,
    secured_broker: SecuredBroker,
    pstreams,
    tmp_path: Path,
    topology: str,
    index: int,
    op: int,
) -> None:
    """Every name of the test is new, so no ACL granted earlier covers it: the user
    LACKING holds exactly the topology's ACLs but one."""
    assert pstreams("seed", "load", str(DEMO)).wait(timeout=300) == 0
    if settings.interactions_topic in all_topologies()[topology].inputs(settings):
        # The analytics read what interaction_data writes: let it make the topic.
        admin_env = as_user(stack_env, secured_broker, ADMIN)
        grant_all(pstreams, admin_env, "interaction_data", "interaction_data")
        pstreams(
            "run", "interaction_data", env=as_user(stack_env, secured_broker, "interaction_data")
        )
        wait(admin_env, "interaction_data")
    wanted = grants(all_topologies()[topology], settings)
    withheld = wanted[index]
    operations = withheld.operations[:op] + withheld.operations[op + 1 :]
    wanted[index] = replace(withheld, operations=operations)
    apply(settings, f"User:{LACKING}", wanted)  # over plaintext: a super user

    process = pstreams("run", topology, env=as_user(stack_env, secured_broker, LACKING))
    assert process.wait(timeout=120) == EX_CONFIG
    log = sorted(tmp_path.glob("pstreams-*.log"))[-1].read_text().strip().splitlines()
    missing = withheld.operations[op].name
    assert missing in log[-1] and withheld.name in log[-1], log[-5:]
