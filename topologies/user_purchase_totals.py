"""`user_purchase_totals` (SPEC 2.3): purchases per user, for users that exist and interacted.

One row per user currently in `users` with at least one interaction (any action type)
whose user_id, cast to INT, is that user's id; unparsable ids join nothing.
total_purchases counts the user's purchases (0 is a valid value); username, location and
gender are the user's current values, 'unknown' where NULL. Deleting the user removes
the row.

Both inputs are brought to one key, the user id, on an internal topic: the interactions
as per-partition counts (coalesced per checkpoint, absolute), the users as their current
row or None.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame

from processor.cdc.postgres import RowChange
from processor.changes import TableChange
from processor.interactions import Interaction, interactions
from processor.pipeline import Pipeline
from processor.sqlcast import cast_integer
from processor.topology import Topology

TABLE = sa.Table(
    "user_purchase_totals",
    sa.MetaData(),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("gender", sa.Text, nullable=False),
    sa.Column("total_purchases", sa.BigInteger, nullable=False),
)
PROFILE = ("username", "location", "gender")


def _count_activity(pipeline: Pipeline, stream: StreamingDataFrame, by_user: Any) -> None:
    store = pipeline.store(stream)
    outbox = pipeline.outbox(stream, by_user)

    def count(interaction: Interaction) -> None:
        user_id = cast_integer(interaction.user_id, bits=32)
        if user_id is None:
            return
        partition = message_context().partition
        activity = store.table(partition, "activity")[str(user_id)]
        activity["interactions"] = activity.get("interactions", 0) + 1
        activity["purchases"] = activity.get("purchases", 0) + interaction.is_purchase
        # One entry, so that the two counts travel together (an outbox entry stands alone).
        sent = [activity["interactions"], activity["purchases"]]
        outbox.entries(partition)[str(user_id)]["activity"] = sent

    stream.update(count)


def _forward_users(pipeline: Pipeline, stream: StreamingDataFrame, by_user: Any) -> None:
    outbox = pipeline.outbox(stream, by_user)

    def forward(change: RowChange) -> None:
        profile = None if change.row is None else {name: change.row.get(name) for name in PROFILE}
        outbox.entries(message_context().partition)[str(change.key["user_id"])]["user"] = profile

    stream.update(forward)


def _totals(pipeline: Pipeline, by_user: Any) -> StreamingDataFrame:
    stream = pipeline.app.dataframe(by_user)
    store = pipeline.store(stream)

    def total(message: dict[str, Any], user: str, _timestamp: int, _headers: Any) -> TableChange:
        partition = message_context().partition
        profiles = store.table(partition, "user", factory=lambda: None)
        activity = store.table(partition, "activity")[user]
        entries = message["e"]
        if "user" in entries:
            profiles[user] = entries["user"]
        if "activity" in entries:
            activity[str(message["p"])] = entries["activity"]
        profile = profiles[user]
        if profile is None or not any(counts[0] for counts in activity.values()):
            return TableChange((int(user),), None)
        return TableChange(
            (int(user),),
            {
                "user_id": int(user),
                **{name: "unknown" if profile[name] is None else profile[name] for name in PROFILE},
                "total_purchases": sum(counts[1] for counts in activity.values()),
            },
        )

    return stream.apply(total, metadata=True)


def build(pipeline: Pipeline) -> StreamingDataFrame:
    activity, users = interactions(pipeline), pipeline.row_changes("users")
    by_user = pipeline.internal_topic("by-user")
    _count_activity(pipeline, activity, by_user)
    _forward_users(pipeline, users, by_user)
    return _totals(pipeline, by_user)


TOPOLOGY = Topology(
    name="user_purchase_totals",
    table=TABLE,
    inputs=lambda settings: (settings.interactions_topic, settings.pg_topic("users")),
    build=build,
)
