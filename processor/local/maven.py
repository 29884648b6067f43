"""The stack's JVM servers as Maven Central artifacts, resolved by jgo and cached.

Kafka, Kafka Connect, Debezium and Apicurio Registry are pinned below, by their
top-level coordinates only: jgo (a Maven resolver in pure Python) resolves what they
depend on from their POMs, which Maven Central never changes, so a pin fixes the whole
tree. jgo verifies every download against Central's SHA-1.

Each set of jars, and each unpacked archive, is built once into a directory under the
cache (`$PSTREAMS_CACHE_DIR`, else `~/.cache/personalization-streams`) and marked
complete; later uses read the directory and touch neither jgo nor the network. The
first build shows its downloads with progress bars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.3.2"
# Kafka's own log4j: its broker POM names log4j-core and log4j-api at this version.
LOG4J_VERSION = "2.25.5"
DEBEZIUM_VERSION = "3.6.1.Final"
# Debezium's JDBC sink connector has no 3.6.1.Final on Maven Central; 3.6.0.Final is the
# newest there. It reads the table topics into PostgreSQL as the replaced pipeline's
# sink connector did (docs/deployment.md).
DEBEZIUM_JDBC_VERSION = "3.6.0.Final"
# The newest Apicurio Registry on Maven Central that runs on Java 17 (3.2 and later need
# Java 21); its Confluent-compatible API is what the topologies talk to.
APICURIO_REGISTRY_VERSION = "3.0.9"
# The Kafka Connect converter: no 3.x release resolves completely from Maven Central
# (3.0.9's parent POM and 3.3.3's Avro serde are missing there), so the 2.6 line, which
# Debezium documents, writes the Confluent framing against the registry's v2 API.
APICURIO_CONVERTER_VERSION = "2.6.13.Final"
# Byteman, a Java agent that applies rules written as text, carries the one-line broker
# fix that the local stack needs (processor/local/broker.py, `LEADERLESS_IS_NOT_DELETED`).
BYTEMAN_VERSION = "4.0.25"

CACHE_ENV = "PSTREAMS_CACHE_DIR"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"
_COMPLETE = ".complete"
# The log4j2 binding is left out of Kafka's POMs (the release tarball adds it, KAFKA-18466);
# `!` keeps these coordinates out of jgo's BOM management, which would otherwise let
# log4j's parent POM pin kafka-clients to an old version.
_LOG4J_BINDING = (
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}!",
    f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}!",
    f"org.apache.logging.log4j:log4j-api:{LOG4J_VERSION}!",
)
# Downloads smaller than this get no bar of their own (there are hundreds of POMs).
_BAR_THRESHOLD_BYTES = 1 << 20


def cache_root() -> Path:
    """Where the artifacts are kept: `$PSTREAMS_CACHE_DIR`, else the user's cache."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "personalization-streams"


@dataclass(frozen=True)
class JarSet:
    """The jars of some coordinates and of everything they need at run time."""

    name: str
    coordinates: tuple[str, ...]
    exclude_groups: tuple[str, ...] = ()
    """Group ids left out, e.g. what a Connect plugin gets from the worker."""

    def directory(self) -> Path:
        """The directory of the jars, built on first use."""
        key = "\n".join([*self.coordinates, "exclude", *self.exclude_groups])
        return _materialized(f"jars/{self.name}", key, self._fill)

    def classpath(self) -> str:
        """A `java -cp` value naming every jar of the set."""
        return str(self.directory() / "*")

    def _fill(self, target: Path, downloads: _Downloads) -> None:
        for group_id, jar in _resolve(self.coordinates, downloads):
            if group_id not in self.exclude_groups:
                _link(jar, target / jar.name)


@dataclass(frozen=True)
class Archive:
    """A tar.gz assembly published on Maven Central (`group:artifact:version:classifier`)."""

    name: str
    coordinate: str

    def directory(self) -> Path:
        """The unpacked archive, built on first use."""
        return _materialized(f"archives/{self.name}", self.coordinate, self._fill)

    def _fill(self, target: Path, downloads: _Downloads) -> None:
        group_id, artifact_id, version, classifier = self.coordinate.split(":")
        context = downloads.context()
        component = context.project(group_id, artifact_id).at_version(version)
        archive = component.artifact(classifier=classifier, packaging="tar.gz").resolve()
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()  # unpacked is all that is used; keep the cache half the size


