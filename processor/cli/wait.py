"""`pstreams wait`: return once every topology has consumed and flushed what exists now."""

from __future__ import annotations

import argparse
import time

from processor.progress import Lag, ProgressProbe
from processor.runner import consumer_group
from processor.settings import Settings, load_settings
from processor.topology import Topology, all_topologies


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "wait", help="wait until every topology has consumed all input that exists now"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.set_defaults(handler=_wait)


def _wait(args: argparse.Namespace) -> int:
    lags = wait_until_caught_up(load_settings(), list(all_topologies().values()), args.timeout)
    if not lags:
        return 0
    print(f"timed out after {args.timeout:.0f} s; still behind:")
    for lag in lags:
        print(f"  {lag}")
    return 1


def wait_until_caught_up(
    settings: Settings, topologies: list[Topology], timeout: float
) -> list[Lag]:
    """Poll until no topology lags; return the lags left when `timeout` runs out.

    The ends of the external inputs are taken once, at the call. Topics the topologies
    write themselves (the interactions topic, Quix repartition topics) are re-read on
    every pass, after the topologies that feed them, so a chain is waited for whole.
    """
    feeders_first = sorted(
        topologies, key=lambda t: settings.interactions_topic in t.inputs(settings)
    )
    probe = ProgressProbe(settings)
    try:
        external = [
            topic
            for topology in topologies
            for topic in topology.inputs(settings)
            if topic != settings.interactions_topic
        ]
        external_ends = probe.ends(probe.partitions(external))
        deadline = time.monotonic() + timeout
        while True:
            lags = []
            for topology in feeders_first:
                lags += _lags(probe, settings, topology, external_ends)
            if not lags or time.monotonic() > deadline:
                return lags
            time.sleep(0.5)
    finally:
        probe.close()


def _lags(
    probe: ProgressProbe,
    settings: Settings,
    topology: Topology,
    external_ends: dict[tuple[str, int], int],
) -> list[Lag]:
    group = consumer_group(settings, topology.name)
    internal = [t for t in topology.inputs(settings) if t == settings.interactions_topic]
    internal += probe.topics_with_prefix(f"repartition__{group}--")
    ends = {tp: end for tp, end in external_ends.items() if tp[0] in topology.inputs(settings)}
    ends |= probe.ends(probe.partitions(internal))
    return probe.lags(group, ends)
