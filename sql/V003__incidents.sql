-- V003: incidents (one per anomaly episode per device and model version), the tracker each device's
-- windows move (saved with a version for optimistic concurrency), and the messages each transition
-- published (read again when a batch is re-delivered, so its messages go out again with the same
-- ids). Keys are binary, as in V002 and the embedded SQLite store. Guarded: a second run changes
-- nothing.
IF OBJECT_ID(N'dbo.incident_trackers', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.incident_trackers (
        device_id       nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        model_version   nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        version         bigint         NOT NULL,
        state           nvarchar(max)  NOT NULL,
        updated_at      nvarchar(40)   NOT NULL,
        CONSTRAINT pk_incident_trackers PRIMARY KEY CLUSTERED (device_id, model_version)
    );
END;

IF OBJECT_ID(N'dbo.incidents', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.incidents (
        incident_id     nvarchar(400)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        device_id       nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        model_version   nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        status          nvarchar(16)   NOT NULL,
        activity_ms     bigint         NOT NULL,
        document        nvarchar(max)  NOT NULL,
        CONSTRAINT pk_incidents PRIMARY KEY CLUSTERED (incident_id)
    );
END;

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_incidents_by_activity' AND object_id = OBJECT_ID(N'dbo.incidents'))
    CREATE INDEX ix_incidents_by_activity ON dbo.incidents (status ASC, activity_ms DESC);

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_incidents_by_device' AND object_id = OBJECT_ID(N'dbo.incidents'))
    CREATE INDEX ix_incidents_by_device ON dbo.incidents (device_id ASC, activity_ms DESC);

IF OBJECT_ID(N'dbo.incident_messages', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.incident_messages (
        message_id      nvarchar(450)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        device_id       nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        model_version   nvarchar(128)  COLLATE Latin1_General_100_BIN2 NOT NULL,
        at_ms           bigint         NOT NULL,
        document        nvarchar(max)  NOT NULL,
        CONSTRAINT pk_incident_messages PRIMARY KEY CLUSTERED (message_id)
    );
END;

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_incident_messages_by_window' AND object_id = OBJECT_ID(N'dbo.incident_messages'))
    CREATE INDEX ix_incident_messages_by_window ON dbo.incident_messages (device_id ASC, model_version ASC, at_ms ASC);
