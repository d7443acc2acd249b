//! The embedded store: one SQLite file, written in WAL mode from blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode};

use super::{
    since_instant, window_end_instants, AnomalyStore, HistoryQuery, StoreError, StoreFuture,
};
use domain::time as timefmt;
use domain::{AnomalyRow, Lineage};

/// Busy, locked, I/O, full disk, cannot open: conditions that pass. Everything else (corrupt
/// file, constraint, read-only database, misuse) will fail the same way on every retry.
fn classify(context: &str, error: rusqlite::Error) -> StoreError {
    let transient = matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::OperationInterrupted
                | ErrorCode::FileLockingProtocolFailed
        )
    );
    if transient {
        StoreError::transient(context, error)
    } else {
        StoreError::permanent(context, error)
    }
}

/// `?` on a rusqlite call inside the store: classified, with what was being done.
trait Classify<T> {
    fn during(self, context: &str) -> Result<T, StoreError>;
}

impl<T> Classify<T> for Result<T, rusqlite::Error> {
    fn during(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| classify(context, e))
    }
}

/// One SQLite file behind a mutex: SQLite has one writer at a time anyway.
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
                StoreError::permanent(format!("cannot create {}", parent.display()), e)
            })?;
        }
        let opening = format!("opening {}", path.display());
        let conn = Connection::open(path).during(&opening)?;
        conn.busy_timeout(busy_timeout).during(&opening)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .during(&opening)?;
        // FULL: a 2xx lets the host checkpoint past the batch, so the commit must be on disk.
        conn.pragma_update(None, "synchronous", "FULL")
            .during(&opening)?;
        conn.execute_batch(SCHEMA).during("creating the schema")?;
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
                // A panic mid-write rolled its transaction back; the connection is still usable.
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                work(&mut guard)
            })
            .await
            .map_err(|e| StoreError::transient("the store task did not finish", e))?
        })
    }
}

fn insert_rows(conn: &mut Connection, rows: &[AnomalyRow]) -> Result<usize, StoreError> {
    const CONTEXT: &str = "inserting anomalies";
    let instants = window_end_instants(rows)?;
    let tx = conn.transaction().during(CONTEXT)?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO anomalies (device_id, window_end, window_end_ms, model_version, score, threshold, severity,
                 contributions, features, top_channel, explanation, partition_id, sequence_number, event_offset,
                 enqueued_time, inserted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT (device_id, window_end, model_version) DO NOTHING",
        ).during(CONTEXT)?;
        let now = timefmt::format(timefmt::now());
        for (r, end_ms) in rows.iter().zip(instants) {
            inserted += stmt
                .execute(params![
                    r.device_id,
                    r.window_end,
                    end_ms,
                    r.model_version,
                    r.score,
                    r.threshold,
                    r.severity.as_str(),
                    r.contributions.to_string(),
                    r.features.to_string(),
                    r.top_channel,
                    r.explanation,
                    r.lineage.partition_id,
                    r.lineage.sequence_number,
                    r.lineage.offset,
                    r.lineage.enqueued_time,
                    now,
                ])
                .during(CONTEXT)?;
        }
    }
    tx.commit().during(CONTEXT)?;
    Ok(inserted)
}

fn read_history(conn: &mut Connection, q: &HistoryQuery) -> Result<Vec<AnomalyRow>, StoreError> {
    const CONTEXT: &str = "reading history";
    let since_ms = since_instant(q)?;
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, window_end, model_version, score, threshold, severity, contributions, features, top_channel,
                explanation, partition_id, sequence_number, event_offset, enqueued_time, inserted_at
         FROM anomalies
         WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR window_end_ms >= ?2)
         ORDER BY window_end_ms DESC, device_id ASC, id DESC
         LIMIT ?3",
    ).during(CONTEXT)?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![q.device_id, since_ms, limit], |row| {
            Ok((
                AnomalyRow {
                    device_id: row.get(0)?,
                    window_end: row.get(1)?,
                    model_version: row.get(2)?,
                    score: row.get(3)?,
                    threshold: row.get(4)?,
                    severity: row.get::<_, String>(5)?.parse().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            5,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
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
        })
        .during(CONTEXT)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut r, contributions, features) = row.during(CONTEXT)?;
        r.contributions = serde_json::from_str(&contributions)
            .map_err(|e| StoreError::permanent("stored contributions are not JSON", e))?;
        r.features = serde_json::from_str(&features)
            .map_err(|e| StoreError::permanent("stored features are not JSON", e))?;
        out.push(r);
    }
    Ok(out)
}

impl AnomalyStore for SqliteStore {
    fn kind(&self) -> crate::StoreKind {
        crate::StoreKind::Sqlite
    }

    fn target(&self) -> String {
        self.path.display().to_string()
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
            conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                .during("probing the write lock")
        })
    }
}
