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
`idle_timeout_s` of processing time without a record from it, it no longer counts until
its next record (Flink's source idle timeout). A source partition not known at start-up
(partitions added later) counts from its first record.

Processing time is read from the input, not from this machine's clock: it is the Kafka
timestamp of the interactions records, which is when the connector captured each one.
Live, that is the wall clock; replayed after a crash, or read as a backlog, it is the
same as the first time, so the rule gives the same windows for the same input, however
fast it is read and however often it is interrupted. A jump in it longer than the
timeout (nothing at all was captured for a while) does not count, so the first record
after a quiet spell does not declare every other source idle at once. Records of a
source that was idle and has fallen behind the watermark are late.

The progress is a plain dictionary, so that it can live in a checkpointed store:
`{"sources": {source: [max_event_ms, clock_at_last_record]}, "watermark": ms | None,
"clock": seconds of processing time, "captured": capture time of the last record, s}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class MergedWatermark:
    """The rule above, applied to a progress dictionary the caller persists."""

    def __init__(
        self,
        sources: Iterable[str],
        allowed_lateness_ms: int,
        idle_timeout_s: float,
    ) -> None:
        self._sources = frozenset(sources)
        self._lateness_ms = allowed_lateness_ms
        self._idle_timeout_s = idle_timeout_s

    @staticmethod
    def current(progress: dict[str, Any]) -> int | None:
        """The watermark before the next record: None until every source has been read."""
        return progress.get("watermark")

    def advance(
        self, progress: dict[str, Any], source: str, event_time_ms: int, captured_s: float
    ) -> int | None:
        """Account for one record of `source`, captured at `captured_s`; the new
        watermark (None while a source partition has not been read yet)."""
        clock = self._tick(progress, captured_s)
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

    def _tick(self, progress: dict[str, Any], captured_s: float) -> float:
        """Advance the processing clock by the capture time since the previous record,
        unless that gap is longer than the idle timeout (then all the input was idle)."""
        gap = max(0.0, captured_s - progress.get("captured", captured_s))
        progress["captured"] = max(captured_s, progress.get("captured", captured_s))
        if not self._idle_timeout_s or gap < self._idle_timeout_s:
            progress["clock"] = progress.get("clock", 0.0) + gap
        return progress.get("clock", 0.0)
