-- The interactions as the statements being replaced read them from the DynamoDB CDC
-- topic: each attribute is JSON_VALUE(document, '$.<attribute>.S'), so a missing one or
-- one typed otherwise (`{"N": "7"}`) is NULL (SPEC 2). `event_time_ltz`, the rowtime, is
-- TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(document, '$.timestamp.S') AS BIGINT), 0), declared
-- with its zero-delay watermark on `dynamodb_records` by parity/flink_tables.py.
SELECT
  JSON_VALUE(document, '$.current_page_url.S') AS current_page_url,
  JSON_VALUE(document, '$.action_type.S') AS action_type,
  JSON_VALUE(document, '$.item_id.S') AS item_id,
  JSON_VALUE(document, '$.user_id.S') AS user_id,
  JSON_VALUE(document, '$.browser_type.S') AS browser_type,
  JSON_VALUE(document, '$.session_id.S') AS session_id,
  JSON_VALUE(document, '$.device_type.S') AS device_type,
  JSON_VALUE(document, '$.referrer_url.S') AS referrer_url,
  event_time_ltz
FROM dynamodb_records
