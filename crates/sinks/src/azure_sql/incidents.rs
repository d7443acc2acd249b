//! The incident statements (`sql/V003`): like the anomaly insert, one round trip each, the
//! batch travelling as one JSON parameter shredded by `OPENJSON`.
//!
//! **The conditional write.** [`SAVE_TRACKERS`] first finds the trackers whose stored version is
//! the one the batch read, or that do not exist yet, under `UPDLOCK, HOLDLOCK` (the rows and key
//! ranges stay locked to the end of the transaction, so a second instance waits and then finds
//! the new version); it writes exactly those (`@written`), with their incidents and messages. It answers one row per save: its ordinal and whether it was
//! written; the others are conflicts. `XACT_ABORT`: any error rolls the whole call back.

use serde::Serialize;

use super::statements::{check_length, Cell, Param, Statement, MAX_KEY_UNITS};
use crate::{
    from_stored, incident_activity_ms, message_at_ms, since_ms, to_json, IncidentQuery, LoadedTracker, SaveOutcome,
    StoreError, TrackerRequest, TrackerSave,
};
use domain::{Incident, IncidentMessage, TrackerState, VersionedTracker};

/// Trackers (kind 0) and stored messages within each request's range (kind 1), by request.
pub const LOAD_TRACKERS: &str = "SET NOCOUNT ON;
SELECT r.ordinal, CAST(0 AS bigint) AS kind, t.version, t.state AS document, CAST(0 AS bigint) AS at_ms
FROM OPENJSON(@P1) WITH (
    ordinal bigint '$.ordinal',
    device_id nvarchar(128) '$.device_id'
) AS r
JOIN dbo.incident_trackers AS t
    ON t.device_id = r.device_id COLLATE Latin1_General_100_BIN2
UNION ALL
SELECT r.ordinal, CAST(1 AS bigint), CAST(0 AS bigint), m.document, m.at_ms
FROM OPENJSON(@P1) WITH (
    ordinal bigint '$.ordinal',
    device_id nvarchar(128) '$.device_id',
    from_ms bigint '$.from_ms',
    to_ms bigint '$.to_ms'
) AS r
JOIN dbo.incident_messages AS m
    ON m.device_id = r.device_id COLLATE Latin1_General_100_BIN2
    AND m.at_ms BETWEEN r.from_ms AND r.to_ms
ORDER BY 1, 2, 5;";

pub const SAVE_TRACKERS: &str = "SET NOCOUNT ON;
SET XACT_ABORT ON;
BEGIN TRANSACTION;
DECLARE @saves TABLE (
    ordinal bigint NOT NULL PRIMARY KEY,
    device_id nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    model_version nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    expected_version bigint NULL,
    state nvarchar(max) NOT NULL,
    incidents nvarchar(max) NULL,
    messages nvarchar(max) NULL);
DECLARE @written TABLE (ordinal bigint NOT NULL PRIMARY KEY);
INSERT INTO @saves (ordinal, device_id, model_version, expected_version, state, incidents, messages)
SELECT j.ordinal, j.device_id, j.model_version, j.expected_version, j.state, j.incidents, j.messages
FROM OPENJSON(@P1) WITH (
    ordinal bigint '$.ordinal',
    device_id nvarchar(128) '$.device_id',
    model_version nvarchar(128) '$.model_version',
    expected_version bigint '$.expected_version',
    state nvarchar(max) '$.state',
    incidents nvarchar(max) '$.incidents' AS JSON,
    messages nvarchar(max) '$.messages' AS JSON
) AS j;
INSERT INTO @written (ordinal)
SELECT s.ordinal FROM @saves AS s
JOIN dbo.incident_trackers AS t WITH (UPDLOCK, HOLDLOCK)
    ON t.device_id = s.device_id
    AND t.version = s.expected_version;
UPDATE t SET t.version = t.version + 1, t.model_version = s.model_version, t.state = s.state, t.updated_at = @P2
FROM dbo.incident_trackers AS t
JOIN @saves AS s ON t.device_id = s.device_id
JOIN @written AS w ON w.ordinal = s.ordinal
WHERE s.expected_version IS NOT NULL;
INSERT INTO @written (ordinal)
SELECT s.ordinal FROM @saves AS s
WHERE s.expected_version IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM dbo.incident_trackers AS t WITH (UPDLOCK, HOLDLOCK)
        WHERE t.device_id = s.device_id);
