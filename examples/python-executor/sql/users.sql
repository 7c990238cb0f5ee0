CREATE TABLE staging_users AS SELECT * FROM source_users;
DELETE FROM staging_users WHERE status <> 'active';
