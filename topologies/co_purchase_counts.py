"""`co_purchase_counts` (SPEC 2.2): how often two different items were bought by the same users.

Over purchases with a user_id and an item_id, for every ordered pair of distinct items
(A, B): the sum over users u of purchases(u, A) x purchases(u, B); only positive counts
exist. That is a pair count with users as groups and items as members.
"""

from __future__ import annotations

import sqlalchemy as sa
from quixstreams.dataframe import StreamingDataFrame

from processor.interactions import Interaction, interactions
from processor.pairs import pair_counts, pair_rows
from processor.pipeline import Pipeline
from processor.topology import Topology

TABLE = sa.Table(
    "co_purchase_counts",
    sa.MetaData(),
    sa.Column("item_id_A", sa.Text, primary_key=True),
    sa.Column("item_id_B", sa.Text, primary_key=True),
    sa.Column("co_purchase_count", sa.BigInteger, nullable=False),
)


def counted(purchase: Interaction) -> bool:
    return purchase.is_purchase and purchase.user_id is not None and purchase.item_id is not None


def build(pipeline: Pipeline) -> StreamingDataFrame:
    purchases = interactions(pipeline).filter(counted)
    user_item = purchases.apply(lambda purchase: (purchase.user_id, purchase.item_id))
    return pair_counts(pipeline, user_item, "co_purchase").apply(pair_rows(TABLE))


TOPOLOGY = Topology(
    name="co_purchase_counts",
    table=TABLE,
    inputs=lambda settings: (settings.interactions_topic,),
    build=build,
)
