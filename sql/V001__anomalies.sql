-- V001: the anomalies table, with the same columns and unique key as the embedded SQLite store,
-- and the two indexes behind /api/history (newest first, optionally for one device).
-- Guarded, so running it again (sqlcmd, or `sensor-anomaly db migrate`) changes nothing.
IF OBJECT_ID(N'dbo.anomalies', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.anomalies (
        id              bigint         IDENTITY(1, 1) NOT NULL,
        device_id       nvarchar(128)  NOT NULL,
        window_end      nvarchar(40)   NOT NULL,
        window_end_ms   bigint         NOT NULL,
        model_version   nvarchar(128)  NOT NULL,
        score           float          NOT NULL,
        threshold       float          NOT NULL,
        severity        nvarchar(16)   NOT NULL,
        contributions   nvarchar(max)  NOT NULL,
        features        nvarchar(max)  NOT NULL,
        top_channel     nvarchar(128)  NOT NULL,
        explanation     nvarchar(max)  NOT NULL,
        partition_id    nvarchar(128)  NULL,
        sequence_number bigint         NULL,
        event_offset    nvarchar(128)  NULL,
        enqueued_time   nvarchar(64)   NULL,
        inserted_at     nvarchar(40)   NOT NULL,
        CONSTRAINT pk_anomalies PRIMARY KEY CLUSTERED (id),
        CONSTRAINT uq_anomalies_window UNIQUE (device_id, window_end, model_version)
    );
END;

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_anomalies_by_window' AND object_id = OBJECT_ID(N'dbo.anomalies'))
    CREATE INDEX ix_anomalies_by_window ON dbo.anomalies (window_end_ms DESC, device_id ASC, id DESC);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_anomalies_by_device' AND object_id = OBJECT_ID(N'dbo.anomalies'))
    CREATE INDEX ix_anomalies_by_device ON dbo.anomalies (device_id ASC, window_end_ms DESC, id DESC);
