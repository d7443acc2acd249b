//! Durable storage of anomalies.
//!
//! [`AnomalyStore`] is what the pipeline writes through; the embedded default is SQLite and the
//! Azure SQL sink implements the same trait. Rows are unique on (device, window end, model
//! version), so a batch the host re-delivers is stored once.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid stored data: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Where a window came from: the Event Hubs coordinates of the event that carried it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub partition_id: Option<String>,
    pub sequence_number: Option<i64>,
    pub offset: Option<String>,
    pub enqueued_time: Option<String>,
}

/// One stored anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRow {
    pub device_id: String,
    pub window_end: String,
    pub model_version: String,
    pub score: f64,
    pub threshold: f64,
    pub severity: String,
    pub contributions: serde_json::Value,
    pub features: serde_json::Value,
    pub top_channel: String,
    pub explanation: String,
    #[serde(flatten)]
    pub lineage: Lineage,
    /// Set by the store.
    #[serde(default)]
    pub inserted_at: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub device_id: Option<String>,
    /// Canonical RFC 3339; windows ending at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable anomaly sink. `insert` is all-or-nothing and idempotent; it returns how many rows
/// were new.
pub trait AnomalyStore: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize>;
    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>>;
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// The embedded store: one SQLite file, written in WAL mode from blocking threads.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS anomalies (
    id              INTEGER PRIMARY KEY,
    device_id       TEXT    NOT NULL,
    window_end      TEXT    NOT NULL,
    window_end_ms   INTEGER NOT NULL,
    model_version   TEXT    NOT NULL,
    score           REAL    NOT NULL,
    threshold       REAL    NOT NULL,
    severity        TEXT    NOT NULL,
    contributions   TEXT    NOT NULL,
    features        TEXT    NOT NULL,
    top_channel     TEXT    NOT NULL,
    explanation     TEXT    NOT NULL,
    partition_id    TEXT,
    sequence_number INTEGER,
    event_offset    TEXT,
    enqueued_time   TEXT,
    inserted_at     TEXT    NOT NULL,
    UNIQUE (device_id, window_end, model_version)
);
CREATE INDEX IF NOT EXISTS anomalies_by_window ON anomalies (window_end_ms DESC);
CREATE INDEX IF NOT EXISTS anomalies_by_device ON anomalies (device_id, window_end_ms DESC);
";

impl SqliteStore {
    /// Opens (creating if needed) the database. `busy_timeout` bounds how long a write waits for
    /// a lock before the invocation fails and the host retries.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a 2xx lets the host checkpoint past the batch, so the commit must be on disk.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().map_err(|_| {
                    StoreError::Unavailable("connection poisoned by a panic".into())
                })?;
                work(&mut guard)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
        })
    }
}