INSERT INTO dbo.incident_trackers (device_id, model_version, version, state, updated_at)
SELECT s.device_id, s.model_version, 1, s.state, @P2
FROM @saves AS s JOIN @written AS w ON w.ordinal = s.ordinal
WHERE s.expected_version IS NULL;
DECLARE @incidents TABLE (
    incident_id nvarchar(400) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY,
    device_id nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    model_version nvarchar(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    status nvarchar(16) NOT NULL,
    activity_ms bigint NOT NULL,
    document nvarchar(max) NOT NULL);
INSERT INTO @incidents (incident_id, device_id, model_version, status, activity_ms, document)
SELECT i.incident_id, s.device_id, s.model_version, i.status, i.activity_ms, i.document
FROM @saves AS s
JOIN @written AS w ON w.ordinal = s.ordinal
CROSS APPLY OPENJSON(s.incidents) WITH (
    incident_id nvarchar(400) '$.incident_id',
    status nvarchar(16) '$.status',
    activity_ms bigint '$.activity_ms',
    document nvarchar(max) '$.document'
) AS i;
UPDATE d SET d.status = n.status, d.activity_ms = n.activity_ms, d.document = n.document
FROM dbo.incidents AS d WITH (UPDLOCK, HOLDLOCK)
JOIN @incidents AS n ON d.incident_id = n.incident_id;
INSERT INTO dbo.incidents (incident_id, device_id, model_version, status, activity_ms, document)
SELECT n.incident_id, n.device_id, n.model_version, n.status, n.activity_ms, n.document
FROM @incidents AS n
WHERE NOT EXISTS (SELECT 1 FROM dbo.incidents AS d WITH (UPDLOCK, HOLDLOCK) WHERE d.incident_id = n.incident_id);
INSERT INTO dbo.incident_messages (message_id, device_id, model_version, at_ms, document)
SELECT m.message_id, s.device_id, s.model_version, m.at_ms, m.document
FROM @saves AS s
JOIN @written AS w ON w.ordinal = s.ordinal
CROSS APPLY OPENJSON(s.messages) WITH (
    message_id nvarchar(450) '$.message_id',
    at_ms bigint '$.at_ms',
    document nvarchar(max) '$.document'
) AS m
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.incident_messages AS e WITH (UPDLOCK, HOLDLOCK)
    WHERE e.message_id = m.message_id COLLATE Latin1_General_100_BIN2);
COMMIT TRANSACTION;
SELECT s.ordinal, CAST(CASE WHEN w.ordinal IS NULL THEN 0 ELSE 1 END AS bigint) AS written
FROM @saves AS s LEFT JOIN @written AS w ON w.ordinal = s.ordinal
ORDER BY s.ordinal;";

/// Open incidents first, then by last activity, newest first (as SQLite and the memory store).
pub const INCIDENTS: &str = "SELECT TOP (@P1) document
FROM dbo.incidents
WHERE (@P2 IS NULL OR device_id = @P2) AND (@P3 IS NULL OR status = @P3)
    AND (@P4 IS NULL OR activity_ms >= @P4)
ORDER BY CASE WHEN status = N'open' THEN 0 ELSE 1 END, activity_ms DESC, incident_id ASC
OPTION (RECOMPILE);";

#[derive(Serialize)]
struct RequestRow<'a> {
    ordinal: usize,
    device_id: &'a str,
    from_ms: i64,
    to_ms: i64,
}

#[derive(Serialize)]
struct SaveRow<'a> {
    ordinal: usize,
    device_id: &'a str,
    model_version: &'a str,
    expected_version: Option<i64>,
    state: String,
    incidents: Vec<IncidentRow<'a>>,
    messages: Vec<MessageRow<'a>>,
}

#[derive(Serialize)]
struct IncidentRow<'a> {
    incident_id: &'a str,
    status: &'a str,
    activity_ms: i64,
    document: String,
}

#[derive(Serialize)]
struct MessageRow<'a> {
    message_id: &'a str,
    at_ms: i64,
    document: String,
}


