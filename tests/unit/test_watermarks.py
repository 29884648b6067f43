"""The merged watermark of processor/watermarks.py: minimum over sources, monotonic, idle
sources released after processing time (the records' capture times) without records,
quiet spells of the whole input not counted."""

from __future__ import annotations

from typing import Any

from processor.watermarks import MergedWatermark


def test_the_watermark_is_the_slowest_source_minus_the_lateness() -> None:
    watermarks = MergedWatermark(["a", "b"], allowed_lateness_ms=500, idle_timeout_s=0)
    progress: dict[str, Any] = {}
    assert watermarks.current(progress) is None
    assert watermarks.advance(progress, "a", 10_000, 0) is None  # b not read yet
    assert watermarks.advance(progress, "b", 12_000, 0) == 9_500
    assert watermarks.advance(progress, "c", 4_000, 0) == 9_500  # a new source; never back
    assert watermarks.advance(progress, "a", 20_000, 0) == 9_500  # c holds it
    assert watermarks.advance(progress, "c", 15_000, 0) == 11_500  # b holds it
    assert watermarks.advance(progress, "b", 16_000, 0) == 14_500
    assert watermarks.advance(progress, "c", 12_000, 0) == 14_500  # c's max stays 15 000
    assert watermarks.current(progress) == 14_500


def test_a_source_that_stops_is_released_after_the_idle_timeout() -> None:
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10)
    progress: dict[str, Any] = {}
    watermarks.advance(progress, "a", 1_000, captured_s=1_000)
    watermarks.advance(progress, "b", 2_000, captured_s=1_000)
    for second in range(1, 10):
        assert watermarks.advance(progress, "b", 2_000 + second * 1_000, 1_000 + second) == 1_000
    # a has now sent nothing for 10 s of capture time
    assert watermarks.advance(progress, "b", 20_000, captured_s=1_010) == 20_000
    assert watermarks.advance(progress, "a", 5_000, captured_s=1_010) == 20_000  # behind


def test_a_source_that_never_sends_is_released_after_the_idle_timeout() -> None:
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10)
    progress: dict[str, Any] = {}
    assert watermarks.advance(progress, "a", 1_000, captured_s=1_000) is None
    assert watermarks.advance(progress, "a", 2_000, captured_s=1_009) is None
    assert watermarks.advance(progress, "a", 3_000, captured_s=1_010) == 3_000


def test_a_quiet_spell_of_the_whole_input_is_not_idle_time() -> None:
    watermarks = MergedWatermark(["a", "b"], 0, idle_timeout_s=10)
    progress: dict[str, Any] = {}
    watermarks.advance(progress, "a", 1_000, captured_s=1_000)
    watermarks.advance(progress, "b", 2_000, captured_s=1_000)
    # nothing was captured for an hour; then b sends first
    assert watermarks.advance(progress, "b", 9_000, captured_s=4_600) == 1_000
    assert watermarks.advance(progress, "b", 9_500, captured_s=4_605) == 1_000
