"""`item_shared_by_user_pair` (SPEC 2.5): how much two different users touched the same items.

Over all interactions (every action type) with a user_id and an item_id, for every
ordered pair of distinct users (A, B): the sum over items i of interactions(A, i) x
interactions(B, i); only positive counts exist. That is a pair count with items as
groups and users as members.
"""

from __future__ import annotations

import sqlalchemy as sa
from quixstreams.dataframe import StreamingDataFrame

from processor.interactions import Interaction, interactions
from processor.pairs import pair_counts, pair_rows
from processor.pipeline import Pipeline
from processor.topology import Topology

TABLE = sa.Table(
    "item_shared_by_user_pair",
    sa.MetaData(),
    sa.Column("user_A", sa.Text, primary_key=True),
    sa.Column("user_B", sa.Text, primary_key=True),
    sa.Column("shared_item_count", sa.BigInteger, nullable=False),
)


def counted(interaction: Interaction) -> bool:
    return interaction.user_id is not None and interaction.item_id is not None


def build(pipeline: Pipeline) -> StreamingDataFrame:
    item_user = interactions(pipeline).filter(counted).apply(lambda i: (i.item_id, i.user_id))
    return pair_counts(pipeline, item_user, "item_shared").apply(pair_rows(TABLE))


TOPOLOGY = Topology(
    name="item_shared_by_user_pair",
    table=TABLE,
    inputs=lambda settings: (settings.interactions_topic,),
    build=build,
)
