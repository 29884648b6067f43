"""Logging of `pstreams run`: plain text or one JSON object per line, secrets masked.

Quix Streams, librdkafka (bridged by Quix), SQLAlchemy and our own modules all log
through the root logger configured here, so one format and one redaction cover them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import orjson

from processor.settings import Settings

MASK = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret as it could appear in a message: API secrets, passwords."""
    secrets = []
    if settings.kafka_sasl_password is not None:
        secrets.append(settings.kafka_sasl_password.get_secret_value())
    if settings.schema_registry_basic_auth_user_info is not None:
        user_info = settings.schema_registry_basic_auth_user_info.get_secret_value()
        secrets += [user_info, user_info.split(":", 1)[1]]
    password = urlsplit(settings.postgres_url).password
    if password:
        secrets += [password, unquote(password)]
    return [secret for secret in secrets if secret]


class RedactSecrets(logging.Filter):
    """Replaces every known secret in a record's final message (and traceback) by `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg, record.args = self._mask(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._mask(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message[, error]."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = record.exc_text
        return orjson.dumps(entry).decode()


def configure_logging(settings: Settings) -> None:
    """Route every logger to stderr in `LOG_FORMAT`, at `LOG_LEVEL`, with secrets masked."""
    handler = logging.StreamHandler()
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactSecrets(secret_values(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Python warnings become log records too, so JSON logs stay one object per line.
    logging.captureWarnings(True)
    # One line per registry request is noise; failures surface as our own errors.
    logging.getLogger("httpx").setLevel(logging.WARNING)
