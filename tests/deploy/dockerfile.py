"""Reading the Dockerfile's instructions, and running commands as its non-root user would.

No Docker engine runs in CI, so the tests replay the Dockerfile's own steps: the RUN
lines of its build stage in a fresh directory and venv, its ENV and USER for the entry
point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    """One FROM ... AS name section: its instructions in order, as (keyword, arguments)."""

    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]

    def expand(self, text: str, values: dict[str, str]) -> str:
        """`$NAME` / `${NAME}` replaced from `values`, then the stage's ARG defaults."""
        known = self.args | values

        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return known.get(name, match.group(0))

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)

    def env(self, values: dict[str, str]) -> dict[str, str]:
        """The ENV of this stage (`KEY=value` pairs), expanded."""
        env: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments):
                name, raw = pair
                env[name] = self.expand(raw.strip('"'), values | env)
        return env

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of an ENTRYPOINT / CMD / HEALTHCHECK ... CMD instruction."""
        (arguments,) = self.all(keyword)
        return json.loads(arguments[arguments.index("[") :])


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """The stages of a Dockerfile by name; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found: dict[str, Stage] = {}
    global_args: dict[str, str] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            name = arguments.split()[-1]
            current = found[name] = Stage(name, args=dict(global_args))
        elif keyword == "ARG":
            name, _, default = arguments.partition("=")
            (current.args if current else global_args)[name] = default
        if current is not None:
            current.instructions.append((keyword, arguments))
    return found


def as_image_user(stage: Stage, command: list[str]) -> list[str]:
    """`command` run as the stage's USER (uid:gid) when we are root, as it is in the image."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return command
    (user,) = stage.all("USER")
    uid, _, gid = user.partition(":")
    return ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", *command]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
