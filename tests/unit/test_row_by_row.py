"""A TRUNCATE from the PostgreSQL CDC topics is a dead letter, not a crash: it is rejected
while the record is parsed, where rejections go to the dead-letter topic."""

from __future__ import annotations

import pytest

from processor.cdc.postgres import RowChange
from processor.errors import DecodeError
from processor.pipeline import row_by_row


def test_row_changes_pass_and_a_truncate_is_bad_input() -> None:
    upsert = RowChange("users", "upsert", {"user_id": 1}, {"user_id": 1})
    delete = RowChange("users", "delete", {"user_id": 1}, None)
    assert row_by_row(upsert) is upsert
    assert row_by_row(delete) is delete
    assert row_by_row(None) is None
    with pytest.raises(DecodeError, match="TRUNCATE of users"):
        row_by_row(RowChange("users", "truncate", {}, None))
