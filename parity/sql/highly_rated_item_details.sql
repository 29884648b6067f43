-- SPEC 2.4. Confluent statement: INSERT INTO highly_rated_item_details <this query>.
-- Regular (updating) joins of the three changelog tables: any insert, update or delete
-- on either side is reflected.
SELECT
  r.user_id,
  r.rating_score,
  r.item_id,
  i.image_url,
  i.brand_id,
  c.category_name
FROM reviews AS r
JOIN items AS i
  ON r.item_id = i.item_id
JOIN categories AS c
  ON i.category_id = c.category_id
WHERE r.rating_score >= 4
  AND i.availability_status = 'in_stock'
