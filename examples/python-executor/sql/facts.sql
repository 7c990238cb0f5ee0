CREATE TABLE facts AS SELECT u.id, count(*) AS orders FROM staging_users u JOIN orders o ON o.user_id = u.id GROUP BY u.id;
