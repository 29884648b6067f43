"""One connector on the Kafka Connect worker at `CONNECT_URL`, through Connect's REST API.

Shared by the connectors the tools start: Debezium capturing the source tables
(`processor.debezium`) and the JDBC sink copying the table topics (`processor.jdbc_sink`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from processor.backoff import Backoff
from processor.settings import Settings

_CONFLUENT_API = "/apis/ccompat/v7"
_APICURIO_NATIVE_API = "/apis/registry/v2"


class ConnectorError(RuntimeError):
    """The connector could not be created, run or removed; the message says why."""


def converter_registry_url(settings: Settings) -> str:
    """Apicurio's own API, which its converter speaks, from `SCHEMA_REGISTRY_URL`."""
    url = settings.schema_registry_url
    if not url.endswith(_CONFLUENT_API):
        raise ConnectorError(
            f"SCHEMA_REGISTRY_URL={url} is not an Apicurio Registry's Confluent API "
            f"(…{_CONFLUENT_API}); the connectors here convert Avro with Apicurio's converter"
        )
    return url.removesuffix(_CONFLUENT_API) + _APICURIO_NATIVE_API


def avro_converters(settings: Settings) -> dict[str, str]:
    """Keys and values in Avro through Apicurio's converter, framed as Confluent's
    serializers frame them (magic byte 0, a 4-byte content id, no id headers): what the
    topologies read and write."""
    config = {}
    for side in ("key", "value"):
        config |= {
            f"{side}.converter": "io.apicurio.registry.utils.converter.AvroConverter",
            f"{side}.converter.apicurio.registry.url": converter_registry_url(settings),
            f"{side}.converter.apicurio.registry.auto-register": "true",
            f"{side}.converter.apicurio.registry.as-confluent": "true",
            f"{side}.converter.apicurio.registry.use-id": "contentId",
            f"{side}.converter.apicurio.registry.headers.enabled": "false",
        }
    return config


class ConnectorClient:
    """Creates, watches and deletes the connector `name`; waits up to `timeout_s` each."""

    def __init__(self, connect_url: str, name: str, timeout_s: float = 120.0) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._connect_url = connect_url
        self.http = httpx.Client(base_url=connect_url, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def ensure_running(self, config: dict[str, str]) -> None:
        """Create or reconfigure the connector, then wait until its tasks run."""
        # A worker still joining its group answers 409; so does one rebalancing.
        self.retrying(lambda: self.http.put(f"/connectors/{self.name}/config", json=config))
        self.await_condition(self.running, "its task to run")

    def delete(self) -> None:
        """Delete the connector; one already gone is no error."""
        self.retrying(lambda: self.http.delete(f"/connectors/{self.name}"), missing_ok=True)

    def running(self) -> bool:
        """Whether every task runs; a failed connector or task raises with its trace."""
        reply = self.http.get(f"/connectors/{self.name}/status")
        if reply.status_code == 404:
            return False
        status = reply.raise_for_status().json()
        failed = [t for t in status["tasks"] if t["state"] == "FAILED"]
        if status["connector"]["state"] == "FAILED" or failed:
            trace = (failed[0] if failed else status["connector"]).get("trace", "")
            raise ConnectorError(f"connector {self.name} failed: {trace.splitlines()[:1]}")
        return bool(status["tasks"]) and all(t["state"] == "RUNNING" for t in status["tasks"])

    def await_condition(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise ConnectorError(
                    f"connector {self.name}: gave up waiting for {what} after "
                    f"{self.timeout_s:.0f} s"
                )
            time.sleep(0.2)

    def retrying(self, request: Callable[[], httpx.Response], missing_ok: bool = False) -> None:
        """Send `request`, again while the worker answers 409 (busy); an error raises."""
        backoff = Backoff(maximum=5.0)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                reply = request()
            except httpx.TransportError as error:
                message = f"Kafka Connect at {self._connect_url}: {error}"
                raise ConnectorError(message) from error
            if reply.status_code == 404 and missing_ok:
                return
            if reply.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(backoff.next_delay())
        if reply.is_error:
            raise ConnectorError(
                f"Kafka Connect answered {reply.status_code} for {self.name}: {reply.text}"
            )
