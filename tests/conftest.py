"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from processor.local.ports import free_ports
from processor.local.stack import LocalStack, down, up


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A fresh embedded stack for the whole session, on free ports (never the defaults, so
    it cannot meet a developer's stack or another test run), removed at the end.
    Tests using it are marked `@pytest.mark.integration`."""
    root = tmp_path_factory.mktemp("local-stack")
    broker_port, registry_port, postgres_port = free_ports(3)
    try:
        yield up(
            root, broker_port=broker_port, registry_port=registry_port, postgres_port=postgres_port
        )
    finally:
        down(root)
