"""The local schema registry: Apicurio Registry, its schemas kept in the stack's PostgreSQL.

The topologies and tools talk to its Confluent-compatible API (`/apis/ccompat/v7`) with
confluent-kafka's `SchemaRegistryClient`, as they talk to Confluent Cloud's registry.
Its schema ids there are content ids: one schema text has one id under every subject,
as in Confluent's registry. Kafka Connect's Apicurio converter uses its native v2 API
(`native_url`), which assigns the same ids.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql

from processor.local import jvm, maven, process
from processor.local.ports import HOST
from processor.local.postgres import SUPERUSER, postgres_url

DATABASE = "schema_registry"
"""The PostgreSQL database of the registry's tables, created when missing."""
CONFLUENT_API = "/apis/ccompat/v7"
NATIVE_API = "/apis/registry/v2"

_JVM_OPTIONS = ("-Xms64m", "-Xmx512m")
# Apicurio's defaults, other than storage, that do not suit a local stack.
_SETTINGS = {
    "apicurio.storage.kind": "sql",
    "apicurio.storage.sql.kind": "postgresql",
    # A pool of 20 connections by default; the stack's PostgreSQL serves tests too.
    "apicurio.datasource.jdbc.initial-size": "1",
    "apicurio.datasource.jdbc.min-size": "1",
    "apicurio.datasource.jdbc.max-size": "10",
    # `GET /subjects` lists at most this many; every test run adds a few dozen.
    "apicurio.ccompat.max-subjects": "1000000",
    # One line per request drowns the start-up messages a failure report quotes.
    'quarkus.log.category."io.quarkus.http.access-log".level': "WARN",
}


@dataclass(frozen=True)
class Registry:
    """Apicurio Registry on the loopback `port`, storing in the PostgreSQL at `postgres_port`."""

    port: int
    postgres_port: int
    name: ClassVar[str] = "registry"
    product: ClassVar[str] = f"Apicurio Registry {maven.APICURIO_REGISTRY_VERSION}"

    @property
    def address(self) -> str:
        """The Confluent-compatible URL: `SCHEMA_REGISTRY_URL` of the topologies."""
        return f"http://{HOST}:{self.port}{CONFLUENT_API}"

    @property
    def native_url(self) -> str:
        """Apicurio's own API, for its Kafka Connect converter."""
        return f"http://{HOST}:{self.port}{NATIVE_API}"

    def start(self, log_path: Path) -> int:
        runner = _runner_jar(maven.APICURIO_REGISTRY.directory())
        self._create_database()
        settings = _SETTINGS | {
            "quarkus.http.host": HOST,
            "quarkus.http.port": str(self.port),
            "apicurio.datasource.url": f"jdbc:postgresql://{HOST}:{self.postgres_port}/{DATABASE}",
            "apicurio.datasource.username": SUPERUSER,
            "apicurio.datasource.password": "",
        }
        argv = [str(jvm.find_java().executable), *_JVM_OPTIONS]
        argv += [f"-D{name}={value}" for name, value in settings.items()]
        return process.spawn_detached([*argv, "-jar", str(runner)], log_path)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/subjects", timeout=2) as response:
                return response.status == 200
        except OSError:  # refused, reset, timed out, HTTP error status
            return False

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, [f"-Dquarkus.http.port={self.port}"])

    def stop(self, pid: int) -> bool:
        return process.stop(pid, jvm.shutdown_escalation(10.0))

    def _create_database(self) -> None:
        with psycopg.connect(postgres_url(self.postgres_port), autocommit=True) as connection:
            exists = connection.execute(
                "select 1 from pg_database where datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))


def _runner_jar(directory: Path) -> Path:
    """The assembly's `*-runner.jar` (Apicurio 3.0's layout: the jar beside `lib/`)."""
    (runner,) = directory.glob("*-runner.jar")
    return runner