fn insert_rows(conn: &mut Connection, rows: &[AnomalyRow]) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO anomalies (device_id, window_end, window_end_ms, model_version, score, threshold, severity,
                 contributions, features, top_channel, explanation, partition_id, sequence_number, event_offset,
                 enqueued_time, inserted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT (device_id, window_end, model_version) DO NOTHING",
        )?;
        let now = crate::timefmt::format(crate::timefmt::now());
        for r in rows {
            let end_ms = unix_ms(&r.window_end).ok_or_else(|| {
                StoreError::Corrupt(format!("window_end {:?} is not a timestamp", r.window_end))
            })?;
            inserted += stmt.execute(params![
                r.device_id,
                r.window_end,
                end_ms,
                r.model_version,
                r.score,
                r.threshold,
                r.severity,
                r.contributions.to_string(),
                r.features.to_string(),
                r.top_channel,
                r.explanation,
                r.lineage.partition_id,
                r.lineage.sequence_number,
                r.lineage.offset,
                r.lineage.enqueued_time,
                now,
            ])?;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// Milliseconds since the epoch: timestamps compare as numbers, whatever their text form.
fn unix_ms(text: &str) -> Option<i64> {
    crate::timefmt::parse(text).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn read_history(conn: &mut Connection, q: &HistoryQuery) -> Result<Vec<AnomalyRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, window_end, model_version, score, threshold, severity, contributions, features, top_channel,
                explanation, partition_id, sequence_number, event_offset, enqueued_time, inserted_at
         FROM anomalies
         WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR window_end_ms >= ?2)
         ORDER BY window_end_ms DESC, device_id ASC, id DESC
         LIMIT ?3",
    )?;
    let since_ms = match &q.since {
        Some(text) => Some(
            unix_ms(text)
                .ok_or_else(|| StoreError::Corrupt(format!("since {text:?} is not a timestamp")))?,
        ),
        None => None,
    };
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![q.device_id, since_ms, limit], |row| {
        Ok((
            AnomalyRow {
                device_id: row.get(0)?,
                window_end: row.get(1)?,
                model_version: row.get(2)?,
                score: row.get(3)?,
                threshold: row.get(4)?,
                severity: row.get(5)?,
                contributions: serde_json::Value::Null,
                features: serde_json::Value::Null,
                top_channel: row.get(8)?,
                explanation: row.get(9)?,
                lineage: Lineage {
                    partition_id: row.get(10)?,
                    sequence_number: row.get(11)?,
                    offset: row.get(12)?,
                    enqueued_time: row.get(13)?,
                },
                inserted_at: row.get(14)?,
            },
            row.get::<_, String>(6)?,
            row.get::<_, String>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut r, contributions, features) = row?;
        r.contributions = serde_json::from_str(&contributions)
            .map_err(|e| StoreError::Corrupt(format!("contributions: {e}")))?;
        r.features = serde_json::from_str(&features)
            .map_err(|e| StoreError::Corrupt(format!("features: {e}")))?;
        out.push(r);
    }
    Ok(out)
}

impl AnomalyStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize> {
        if rows.is_empty() {
            return Box::pin(async { Ok(0) });
        }
        self.blocking(move |conn| insert_rows(conn, &rows))
    }

    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>> {
        self.blocking(move |conn| read_history(conn, &query))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // A write probe: readers never block in WAL mode, so only taking the write lock tells
        // whether an insert would go through now.
        self.blocking(|conn| {
            conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, window_end: &str) -> AnomalyRow {
        AnomalyRow {
            device_id: device.into(),
            window_end: window_end.into(),
            model_version: "v1".into(),
            score: 2.0,
            threshold: 1.0,
            severity: "medium".into(),
            contributions: serde_json::json!({"a": 2.0}),
            features: serde_json::json!({"a_mean": 1.0}),
            top_channel: "a".into(),
            explanation: "a is off".into(),
            lineage: Lineage::default(),
            inserted_at: None,
        }
    }

    #[tokio::test]
    async fn idempotent_inserts_and_time_ordered_history() {
        let path = std::env::temp_dir().join(format!(
            "sensor-anomaly-store-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path, Duration::from_millis(100)).unwrap();
        let rows = vec![
            row("d1", "2026-01-01T00:01:00Z"),
            row("d1", "2026-01-01T00:01:00.5Z"),
            row("d2", "2026-01-01T00:00:59Z"),
        ];
        assert_eq!(store.insert(rows.clone()).await.unwrap(), 3);
        assert_eq!(store.insert(rows).await.unwrap(), 0);
        let all = store
            .history(HistoryQuery {
                limit: 10,
                ..HistoryQuery::default()
            })
            .await
            .unwrap();
        let ends: Vec<&str> = all.iter().map(|r| r.window_end.as_str()).collect();
        // Ordered by instant, not by text ("00.5Z" sorts before "00Z" as text).
        assert_eq!(
            ends,
            [
                "2026-01-01T00:01:00.5Z",
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:00:59Z"
            ]
        );
        let since = HistoryQuery {
            since: Some("2026-01-01T00:01:00Z".into()),
            limit: 10,
            ..HistoryQuery::default()
        };
        assert_eq!(store.history(since).await.unwrap().len(), 2);
        let device = HistoryQuery {
            device_id: Some("d2".into()),
            limit: 10,
            ..HistoryQuery::default()
        };
        assert_eq!(store.history(device).await.unwrap()[0].device_id, "d2");
        assert!(store.insert(vec![row("d3", "not a time")]).await.is_err());
        let _ = std::fs::remove_file(&path);
    }
}
