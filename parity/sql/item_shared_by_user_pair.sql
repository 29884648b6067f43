-- SPEC 2.5. Confluent statement: INSERT INTO item_shared_by_user_pair <this query>.
-- A self-join of all interactions on the item: COUNT(*) is the sum over items of
-- interactions(A, i) x interactions(B, i). NULL item_id never satisfies the equi-join,
-- NULL user_id never satisfies `<>`.
SELECT
  a.user_id AS user_A,
  b.user_id AS user_B,
  COUNT(*) AS shared_item_count
FROM interactions AS a
JOIN interactions AS b
  ON a.item_id = b.item_id AND a.user_id <> b.user_id
GROUP BY a.user_id, b.user_id
