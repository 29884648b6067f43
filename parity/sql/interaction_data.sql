-- SPEC 2.1. Confluent statement: INSERT INTO interaction_data <this query>.
-- The attribute extraction lives in the `interactions` view (sources/interactions.sql).
SELECT
  current_page_url,
  action_type,
  item_id,
  user_id,
  browser_type,
  session_id,
  device_type,
  referrer_url,
  event_time_ltz
FROM interactions
