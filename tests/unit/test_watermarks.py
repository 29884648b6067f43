"""The merged watermark of processor/watermarks.py: minimum over sources, monotonic, idle
sources released after processing time without records, downtime not counted."""

from __future__ import annotations

from typing import Any

from processor.watermarks import MergedWatermark


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_watermark_is_the_slowest_source_minus_the_lateness() -> None:
    watermarks = MergedWatermark(["a", "b"], allowed_lateness_ms=500, idle_timeout_s=0)
    progress: dict[str, Any] = {}
    assert watermarks.current(progress) is None
    assert watermarks.advance(progress, "a", 10_000) is None  # b not read yet
    assert watermarks.advance(progress, "b", 12_000) == 9_500
    assert watermarks.advance(progress, "c", 4_000) == 9_500  # a new source; never back
    assert watermarks.advance(progress, "a", 20_000) == 9_500  # c holds it
    assert watermarks.advance(progress, "c", 15_000) == 11_500  # b holds it
    assert watermarks.advance(progress, "b", 16_000) == 14_500
    assert watermarks.advance(progress, "c", 12_000) == 14_500  # c's max stays 15 000
    assert watermarks.current(progress) == 14_500


def test_a_source_that_stops_is_released_after_the_idle_timeout() -> None:
    clock = Clock()
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10, wall_clock=clock)
    progress: dict[str, Any] = {}
    watermarks.advance(progress, "a", 1_000)
    watermarks.advance(progress, "b", 2_000)
    for second in range(1, 10):
        clock.now += 1
        assert watermarks.advance(progress, "b", 2_000 + second * 1_000) == 1_000
    clock.now += 1  # a has now been silent for 10 s of processing
    assert watermarks.advance(progress, "b", 20_000) == 20_000
    assert watermarks.advance(progress, "a", 5_000) == 20_000  # back, and behind


def test_a_source_that_never_sends_is_released_after_the_idle_timeout() -> None:
    clock = Clock()
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10, wall_clock=clock)
    progress: dict[str, Any] = {}
    assert watermarks.advance(progress, "a", 1_000) is None
    clock.now += 9
    assert watermarks.advance(progress, "a", 2_000) is None
    clock.now += 1
    assert watermarks.advance(progress, "a", 3_000) == 3_000


def test_time_without_any_record_is_not_idle_time() -> None:
    clock = Clock()
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10, wall_clock=clock)
    progress: dict[str, Any] = {}
    watermarks.advance(progress, "a", 1_000)
    watermarks.advance(progress, "b", 2_000)
    clock.now += 3_600  # the process was down for an hour
    assert watermarks.advance(progress, "b", 9_000) == 1_000
    clock.now += 5
    assert watermarks.advance(progress, "b", 9_500) == 1_000
