-- V002: the key columns compare code unit by code unit (binary, case- and accent-sensitive), as
-- they do in the embedded SQLite store: `Pump-1` and `pump-1` are two devices. V001 left them on
-- the database's default collation, case-insensitive in Azure SQL (SQL_Latin1_General_CP1_CI_AS),
-- so the second window of such a pair was skipped as a duplicate and never stored.
-- The unique key and both indexes include these columns, so they are dropped and made again around
-- the change. Rows stored under V001 cannot conflict: a case-insensitive unique key is stricter
-- than a binary one. Guarded: a second run (sqlcmd, or `sensor-anomaly db migrate`) changes nothing.
IF EXISTS (
    SELECT 1 FROM sys.columns
    WHERE object_id = OBJECT_ID(N'dbo.anomalies')
        AND name IN (N'device_id', N'window_end', N'model_version')
        AND collation_name <> N'Latin1_General_100_BIN2'
)
BEGIN
    IF EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_anomalies_by_window' AND object_id = OBJECT_ID(N'dbo.anomalies'))
        DROP INDEX ix_anomalies_by_window ON dbo.anomalies;
    IF EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_anomalies_by_device' AND object_id = OBJECT_ID(N'dbo.anomalies'))
        DROP INDEX ix_anomalies_by_device ON dbo.anomalies;
    IF EXISTS (SELECT 1 FROM sys.key_constraints WHERE name = N'uq_anomalies_window' AND parent_object_id = OBJECT_ID(N'dbo.anomalies'))
        ALTER TABLE dbo.anomalies DROP CONSTRAINT uq_anomalies_window;
    ALTER TABLE dbo.anomalies ALTER COLUMN device_id nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.anomalies ALTER COLUMN window_end nvarchar(40) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.anomalies ALTER COLUMN model_version nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL;
    ALTER TABLE dbo.anomalies ADD CONSTRAINT uq_anomalies_window UNIQUE (device_id, window_end, model_version);
    CREATE INDEX ix_anomalies_by_window ON dbo.anomalies (window_end_ms DESC, device_id ASC, id DESC);
    CREATE INDEX ix_anomalies_by_device ON dbo.anomalies (device_id ASC, window_end_ms DESC, id DESC);
END;
