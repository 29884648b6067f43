"""Fixtures shared by every test directory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.local.stack import LocalStack, down, free_stack_ports, up


def private_directory(prefix: str) -> Path:
    """A new directory outside pytest's temporary tree.

    PostgreSQL runs as a service user when the tests run as root, so it must be able to
    traverse the path to its data; pytest resets its own tree to mode 0700 whenever a
    pytest session starts, which would lock out a running server.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A fresh embedded stack for the whole session, on free ports (never the defaults, so
    it cannot meet a developer's stack or another test run), removed at the end.
    Tests using it are marked `@pytest.mark.integration`."""
    root = private_directory("pstreams-test-stack-")
    try:
        yield up(root, free_stack_ports(), connect=True)
    finally:
        down(root)
