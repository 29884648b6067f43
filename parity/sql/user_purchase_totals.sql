-- SPEC 2.3. Confluent statement: INSERT INTO user_purchase_totals <this query>.
-- TRY_CAST, not CAST: in Flink 2.x CAST('anonymous' AS INT) throws NumberFormatException
-- and fails the job; TRY_CAST gives NULL, which joins nothing (docs/parity.md).
-- Grouping by the user's columns makes a user update retract the old group and a user
-- delete retract the row.
SELECT
  u.user_id,
  COALESCE(u.username, 'unknown') AS username,
  COALESCE(u.location, 'unknown') AS location,
  COALESCE(u.gender, 'unknown') AS gender,
  SUM(CASE WHEN i.action_type = 'purchase' THEN 1 ELSE 0 END) AS total_purchases
FROM interactions AS i
JOIN users AS u
  ON TRY_CAST(i.user_id AS INT) = u.user_id
GROUP BY u.user_id, u.username, u.location, u.gender
