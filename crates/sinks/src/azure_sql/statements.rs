//! Every statement the sink sends, and the parameters it builds. Pure: no connection here, so
//! the statements and their parameters are tested without a server.
//!
//! **Writes are one round trip whatever the batch size.** The rows travel as one `nvarchar(max)`
//! JSON parameter shredded by `OPENJSON` into a single `INSERT … SELECT … WHERE NOT EXISTS`.
//! Why not the alternatives: tiberius has no table-valued parameters, and one parameter per
//! value would hit SQL Server's 2,100-parameter cap at ~130 rows and need a statement per
//! chunk. A single `INSERT` is atomic, so the batch is stored all or nothing without an
//! explicit transaction. `UPDLOCK, HOLDLOCK` on the existence check take key-range locks, so
//! when two instances insert the same re-delivered batch at once, one waits for the other and
//! then finds the rows instead of both passing the check (the unique key would otherwise turn
//! the race into error 2627). `ROW_NUMBER` drops a window repeated inside one batch, keeping the
//! first (by position in the batch, as SQLite and the memory store do).
//!
//! **Keys compare in binary**, as in SQLite: the key columns are `Latin1_General_100_BIN2`
//! (`sql/V002`), and the `OPENJSON` columns, which take the database's default (usually
//! case-insensitive) collation, are cast to it wherever keys are compared or grouped, so
//! `Pump-1` and `pump-1` are two devices here too.

use serde::Serialize;
use serde_json::Value;

use domain::{AnomalyRow, Lineage};
use crate::{since_instant, to_json, window_end_instants, HistoryQuery, StoreError};

/// Column limits of `sql/V001__anomalies.sql`: a longer value is refused before it is sent
/// (ingress and model loading already refuse longer names).
pub const MAX_KEY_UNITS: usize = domain::MAX_NAME_UNITS;
pub const MAX_TIME_CHARS: usize = 40;

/// One parameter of a statement (`@P1`, `@P2`, ... in order).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    BigInt(Option<i64>),
}

/// One statement and its parameters: what one round trip sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
}

/// A cell of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

pub const INSERT_ANOMALIES: &str = "SET NOCOUNT ON;
INSERT INTO dbo.anomalies (device_id, window_end, window_end_ms, model_version, score, threshold, severity,
    contributions, features, top_channel, explanation, partition_id, sequence_number, event_offset,
    enqueued_time, inserted_at)
SELECT b.device_id, b.window_end, b.window_end_ms, b.model_version, b.score, b.threshold, b.severity,
    b.contributions, b.features, b.top_channel, b.explanation, b.partition_id, b.sequence_number,
    b.event_offset, b.enqueued_time, b.inserted_at
FROM (
    SELECT j.device_id, j.window_end, j.window_end_ms, j.model_version, j.score, j.threshold, j.severity,
        j.contributions, j.features, j.top_channel, j.explanation, j.partition_id, j.sequence_number,
        j.event_offset, j.enqueued_time, j.inserted_at,
        ROW_NUMBER() OVER (
            PARTITION BY j.device_id COLLATE Latin1_General_100_BIN2, j.window_end COLLATE Latin1_General_100_BIN2
            ORDER BY j.ordinal) AS occurrence
    FROM OPENJSON(@P1) WITH (
        device_id nvarchar(128) '$.device_id',
        window_end nvarchar(40) '$.window_end',
        window_end_ms bigint '$.window_end_ms',
        model_version nvarchar(128) '$.model_version',
        score float '$.score',
        threshold float '$.threshold',
        severity nvarchar(16) '$.severity',
        contributions nvarchar(max) '$.contributions',
        features nvarchar(max) '$.features',
        top_channel nvarchar(128) '$.top_channel',
        explanation nvarchar(max) '$.explanation',
        partition_id nvarchar(128) '$.partition_id',
        sequence_number bigint '$.sequence_number',
        event_offset nvarchar(128) '$.event_offset',
        enqueued_time nvarchar(64) '$.enqueued_time',
        inserted_at nvarchar(40) '$.inserted_at',
        ordinal bigint '$.ordinal'
    ) AS j
) AS b
WHERE b.occurrence = 1
    AND NOT EXISTS (
        SELECT 1 FROM dbo.anomalies AS a WITH (UPDLOCK, HOLDLOCK)
        WHERE a.device_id = b.device_id COLLATE Latin1_General_100_BIN2
            AND a.window_end = b.window_end COLLATE Latin1_General_100_BIN2);
