"""The restart delay of `pstreams run --all`: growing in a crash loop, short again after a
stable run."""

from __future__ import annotations

from processor.backoff import Backoff
from processor.supervisor import STABLE_RUN_S, child_ops_ports, restart_delay


def test_a_crash_loop_waits_longer_each_time_and_a_stable_run_starts_over() -> None:
    backoff = Backoff(maximum=60.0, initial=1.0)
    assert [restart_delay(backoff, 2.0) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(backoff, STABLE_RUN_S) == 1
    assert restart_delay(backoff, 5.0) == 2


def test_run_all_gives_each_child_its_own_port() -> None:
    assert child_ops_ports(9400, 3) == [9400, 9401, 9402]
    picked = child_ops_ports(0, 3)
    assert len(set(picked)) == 3 and 0 not in picked
