"""Unit tests see the settings' defaults, whatever the developer's shell exports."""

from __future__ import annotations

import pytest

from processor.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