SELECT CAST(@@ROWCOUNT AS bigint) AS inserted;";

/// Newest window first by instant; ties by device, then newest insert (as SQLite). `RECOMPILE`
/// gives each filter combination its own plan on the indexes of `V001`.
pub const HISTORY: &str =
    "SELECT TOP (@P1) device_id, window_end, model_version, score, threshold, severity,
    contributions, features, top_channel, explanation, partition_id, sequence_number, event_offset,
    enqueued_time, inserted_at
FROM dbo.anomalies
WHERE (@P2 IS NULL OR device_id = @P2) AND (@P3 IS NULL OR window_end_ms >= @P3)
ORDER BY window_end_ms DESC, device_id ASC, id DESC
OPTION (RECOMPILE);";

/// The health probe: 1 when this identity may insert into the table (NULL when it is missing).
pub const PING: &str =
    "SELECT CAST(HAS_PERMS_BY_NAME(N'dbo.anomalies', N'OBJECT', N'INSERT') AS bigint) AS can_insert;";

/// One row of the `OPENJSON` payload; field names match the `WITH` clause above.
#[derive(Serialize)]
struct PayloadRow<'a> {
    device_id: &'a str,
    window_end: &'a str,
    window_end_ms: i64,
    model_version: &'a str,
    score: f64,
    threshold: f64,
    severity: &'a str,
    contributions: String,
    features: String,
    top_channel: &'a str,
    explanation: &'a str,
    partition_id: Option<&'a str>,
    sequence_number: Option<i64>,
    event_offset: Option<&'a str>,
    enqueued_time: Option<&'a str>,
    inserted_at: &'a str,
    /// Position in the batch: the first of repeated windows is the one kept.
    ordinal: usize,
}

pub(crate) fn check_length(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    // nvarchar(n) counts UTF-16 code units: a character outside the BMP takes two.
    if domain::name_units(value) > max {
        return Err(StoreError::invalid(format!(
            "{what} is longer than the {max} UTF-16 code units its column holds"
        )));
    }
    Ok(())
}

/// The one statement that stores `rows`; `inserted_at` is the store's time of writing.
pub fn insert(rows: &[AnomalyRow], inserted_at: &str) -> Result<Statement, StoreError> {
    let instants = window_end_instants(rows)?;
    let mut payload = Vec::with_capacity(rows.len());
    for (ordinal, (r, window_end_ms)) in rows.iter().zip(instants).enumerate() {
        for (what, value) in [
            ("device_id", r.device_id.as_str()),
            ("model_version", r.model_version.as_str()),
            ("top_channel", r.top_channel.as_str()),
        ] {
            check_length(what, value, MAX_KEY_UNITS)?;
        }
        check_length("window_end", &r.window_end, MAX_TIME_CHARS)?;
        for (what, value) in [
            ("partition_id", &r.lineage.partition_id),
            ("offset", &r.lineage.offset),
        ] {
            check_length(what, value.as_deref().unwrap_or_default(), MAX_KEY_UNITS)?;
        }
        check_length(
            "enqueued_time",
            r.lineage.enqueued_time.as_deref().unwrap_or_default(),
            64,
        )?;
        if !(r.score.is_finite() && r.threshold.is_finite()) {
            return Err(StoreError::invalid("score and threshold must be finite"));
        }
        payload.push(PayloadRow {
            device_id: &r.device_id,
            window_end: &r.window_end,
            window_end_ms,
            model_version: &r.model_version,
            score: r.score,
            threshold: r.threshold,
            severity: r.severity.as_str(),
            contributions: to_json(&r.contributions)?,
            features: to_json(&r.features)?,
            top_channel: &r.top_channel,
            explanation: &r.explanation,
            partition_id: r.lineage.partition_id.as_deref(),
            sequence_number: r.lineage.sequence_number,
            event_offset: r.lineage.offset.as_deref(),
            enqueued_time: r.lineage.enqueued_time.as_deref(),
            inserted_at,
            ordinal,
        });
    }
    let json = serde_json::to_string(&payload)
        .map_err(|e| StoreError::permanent("cannot serialize the rows", e))?;
    Ok(Statement {
        sql: INSERT_ANOMALIES,
        params: vec![Param::Text(Some(json))],
    })
}

