"""Detached server processes: start them, recognise them later by pid, stop them.

The stack's servers outlive the command that starts them, so a later `pstreams local`
call only has the pids recorded in `stack.json`. A pid alone can be reused by an
unrelated process, so each component also checks the process's command line before it
treats the pid as its own, and nothing is signalled unless it is recognised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Polite request first, then force; seconds to wait after each signal.
TERMINATE: tuple[tuple[signal.Signals, float], ...] = (
    (signal.SIGTERM, 10.0),
    (signal.SIGKILL, 5.0),
)


def spawn_detached(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start `argv` in its own session with output appended to `log_path`; return its pid.

    A new session keeps Ctrl-C in the calling terminal from reaching the server. The
    process is spawned rather than wrapped in `subprocess.Popen` because the caller
    usually exits long before the server does, and a dropped `Popen` warns.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(os.environ if env is None else env),
        file_actions=file_actions,
        setsid=True,
    )


def run_logged(argv: Sequence[str], log_path: Path, **kwargs: object) -> None:
    """Run a short command to completion with its output appended to `log_path`.

    Output goes to a file, not a pipe: `pg_ctl start` leaves a server behind that
    inherits the descriptors, and a pipe would never see end-of-file.
    """
    with log_path.open("ab") as log:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True, **kwargs)


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (an exited child is reaped, a zombie is dead)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return False
    except ChildProcessError:
        pass  # not our child: only the kernel can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"


def command_line(pid: int) -> list[str]:
    """The argument vector of `pid`, or [] when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _command_line_from_ps(pid)
    return raw.decode(errors="replace").split("\0")[:-1]


def runs_command(pid: int, *fragments: Sequence[str]) -> bool:
    """Whether `pid` is alive and its argv contains each fragment as consecutive args."""
    if not is_running(pid):
        return False
    argv = command_line(pid)
    return all(_contains_run(argv, list(fragment)) for fragment in fragments)


def stop(pid: int, escalation: Sequence[tuple[signal.Signals, float]] = TERMINATE) -> bool:
    """Signal `pid` with each signal in turn until it exits; whether it did."""
    for sig, grace_s in escalation:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if wait_until(lambda: not is_running(pid), grace_s):
            return True
    return not is_running(pid)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _state(pid: int) -> str | None:
    """The one-letter state from /proc (Linux); None where /proc does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _command_line_from_ps(pid: int) -> list[str]:
    """Fallback for systems without /proc (macOS); arguments are split on spaces."""
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.split()


def _contains_run(argv: list[str], run: list[str]) -> bool:
    return any(argv[i : i + len(run)] == run for i in range(len(argv) - len(run) + 1))
