"""A topology: one derived table and the stream that keeps it current.

Each module in `topologies/` defines `TOPOLOGY`; they are found by name, so adding a
derived table is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from quixstreams.dataframe import StreamingDataFrame

import topologies
from processor.pipeline import Pipeline
from processor.settings import Settings


def _none(settings: Settings) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Topology:
    """`build` wires the stream on a pipeline and returns the stream of `TableChange`s.

    The topics it touches are named without building it, for progress checks and for
    its ACLs (`processor.acl`): `inputs` it reads; `outputs` it writes besides its
    dead-letter topic, its table topic and its own internal topics; `described` it only
    looks at. `table_topic` is False for a table whose rows already are a topic, which
    `TABLE_TOPICS` cannot add again.
    """

    name: str
    table: sa.Table
    inputs: Callable[[Settings], tuple[str, ...]]
    build: Callable[[Pipeline], StreamingDataFrame]
    outputs: Callable[[Settings], tuple[str, ...]] = _none
    described: Callable[[Settings], tuple[str, ...]] = _none
    table_topic: bool = True


def all_topologies() -> dict[str, Topology]:
    """Every topology in the `topologies` package, by name, in a stable order."""
    found = {}
    for module_info in sorted(pkgutil.iter_modules(topologies.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"topologies.{module_info.name}")
        topology: Topology = module.TOPOLOGY
        found[topology.name] = topology
    return found