pub fn history(query: &HistoryQuery) -> Result<Statement, StoreError> {
    let since = since_instant(query)?;
    Ok(Statement {
        sql: HISTORY,
        params: vec![
            Param::BigInt(Some(i64::try_from(query.limit).unwrap_or(i64::MAX))),
            Param::Text(query.device_id.clone()),
            Param::BigInt(since),
        ],
    })
}

pub fn ping() -> Statement {
    Statement {
        sql: PING,
        params: Vec::new(),
    }
}

/// How many rows the insert stored, from its result.
pub fn inserted_count(rows: &[Vec<Cell>]) -> Result<usize, StoreError> {
    match rows.first().and_then(|r| r.first()) {
        Some(Cell::Int(n)) if *n >= 0 => Ok(*n as usize),
        other => Err(StoreError::invalid(format!(
            "the insert answered {other:?}, not a row count"
        ))),
    }
}

/// A history row, in the column order of [`HISTORY`].
pub fn anomaly_row(cells: Vec<Cell>) -> Result<AnomalyRow, StoreError> {
    let bad =
        |what: &str| StoreError::invalid(format!("stored column {what} has an unexpected type"));
    let mut cells = cells.into_iter();
    let mut next = || cells.next().unwrap_or(Cell::Null);
    let text = |cell: Cell, what: &str| match cell {
        Cell::Text(s) => Ok(s),
        _ => Err(bad(what)),
    };
    let optional_text = |cell: Cell, what: &str| match cell {
        Cell::Null => Ok(None),
        Cell::Text(s) => Ok(Some(s)),
        _ => Err(bad(what)),
    };
    let float = |cell: Cell, what: &str| match cell {
        Cell::Float(v) => Ok(v),
        Cell::Int(v) => Ok(v as f64),
        _ => Err(bad(what)),
    };
    let json = |cell: Cell, what: &str| -> Result<Value, StoreError> {
        let raw = text(cell, what)?;
        serde_json::from_str(&raw)
            .map_err(|e| StoreError::permanent(format!("stored {what} is not JSON"), e))
    };
    Ok(AnomalyRow {
        device_id: text(next(), "device_id")?,
        window_end: text(next(), "window_end")?,
        model_version: text(next(), "model_version")?,
        score: float(next(), "score")?,
        threshold: float(next(), "threshold")?,
        severity: text(next(), "severity")?
            .parse()
            .map_err(|e| StoreError::permanent("stored severity is not a severity", e))?,
        contributions: json(next(), "contributions")?,
        features: json(next(), "features")?,
        top_channel: text(next(), "top_channel")?,
        explanation: text(next(), "explanation")?,
        lineage: Lineage {
            partition_id: optional_text(next(), "partition_id")?,
            sequence_number: match next() {
                Cell::Null => None,
                Cell::Int(n) => Some(n),
                _ => return Err(bad("sequence_number")),
            },
            offset: optional_text(next(), "event_offset")?,
            enqueued_time: optional_text(next(), "enqueued_time")?,
        },
        inserted_at: optional_text(next(), "inserted_at")?,
    })
}

#[cfg(test)]
pub(crate) mod tests;
