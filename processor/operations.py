"""The operations endpoints of a topology process: `/healthz`, `/readyz`, `/metrics`.

Served by the standard library's `ThreadingHTTPServer` in a daemon thread. Why not
prometheus-client's own `start_http_server`: it answers every path with the metrics,
so it cannot also serve the two probes, and three fixed routes need nothing more.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from processor.metrics import KafkaStatistics

logger = logging.getLogger(__name__)

# A processing loop silent this long is stuck: librdkafka would already have dropped it
# from its consumer group (max.poll.interval.ms), so a restart is the way out.
STALL_AFTER_S = 300.0
SINK_CONNECT_TIMEOUT_S = 3
REASON_LOG_EVERY_S = 60.0


def postgres_check(url: str) -> Callable[[], str | None]:
    """A check that PostgreSQL answers at `url`: None when it does, else the reason.

    The reason is served to anyone who can reach the endpoint, so it names the kind of
    failure only (the driver's text holds the host, the port and the user name); the
    full text goes to the log, at most once a minute.
    """
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    logged_at = -REASON_LOG_EVERY_S

    def check() -> str | None:
        nonlocal logged_at
        try:
            with psycopg.connect(libpq_url, connect_timeout=SINK_CONNECT_TIMEOUT_S) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as error:
            if time.monotonic() - logged_at >= REASON_LOG_EVERY_S:
                logged_at = time.monotonic()
                logger.warning("readiness: PostgreSQL does not answer: %s", str(error).strip())
            state = f", SQLSTATE {error.sqlstate}" if error.sqlstate else ""
            return f"PostgreSQL does not answer ({type(error).__name__}{state})"
        return None

    return check


@dataclass
class Probes:
    """Liveness and readiness of one topology process, with the reasons behind them."""

    statistics: KafkaStatistics
    sink_problem: Callable[[], str | None]
    stall_after_s: float = STALL_AFTER_S

    def health(self) -> tuple[bool, dict[str, object]]:
        """Alive unless the processing loop has stopped reporting after it started."""
        silent = self.statistics.seconds_since_report()
        alive = silent is None or silent < self.stall_after_s
        return alive, {"alive": alive, "seconds_since_loop_report": silent}

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready once the group assignment is settled, state restored and the sink answers.

        A replica of a group with more replicas than partitions is ready with none
        assigned: it is a standby, and must not block a rolling update.
        """
        group = self.statistics.group_state()
        joined = group is not None and group == ("up", "steady")
        restoring = self.statistics.restoring()
        sink = self.sink_problem()
        ready = joined and not restoring and sink is None
        return ready, {
            "ready": ready,
            "group": "/".join(group) if group else "no report yet",
            "assigned_partitions": [f"{t}[{p}]" for t, p in self.statistics.assigned_partitions()],
            "restoring": {f"{t}[{p}]": left for (t, p), left in restoring.items()},
            "sink": sink or "ok",
        }


class _Handler(BaseHTTPRequestHandler):
    server: OperationsServer

    def do_GET(self) -> None:
        probes = {"/healthz": self.server.probes.health, "/readyz": self.server.probes.readiness}
        if self.path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif probe := probes.get(self.path):
            ok, detail = probe()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, json.dumps(detail).encode(), "application/json")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"/healthz /readyz /metrics\n", "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not events worth a log line."""


class OperationsServer(ThreadingHTTPServer):
    """The HTTP server of the endpoints; `start` serves it from a daemon thread."""

    daemon_threads = True

    def __init__(
        self,
        host: str,
        port: int,
        probes: Probes,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise SystemExit(
                f"invalid configuration: OPS_PORT: cannot listen on {host}:{port}: {error.strerror}"
            ) from None
        self.probes = probes
        self.registry = registry

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> OperationsServer:
        threading.Thread(target=self.serve_forever, name="operations", daemon=True).start()
        logger.info(
            "operations endpoints on http://%s:%d (/healthz /readyz /metrics)",
            self.server_address[0],
            self.port,
        )
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
