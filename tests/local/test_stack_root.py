"""Where a stack lives and what its environment says, without starting it."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.local.stack import ROOT_ENV, LocalStack, resolve_root
from processor.settings import Settings


def test_the_root_is_the_option_else_the_variable_else_dot_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert resolve_root() == tmp_path / ".local"

    monkeypatch.setenv(ROOT_ENV, "elsewhere")
    assert resolve_root() == tmp_path / "elsewhere"
    assert resolve_root("explicit") == tmp_path / "explicit"


def test_the_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = {"postgres": 1, "broker": 2, "controller": 3, "registry": 4, "connect": 5}
    stack = LocalStack(Path("/srv/stack"), ports, connect=True)
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.kafka_bootstrap_servers == "127.0.0.1:2"
    assert settings.schema_registry_url == "http://127.0.0.1:4/apis/ccompat/v7"
    assert settings.postgres_url == "postgresql://postgres@127.0.0.1:1/postgres"
    assert settings.connect_url == "http://127.0.0.1:5"
    assert settings.state_dir == Path("/srv/stack/state")