KAFKA = JarSet("kafka", (f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}", *_LOG4J_BINDING))
# Kafka's command-line tools (DumpLogSegments, TransactionsCommand): a failed integration
# test reads the broker's transaction and offsets logs with them (docs/testing.md).
KAFKA_TOOLS = JarSet(
    "kafka-tools",
    (
        f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
        f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
        *_LOG4J_BINDING,
    ),
)
BYTEMAN = JarSet("byteman", (f"org.jboss.byteman:byteman:{BYTEMAN_VERSION}",))
CONNECT = JarSet(
    "kafka-connect",
    (
        f"org.apache.kafka:connect-runtime:{KAFKA_VERSION}",
        f"org.apache.kafka:connect-json:{KAFKA_VERSION}",
        f"org.apache.kafka:connect-transforms:{KAFKA_VERSION}",
        *_LOG4J_BINDING,
    ),
)
DEBEZIUM_POSTGRES = Archive(
    "debezium-connector-postgres",
    f"io.debezium:debezium-connector-postgres:{DEBEZIUM_VERSION}:plugin",
)
DEBEZIUM_JDBC = Archive(
    "debezium-connector-jdbc",
    f"io.debezium:debezium-connector-jdbc:{DEBEZIUM_JDBC_VERSION}:plugin",
)
APICURIO_CONVERTER = JarSet(
    "apicurio-converter",
    (f"io.apicurio:apicurio-registry-utils-converter:{APICURIO_CONVERTER_VERSION}",),
    exclude_groups=("org.apache.kafka", "org.slf4j"),
)
APICURIO_REGISTRY = Archive(
    "apicurio-registry", f"io.apicurio:apicurio-registry-app:{APICURIO_REGISTRY_VERSION}:all"
)


def _materialized(kind: str, key: str, fill: Callable[[Path, _Downloads], None]) -> Path:
    """`fill`'s directory for `key`, built once under a lock and moved into place whole."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    target = cache_root() / f"{kind}-{digest}"
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(f"{target.name}.lock")):
        if (target / _COMPLETE).exists():  # another process built it meanwhile
            return target
        partial = target.with_name(f"{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        with _Downloads.shown(kind.split("/")[-1]) as downloads:
            fill(partial, downloads)
        (partial / _COMPLETE).write_text(key + "\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _resolve(coordinates: tuple[str, ...], downloads: _Downloads) -> Iterator[tuple[str, Path]]:
    """(group id, local jar) of the coordinates and their compile and runtime dependencies."""
    from jgo.parse import Coordinate

    context = downloads.context()
    dependencies = [
        context.create_dependency(dataclasses.replace(Coordinate.parse(c), scope="compile"))
        for c in coordinates
    ]
    inputs, transitive = context.resolver.resolve(dependencies)
    for dependency in [*inputs, *transitive]:
        if dependency.scope in ("compile", "runtime"):
            yield dependency.groupId, dependency.artifact.resolve()


def _link(source: Path, destination: Path) -> None:
    """A hard link where the file system allows one (no copy of the cache), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


class _Downloads:
    """jgo's Maven context for one build, with rich progress bars for large downloads."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._progress = None
        self._count = 0
        self._bytes = 0
        self._began = time.monotonic()

    @classmethod
    @contextlib.contextmanager
    def shown(cls, title: str) -> Iterator[_Downloads]:
        downloads = cls(title)
        try:
            yield downloads
        finally:
            downloads._close()

    def context(self):  # -> jgo.maven.MavenContext (jgo is imported only when building)
        from jgo.maven import MavenContext, PythonResolver

        return MavenContext(
            resolver=PythonResolver(progress_callback=self._file),
            repo_cache=cache_root() / "maven",
            remote_repos={"central": MAVEN_CENTRAL},
            timeout=60,
        )

    @contextlib.contextmanager
    def _file(self, filename: str, total_bytes: int) -> Iterator[Callable[[int], None]]:
        self._count += 1
        self._bytes += total_bytes
        if total_bytes < _BAR_THRESHOLD_BYTES:
            yield lambda _: None
            return
        progress = self._bars()
        task = progress.add_task(f"  {filename}", total=total_bytes)
        yield lambda received: progress.advance(task, received)

    def _bars(self):  # -> rich.progress.Progress
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            console = Console(stderr=True)
            console.print(f"downloading {self._title} from Maven Central (once; cached)")
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
            )
            self._progress.start()
        return self._progress

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._count:
            took_s = time.monotonic() - self._began
            print(
                f"{self._title}: {self._count} files, {self._bytes / 1e6:.1f} MB downloaded "
                f"in {took_s:.1f} s into {cache_root()}",
                file=sys.stderr,
            )
