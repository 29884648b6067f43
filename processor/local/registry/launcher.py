"""The registry as a component of the local stack: a detached `python -m` process."""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from processor.local import process
from processor.local.ports import HOST

MODULE = "processor.local.registry"


@dataclass(frozen=True)
class RegistryServer:
    """The registry on the loopback `port`, keeping its schemas in `postgres_url`."""

    port: int
    postgres_url: str
    name: ClassVar[str] = "registry"

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, log_path: Path) -> int:
        argv = [sys.executable, "-m", MODULE, "--port", str(self.port)]
        argv += ["--postgres-url", self.postgres_url]
        return process.spawn_detached(argv, log_path, os.environ | {"PYTHONUNBUFFERED": "1"})

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/subjects", timeout=2) as response:
                return response.status == 200
        except OSError:  # refused, reset, timed out, HTTP error status
            return False

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, ["-m", MODULE], ["--port", str(self.port)])

    def stop(self, pid: int) -> bool:
        return process.stop(pid)