pub fn load(requests: &[TrackerRequest]) -> Result<Statement, StoreError> {
    let rows: Vec<RequestRow> = requests
        .iter()
        .enumerate()
        .map(|(ordinal, r)| {
            check_length("device_id", &r.device_id, MAX_KEY_UNITS)?;
            Ok(RequestRow {
                ordinal,
                device_id: &r.device_id,
                from_ms: r.from_ms,
                to_ms: r.to_ms,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Statement {
        sql: LOAD_TRACKERS,
        params: vec![Param::Text(Some(to_json(&rows)?))],
    })
}

/// The answer to [`LOAD_TRACKERS`], one [`LoadedTracker`] per request.
pub fn loaded(requests: usize, rows: Vec<Vec<Cell>>) -> Result<Vec<LoadedTracker>, StoreError> {
    let bad = |what: &str| StoreError::invalid(format!("the tracker read answered {what}"));
    let mut out = vec![LoadedTracker::default(); requests];
    for row in rows {
        let mut cells = row.into_iter();
        let (Some(Cell::Int(ordinal)), Some(Cell::Int(kind)), Some(Cell::Int(version)), Some(Cell::Text(document))) =
            (cells.next(), cells.next(), cells.next(), cells.next())
        else {
            return Err(bad("a row of unexpected shape"));
        };
        let slot = usize::try_from(ordinal)
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or_else(|| bad("an ordinal it was not asked for"))?;
        match kind {
            0 => {
                let state: TrackerState = from_stored(&document, "incident tracker")?;
                slot.tracker = Some(VersionedTracker { state, version });
            }
            1 => slot
                .messages
                .push(from_stored::<IncidentMessage>(&document, "incident message")?),
            _ => return Err(bad("a row of unknown kind")),
        }
    }
    Ok(out)
}

pub fn save(saves: &[TrackerSave], updated_at: &str) -> Result<Statement, StoreError> {
    let mut rows = Vec::with_capacity(saves.len());
    for (ordinal, save) in saves.iter().enumerate() {
        let state = &save.state;
        check_length("device_id", &state.device_id, MAX_KEY_UNITS)?;
        check_length("model_version", &state.model_version, MAX_KEY_UNITS)?;
        let incidents = save
            .incidents
            .iter()
            .map(|i: &Incident| {
                check_length("incident_id", &i.incident_id, 400)?;
                Ok(IncidentRow {
                    incident_id: &i.incident_id,
                    status: i.status.as_str(),
                    activity_ms: incident_activity_ms(i)?,
                    document: to_json(i)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let messages = save
            .messages
            .iter()
            .map(|m| {
                check_length("message_id", &m.message_id, 450)?;
                Ok(MessageRow {
                    message_id: &m.message_id,
                    at_ms: message_at_ms(m)?,
                    document: to_json(m)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        rows.push(SaveRow {
            ordinal,
            device_id: &state.device_id,
            model_version: &state.model_version,
            expected_version: save.expected_version,
            state: to_json(state)?,
            incidents,
            messages,
        });
    }
    Ok(Statement {
        sql: SAVE_TRACKERS,
        params: vec![
            Param::Text(Some(to_json(&rows)?)),
            Param::Text(Some(updated_at.to_string())),
        ],
    })
}

/// The answer to [`SAVE_TRACKERS`]: which saves were written.
pub fn saved(saves: &[TrackerSave], rows: Vec<Vec<Cell>>) -> Result<SaveOutcome, StoreError> {
    let mut outcome = SaveOutcome::default();
    let mut answered = 0;
    for row in rows {
        let (Some(Cell::Int(ordinal)), Some(Cell::Int(written))) = (row.first(), row.get(1)) else {
            return Err(StoreError::invalid("the tracker write answered a row of unexpected shape"));
        };
        let save = usize::try_from(*ordinal)
            .ok()
            .and_then(|i| saves.get(i))
            .ok_or_else(|| StoreError::invalid("the tracker write answered an ordinal it was not sent"))?;
        answered += 1;
        if *written == 1 {
            outcome.saved += 1;
        } else {
            outcome.conflicts.push(save.state.device_id.clone());
        }
    }
    if answered != saves.len() {
        return Err(StoreError::invalid(format!(
            "the tracker write answered {answered} rows for {} saves",
            saves.len()
        )));
    }
    Ok(outcome)
}

pub fn incidents(query: &IncidentQuery) -> Result<Statement, StoreError> {
    let since = since_ms(query.since.as_deref())?;
    Ok(Statement {
        sql: INCIDENTS,
        params: vec![
            Param::BigInt(Some(i64::try_from(query.limit).unwrap_or(i64::MAX))),
            Param::Text(query.device_id.clone()),
            Param::Text(query.status.map(|s| s.as_str().to_string())),
            Param::BigInt(since),
        ],
    })
}

pub fn incident(cells: Vec<Cell>) -> Result<Incident, StoreError> {
    match cells.into_iter().next() {
        Some(Cell::Text(document)) => from_stored(&document, "incident"),
        _ => Err(StoreError::invalid("stored incident document has an unexpected type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure_sql::statements::tests::parse_tsql;
    use domain::{IncidentStatus, Lineage, Severity, Transition};

    #[test]
    fn every_incident_statement_parses_as_tsql() {
        for (name, sql) in [("load", LOAD_TRACKERS), ("save", SAVE_TRACKERS), ("incidents", INCIDENTS)] {
            let parsed = parse_tsql(sql);
            assert!(parsed.is_ok(), "{name}: {parsed:?}\n{sql}");
        }
    }

    fn incident() -> Incident {
        Incident {
            incident_id: "m/pump-1/2026-01-01T00:01:00Z".into(),
            device_id: "pump-1".into(),
            model_version: "m".into(),
            status: IncidentStatus::Open,
            opened_at: "2026-01-01T00:01:00Z".into(),
            detected_at: "2026-01-01T00:02:00Z".into(),
            last_anomalous_at: "2026-01-01T00:02:00Z".into(),
            resolved_at: None,
            resolution: None,
            peak_severity: Severity::High,
            peak_score: 6.0,
            threshold: 1.0,
            peak_window_end: "2026-01-01T00:02:00Z".into(),
            peak_top_channel: "vibration".into(),
            peak_explanation: "vibration".into(),
            anomalous_windows: 2,
            windows: 2,
            channels: Vec::new(),
            first_lineage: Lineage::default(),
            last_lineage: Lineage::default(),
        }
    }

    #[test]
    fn a_save_is_one_parameter_and_its_answer_names_the_conflicts() {
        let incident = incident();
        let message = IncidentMessage::new(Transition::Opened, "2026-01-01T00:02:00Z", &incident);
        let save = |device: &str, expected| TrackerSave {
            state: TrackerState::new(device, "m"),
            expected_version: expected,
            incidents: vec![incident.clone()],
            messages: vec![message.clone()],
        };
        let saves = vec![save("pump-1", None), save("pump-2", Some(4))];
        let statement = save_statement(&saves);
        let Param::Text(Some(json)) = &statement.params[0] else { panic!() };
        let rows: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(rows[1]["expected_version"], 4);
        assert_eq!(rows[0]["expected_version"], serde_json::Value::Null);
        assert_eq!(rows[0]["incidents"][0]["activity_ms"], 1_767_225_720_000i64);
        assert_eq!(rows[0]["messages"][0]["message_id"], message.message_id);
        let answer = vec![vec![Cell::Int(0), Cell::Int(1)], vec![Cell::Int(1), Cell::Int(0)]];
        let outcome = saved(&saves, answer).unwrap();
        assert_eq!((outcome.saved, outcome.conflicts), (1, vec!["pump-2".to_string()]));
        assert!(saved(&saves, vec![vec![Cell::Int(0), Cell::Int(1)]]).is_err(), "a save unanswered");
        assert!(saved(&saves, vec![vec![Cell::Int(7), Cell::Int(1)]]).is_err());
        let mut long = save("p", None);
        long.state.device_id = "x".repeat(129);
        assert!(save_statement_result(&[long]).is_err());
    }

    fn save_statement(saves: &[TrackerSave]) -> Statement {
        save_statement_result(saves).unwrap()
    }

    fn save_statement_result(saves: &[TrackerSave]) -> Result<Statement, StoreError> {
        save(saves, "2026-01-01T00:03:00Z")
    }

    #[test]
    fn a_read_answer_is_sorted_back_to_its_requests() {
        let state = TrackerState::new("pump-1", "m");
        let message = IncidentMessage::new(Transition::Opened, "2026-01-01T00:02:00Z", &incident());
        let rows = vec![
            vec![Cell::Int(1), Cell::Int(0), Cell::Int(3), Cell::Text(serde_json::to_string(&state).unwrap()), Cell::Int(0)],
            vec![Cell::Int(1), Cell::Int(1), Cell::Int(0), Cell::Text(serde_json::to_string(&message).unwrap()), Cell::Int(5)],
        ];
        let loaded = loaded(2, rows).unwrap();
        assert_eq!(loaded[0], LoadedTracker::default());
        assert_eq!(loaded[1].tracker, Some(VersionedTracker { state, version: 3 }));
        assert_eq!(loaded[1].messages, vec![message]);
        assert!(super::loaded(1, vec![vec![Cell::Int(1), Cell::Int(0), Cell::Int(0), Cell::Text("{}".into())]]).is_err());
    }
}
