"""`purchase_windowed_counts` (SPEC 2.6): repeated purchases per user, item and half hour.

Purchases grouped by user_id, item_id (NULL is a group of its own) and 30-minute
tumbling event-time windows aligned to the epoch; a row where the group's count is at
least 2, written once, when its window closes. The watermark is the maximum event time
seen minus the allowed lateness (`WINDOW_ALLOWED_LATENESS_S`), per partition of the
interactions topic and merged over the DynamoDB partitions its records came from
(`processor.watermarks`; docs/windows.md). A window closes when the watermark reaches its
end. A purchase whose window has closed is late: not counted, counted in the
`pstreams_late_events` metric and, when `LATE_EVENTS_TOPIC` is set, written there.

The interactions topic is keyed by user, so every window of a user lives in one partition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from processor.changes import TableChange
from processor.interactions import Interaction, interactions, source_partition_name
from processor.metrics import LATE_EVENTS
from processor.pipeline import Pipeline
from processor.topology import Topology
from processor.watermarks import MergedWatermark

TABLE = sa.Table(
    "purchase_windowed_counts",
    sa.MetaData(),
    sa.Column("user_id", sa.Text),
    sa.Column("item_id", sa.Text),
    sa.Column("window_start", sa.TIMESTAMP(timezone=True), nullable=False),
    sa.Column("window_end", sa.TIMESTAMP(timezone=True), nullable=False),
    sa.Column("purchase_count", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("user_id", "item_id", "window_start", postgresql_nulls_not_distinct=True),
)
WINDOW_MS = 30 * 60 * 1000
MINIMUM_COUNT = 2


class Outcome(NamedTuple):
    """What one interaction did: the rows of the windows it closed, or its lateness."""

    rows: list[TableChange]
    late: dict[str, Any] | None


def _instant(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _closed_rows(start_ms: int, counts: dict[str, int]) -> list[TableChange]:
    start, end = _instant(start_ms), _instant(start_ms + WINDOW_MS)
    rows = []
    for group, count in counts.items():
        if count >= MINIMUM_COUNT:
            user_id, item_id = orjson.loads(group)
            row = {
                "user_id": user_id,
                "item_id": item_id,
                "window_start": start,
                "window_end": end,
                "purchase_count": count,
            }
            rows.append(TableChange((user_id, item_id, start), row))
    return rows


def _late_event(purchase: Interaction, window_start_ms: int, watermark_ms: int) -> dict:
    return {
        "user_id": purchase.user_id,
        "item_id": purchase.item_id,
        "event_time": _instant(purchase.event_time_ms).isoformat(),
        "window_start": _instant(window_start_ms).isoformat(),
        "window_end": _instant(window_start_ms + WINDOW_MS).isoformat(),
        "watermark": _instant(watermark_ms).isoformat(),
        "source_topic": purchase.source_topic,
        "source_partition": purchase.source_partition,
        "source_offset": purchase.source_offset,
    }


def _windows(pipeline: Pipeline, stream: StreamingDataFrame) -> StreamingDataFrame:
    """Counts each purchase into its open window and closes the windows the watermark
    passes; the state of a partition is its progress and its open windows' counts."""
    settings = pipeline.settings
    store = pipeline.store(stream)
    dynamodb = settings.dynamodb_topic
    watermarks = MergedWatermark(
        [source_partition_name(dynamodb, p) for p in range(pipeline.partitions_of(dynamodb))],
        settings.window_allowed_lateness_s * 1000,
        settings.window_idle_timeout_s,
    )

    def window(interaction: Interaction) -> Outcome:
        partition = message_context().partition
        progress = store.table(partition, "progress")["watermark"]
        open_windows = store.paged(partition, "windows", levels=2)["open"]
        before = watermarks.current(progress)
        late = None
        if interaction.is_purchase:
            start = interaction.event_time_ms - interaction.event_time_ms % WINDOW_MS
            if before is not None and before >= start + WINDOW_MS:
                late = _late_event(interaction, start, before)
                LATE_EVENTS.labels(pipeline.topology).inc()
            else:
                group = orjson.dumps([interaction.user_id, interaction.item_id]).decode()
                counts = open_windows.setdefault(str(start), {})
                counts[group] = counts.get(group, 0) + 1
        after = watermarks.advance(
            progress, interaction.source, interaction.event_time_ms, interaction.captured_ms / 1000
        )
        rows = []
        for start in sorted(int(start) for start in open_windows):
            if after is None or after < start + WINDOW_MS:
                break
            rows += _closed_rows(start, open_windows.pop(str(start)))
        return Outcome(rows, late)

    return stream.apply(window)


def build(pipeline: Pipeline) -> StreamingDataFrame:
    outcomes = _windows(pipeline, interactions(pipeline))
    late_topic = pipeline.settings.late_events_topic
    if late_topic:
        late = outcomes.filter(lambda outcome: outcome.late is not None)
        late.apply(lambda outcome: outcome.late).to_topic(pipeline.json_topic(late_topic))
    return outcomes.apply(lambda outcome: outcome.rows)


TOPOLOGY = Topology(
    name="purchase_windowed_counts",
    table=TABLE,
    inputs=lambda settings: (settings.interactions_topic,),
    build=build,
    outputs=lambda settings: tuple(filter(None, [settings.late_events_topic])),
    # Its partition count sets how many source watermarks are merged (docs/windows.md).
    described=lambda settings: (settings.dynamodb_topic,),
)
