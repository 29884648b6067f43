"""Kafka Connect with Debezium's PostgreSQL and JDBC sink connectors and Apicurio's Avro
converter.

A distributed worker (its configurations, offsets and statuses in Kafka topics, so a
restart resumes where it was) with the three plugins from Maven Central. Connectors are
added through its REST API; `processor.debezium` adds the one that captures the
source tables, `processor.jdbc_sink` one that copies the table topics into PostgreSQL.
Started only when asked for (`pstreams local up --with-connect`).
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from processor.local import jvm, maven, process
from processor.local.ports import HOST

GROUP = "pstreams-connect"
_MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectDistributed"
# UTC, so that the JDBC sink writes timestamps as the topologies do, whatever the machine's zone.
_JVM_OPTIONS = ("-Xms128m", "-Xmx1g", "-Duser.timezone=UTC")


@dataclass(frozen=True)
class Connect:
    """One Connect worker on the loopback `port`, working on the broker at `bootstrap_servers`."""

    port: int
    bootstrap_servers: str
    directory: Path
    name: ClassVar[str] = "connect"
    product: ClassVar[str] = (
        f"Kafka Connect {maven.KAFKA_VERSION}, Debezium {maven.DEBEZIUM_VERSION}"
        f" (JDBC sink {maven.DEBEZIUM_JDBC_VERSION})"
    )

    @property
    def address(self) -> str:
        """The REST API: `CONNECT_URL`."""
        return f"http://{HOST}:{self.port}"

    @property
    def _config_path(self) -> Path:
        return self.directory / "worker.properties"

    def start(self, log_path: Path) -> int:
        classpath = maven.CONNECT.classpath()
        plugins = self._plugin_path(
            {
                "debezium-connector-postgres": maven.DEBEZIUM_POSTGRES.directory()
                / "debezium-connector-postgres",
                "debezium-connector-jdbc": maven.DEBEZIUM_JDBC.directory()
                / "debezium-connector-jdbc",
                "apicurio-converter": maven.APICURIO_CONVERTER.directory(),
            }
        )
        self._config_path.write_text(self._worker_properties(plugins))
        log_config = jvm.write_log_config(self.directory)
        argv = [str(jvm.find_java().executable), *_JVM_OPTIONS]
        argv += [f"-Dlog4j2.configurationFile={log_config}", "-cp", classpath]
        return process.spawn_detached([*argv, _MAIN_CLASS, str(self._config_path)], log_path)

    def answers(self) -> bool:
        # The plugins are listed once the worker has scanned them and joined its group.
        try:
            with urllib.request.urlopen(f"{self.address}/connector-plugins", timeout=2) as reply:
                return reply.status == 200
        except OSError:  # refused, reset, timed out, HTTP error status
            return False

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, [_MAIN_CLASS, str(self._config_path)])

    def stop(self, pid: int) -> bool:
        return process.stop(pid, jvm.shutdown_escalation(30.0))

    def _plugin_path(self, plugins: dict[str, Path]) -> Path:
        """A directory with one subdirectory (a link) per plugin, as `plugin.path` wants:
        each plugin's jars load in a class loader of their own."""
        path = self.directory / "plugins"
        path.mkdir(parents=True, exist_ok=True)
        for name, target in plugins.items():
            link = path / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target, target_is_directory=True)
        return path

    def _worker_properties(self, plugin_path: Path) -> str:
        settings = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": GROUP,
            "config.storage.topic": "_connect-configs",
            "offset.storage.topic": "_connect-offsets",
            "status.storage.topic": "_connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            # Debezium confirms a position to PostgreSQL when offsets are flushed;
            # Connect's default of a minute would hold the replication slot back.
            "offset.flush.interval.ms": "1000",
            # Connectors choose their own converters; these are only the defaults.
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "listeners": f"http://{HOST}:{self.port}",
            "rest.advertised.host.name": HOST,
            "rest.advertised.port": str(self.port),
            "plugin.path": str(plugin_path),
        }
        return "".join(f"{name}={value}\n" for name, value in settings.items())
