-- V004: a window is stored once whichever model scores it, and each device has one incident
-- tracker whatever the model. Before, the model version was part of both keys, so while the fleet
-- switched champions a window re-delivered to an instance already on the new model was stored
-- (and alerted) a second time, and an incident open under the old champion was opened again.
-- Of the rows one window has under several models the first stored stays; of a device's
-- trackers the one written last. The index on messages follows the new lookup (device, window).
-- Guarded: a second run (sqlcmd, or `sensor-anomaly db migrate`) changes nothing, and a run by
-- hand that died between dropping a key and adding it back adds it on the next run.
IF EXISTS (
    SELECT 1 FROM sys.index_columns AS ic
    JOIN sys.key_constraints AS k ON k.parent_object_id = ic.object_id AND k.unique_index_id = ic.index_id
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE k.name = N'uq_anomalies_window' AND k.parent_object_id = OBJECT_ID(N'dbo.anomalies')
        AND c.name = N'model_version'
) OR NOT EXISTS (
    SELECT 1 FROM sys.key_constraints
    WHERE name = N'uq_anomalies_window' AND parent_object_id = OBJECT_ID(N'dbo.anomalies')
)
BEGIN
    IF EXISTS (SELECT 1 FROM sys.key_constraints WHERE name = N'uq_anomalies_window' AND parent_object_id = OBJECT_ID(N'dbo.anomalies'))
        ALTER TABLE dbo.anomalies DROP CONSTRAINT uq_anomalies_window;
    WITH ranked AS (
        SELECT ROW_NUMBER() OVER (PARTITION BY device_id, window_end ORDER BY id) AS occurrence
        FROM dbo.anomalies
    )
    DELETE FROM ranked WHERE occurrence > 1;
    ALTER TABLE dbo.anomalies ADD CONSTRAINT uq_anomalies_window UNIQUE (device_id, window_end);
END;

IF EXISTS (
    SELECT 1 FROM sys.index_columns AS ic
    JOIN sys.key_constraints AS k ON k.parent_object_id = ic.object_id AND k.unique_index_id = ic.index_id
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE k.name = N'pk_incident_trackers' AND k.parent_object_id = OBJECT_ID(N'dbo.incident_trackers')
        AND c.name = N'model_version'
) OR NOT EXISTS (
    SELECT 1 FROM sys.key_constraints
    WHERE name = N'pk_incident_trackers' AND parent_object_id = OBJECT_ID(N'dbo.incident_trackers')
)
BEGIN
    IF EXISTS (SELECT 1 FROM sys.key_constraints WHERE name = N'pk_incident_trackers' AND parent_object_id = OBJECT_ID(N'dbo.incident_trackers'))
        ALTER TABLE dbo.incident_trackers DROP CONSTRAINT pk_incident_trackers;
    WITH ranked AS (
        SELECT ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY updated_at DESC, version DESC) AS recency
        FROM dbo.incident_trackers
    )
    DELETE FROM ranked WHERE recency > 1;
    ALTER TABLE dbo.incident_trackers ADD CONSTRAINT pk_incident_trackers PRIMARY KEY CLUSTERED (device_id);
END;

IF EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_incident_messages_by_window' AND object_id = OBJECT_ID(N'dbo.incident_messages'))
    DROP INDEX ix_incident_messages_by_window ON dbo.incident_messages;

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_incident_messages_by_device' AND object_id = OBJECT_ID(N'dbo.incident_messages'))
    CREATE INDEX ix_incident_messages_by_device ON dbo.incident_messages (device_id ASC, at_ms ASC);
