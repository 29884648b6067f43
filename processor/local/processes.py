"""`pstreams` commands as background processes, for the tools that drive a whole pipeline
on a stack (the demo, the parity check, the fixture refresh)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def pstreams_running(
    *args: str, env: Mapping[str, str], log: Path, stop_timeout_s: float = 90.0
) -> Iterator[subprocess.Popen]:
    """`pstreams ARGS` in the background, its output in `log`; on the way out it is asked
    to stop (SIGTERM: topologies finish their checkpoint) and killed if it does not."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "processor", *args],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
