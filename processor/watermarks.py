"""Event-time watermarks of one partition whose records come from several source partitions.

A partition of the interactions topic (keyed by user) merges the records of every
partition of the DynamoDB CDC topic, each in its own order, interleaved however the
upstream topology happened to read them. A watermark taken as the maximum event time of
the merge would call a record late because another source partition was read ahead. So,
as Flink does across the partitions of a source, the watermark is the minimum over the
source partitions of the maximum event time seen from each, minus the allowed lateness:
a record is then late only if its own source partition delivered it out of event-time
order, whatever the interleaving. The watermark never moves back.

Every partition of the source topic counts, also before its first record arrives: when
a backlog is read, one source partition's records may all come before another's, and
the watermark must not run ahead of the one not yet read. A source partition that sends
nothing (or stops sending) would then hold the windows open forever, so after
`idle_timeout_s` of processing without a record from it, it no longer counts until its
next record (Flink's source idle timeout). A source partition not known at start-up
(partitions added later) counts from its first record. Processing time is the wall
clock while records flow: a gap longer than the timeout between two records of the
partition (the process was down, or nothing arrived) does not count, so a restart after
an outage does not declare every source idle at once. Records of a source that was idle
and has fallen behind the watermark are late.

The progress is a plain dictionary, so that it can live in a checkpointed store:
`{"sources": {source: [max_event_ms, clock_at_last_record]}, "watermark": ms | None,
"clock": seconds, "wall": wall clock of the last record}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


class MergedWatermark:
    """The rule above, applied to a progress dictionary the caller persists."""

    def __init__(
        self,
        sources: Iterable[str],
        allowed_lateness_ms: int,
        idle_timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = frozenset(sources)
        self._lateness_ms = allowed_lateness_ms
        self._idle_timeout_s = idle_timeout_s
        self._wall_clock = wall_clock

    @staticmethod
    def current(progress: dict[str, Any]) -> int | None:
        """The watermark before the next record: None until every source has been read."""
        return progress.get("watermark")

    def advance(self, progress: dict[str, Any], source: str, event_time_ms: int) -> int | None:
        """Account for one record of `source`; the new watermark (None while a source
        partition has not been read yet)."""
        clock = self._tick(progress)
        sources = progress.setdefault("sources", {})
        seen = sources.get(source)
        sources[source] = [event_time_ms if seen is None else max(seen[0], event_time_ms), clock]
        watermark = progress.get("watermark")
        holding = []
        for name in self._sources | sources.keys():
            latest, last_record = sources.get(name, (None, 0.0))
            if self._idle_timeout_s and clock - last_record >= self._idle_timeout_s:
                continue
            if latest is None:
                return watermark  # a source not read yet holds everything back
            holding.append(latest)
        candidate = min(holding) - self._lateness_ms
        if watermark is None or candidate > watermark:
            progress["watermark"] = watermark = candidate
        return watermark

    def _tick(self, progress: dict[str, Any]) -> float:
        """Advance the processing clock by the wall time since the previous record, unless
        that gap is longer than the idle timeout (then the partition itself was idle)."""
        now = self._wall_clock()
        gap = max(0.0, now - progress.get("wall", now))
        progress["wall"] = now
        if not self._idle_timeout_s or gap < self._idle_timeout_s:
            progress["clock"] = progress.get("clock", 0.0) + gap
        return progress.get("clock", 0.0)
