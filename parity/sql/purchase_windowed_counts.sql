-- SPEC 2.6. Confluent statement: INSERT INTO purchase_windowed_counts <this query>.
-- Window TVF over the rowtime `event_time_ltz` (watermark: event_time_ltz, zero delay).
-- window_start/window_end come out as TIMESTAMP(3) wall-clock times of the session time
-- zone, which flink_tables sets to UTC. GROUP BY puts all NULL item_ids in one group.
SELECT
  user_id,
  item_id,
  window_start,
  window_end,
  COUNT(*) AS purchase_count
FROM TABLE(
  TUMBLE(TABLE interactions, DESCRIPTOR(event_time_ltz), INTERVAL '30' MINUTES)
)
WHERE action_type = 'purchase'
GROUP BY user_id, item_id, window_start, window_end
HAVING COUNT(*) >= 2
