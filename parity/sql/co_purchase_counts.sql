-- SPEC 2.2. Confluent statement: INSERT INTO co_purchase_counts <this query>.
-- A self-join of purchases on the user: each ordered pair of one user's purchases of two
-- different items is one joined row, so COUNT(*) is the sum over users of
-- purchases(u, A) x purchases(u, B). NULL user_id never satisfies the equi-join.
SELECT
  a.item_id AS item_id_A,
  b.item_id AS item_id_B,
  COUNT(*) AS co_purchase_count
FROM interactions AS a
JOIN interactions AS b
  ON a.user_id = b.user_id AND a.item_id <> b.item_id
WHERE a.action_type = 'purchase'
  AND b.action_type = 'purchase'
  AND a.item_id IS NOT NULL
  AND b.item_id IS NOT NULL
GROUP BY a.item_id, b.item_id
