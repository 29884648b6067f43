"""Pair counts of a self-join: count(a, b) = sum over groups g of n(g, a) * n(g, b), a != b.

`co_purchase_counts` is this with groups = users and members = items over purchases;
`item_shared_by_user_pair` with groups = items and members = users over interactions.
A SQL engine computes it as a self-join (Flink: 16 million joined rows for 100,000
interactions); here it runs incrementally in three stages, each coalescing its output
per checkpoint and sending absolute values, so a message that arrives twice (a replay, a
broker that shows aborted transactions) changes nothing:

1. On the events' own partitions P: n_P(g, m), the occurrences per group and member,
   sent per changed group to the `groups` topic (keyed by g).
2. Per group g: n(g, m) = sum over P. When n(g, m) grows by d, count(m, o) grows by
   d * n(g, o) for every other member o of g (the product rule, one factor at a time).
   Partial counts s_Q(a, b) of the stage's partition Q are kept for a < b only (the
   count is symmetric) and sent per changed a to the `pairs` topic (keyed by a).
3. Per a: count(a, b) = sum over Q of s_Q(a, b), emitted as both (a, b) and (b, a).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from processor.changes import TableChange
from processor.pipeline import Pipeline

# (a, b, count(a, b)): the current count of an ordered pair; 0 means the pair left the
# result. A plain tuple, because a backlog's checkpoint changes millions of them.
PairCount = tuple[str, str, int]


def pair_rows(table: sa.Table) -> Callable[[list[PairCount]], list[TableChange]]:
    """The table changes of changed pair counts, for a table whose columns are the pair's
    first and second member and its count, in that order; a zero count deletes the row."""
    first, second, count = (column.name for column in table.columns)

    def rows(changed: list[PairCount]) -> list[TableChange]:
        return [
            TableChange((a, b), {first: a, second: b, count: n} if n else None)
            for a, b, n in changed
        ]

    return rows


def pair_counts(pipeline: Pipeline, events: StreamingDataFrame, name: str) -> StreamingDataFrame:
    """`events` carries `(group, member)` tuples, one per occurrence; returns lists of the
    `PairCount`s each message changed."""
    groups_topic = pipeline.internal_topic(f"{name}-groups")
    pairs_topic = pipeline.internal_topic(f"{name}-pairs")
    _count_members(pipeline, events, groups_topic)
    _count_pairs(pipeline, pipeline.app.dataframe(groups_topic), pairs_topic)
    return _sum_partials(pipeline, pipeline.app.dataframe(pairs_topic))


def _count_members(pipeline: Pipeline, events: StreamingDataFrame, groups_topic: Any) -> None:
    store = pipeline.store(events)
    outbox = pipeline.outbox(events, groups_topic)

    def count(event: tuple[str, str]) -> None:
        group, member = event
        partition = message_context().partition
        members = store.paged(partition, "members")[group]
        members[member] = occurrences = members.get(member, 0) + 1
        outbox.entries(partition)[group][member] = occurrences

    events.update(count)


def _count_pairs(pipeline: Pipeline, groups: StreamingDataFrame, pairs_topic: Any) -> None:
    store = pipeline.store(groups)
    outbox = pipeline.outbox(groups, pairs_topic)

    def update(message: dict[str, Any], group: str, _timestamp: int, _headers: Any) -> None:
        partition = message_context().partition
        source = str(message["p"])
        totals = store.paged(partition, "totals")[group]
        by_source = store.paged(partition, "by_source")[group]
        sums = store.paged(partition, "sums")
        out = outbox.entries(partition)
        for member, occurrences in message["e"].items():
            counts = by_source.setdefault(member, {})
            grown = occurrences - counts.get(source, 0)
            if not grown:
                continue
            counts[source] = occurrences
            if len(totals) > (member in totals):  # the group has other members
                _add_pairs(member, grown, totals, sums, out)
            totals[member] = totals.get(member, 0) + grown

    groups.update(update, metadata=True)


def _add_pairs(
    member: str,
    grown: int,
    totals: dict[str, int],
    sums: dict[str, dict[str, int]],
    out: dict[str, dict[str, int]],
) -> None:
    """count(member, o) += grown * n(g, o) for the group's other members o; this loop is
    the join, so it stays on plain dictionaries."""
    own = sums[member]
    own_out = out[member]
    for other, n in totals.items():
        if other == member:
            continue
        if other > member:
            own[other] = own_out[other] = own.get(other, 0) + grown * n
        else:
            row = sums[other]
            row[member] = out[other][member] = row.get(member, 0) + grown * n


def _sum_partials(pipeline: Pipeline, pairs: StreamingDataFrame) -> StreamingDataFrame:
    """Per a, the partial counts s_Q(a, b) by source partition Q: {Q: {b: s_Q(a, b)}}, one
    small dictionary per source rather than one per pair."""
    store = pipeline.store(pairs)

    def total(message: dict[str, Any], a: str, _timestamp: int, _headers: Any) -> list[PairCount]:
        partials = store.paged(message_context().partition, "partials", levels=2)[a]
        source = str(message["p"])
        own = partials.setdefault(source, {})
        others = [entries for other, entries in partials.items() if other != source]
        changed: list[PairCount] = []
        for b, partial in message["e"].items():
            if partial:
                own[b] = partial
            else:
                own.pop(b, None)
            count = partial + sum(entries.get(b, 0) for entries in others) if others else partial
            changed += ((a, b, count), (b, a, count))
        if not own:
            del partials[source]
        return changed

    return pairs.apply(total, metadata=True)
