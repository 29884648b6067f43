"""`pstreams demo` without a stack: its failure message, and its table views."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.cli import build_parser
from processor.cli.demo import VIEWS
from processor.local import stack
from processor.topology import all_topologies


def test_a_stack_that_cannot_start_fails_the_demo_naming_the_cause(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise stack.StackError("postgres did not answer within 60 s; see logs/postgres.log")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stack, "up", refuse)
    args = build_parser().parse_args(["demo"])

    assert args.handler(args) == 1
    output = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "demo failed" in output
    assert "the embedded stack could not start" in output
    assert "postgres did not answer within 60 s" in output


def test_every_view_shows_columns_its_table_has() -> None:
    for name, topology in all_topologies().items():
        columns = {column.name for column in topology.table.columns}
        view = VIEWS[name]
        assert set(view.columns) <= columns, name
        assert view.order_by.startswith("ORDER BY"), name
