//! The embedded store: one SQLite file in WAL mode, written by a thread of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::{
    from_stored, incident_activity_ms, message_at_ms, since_instant, since_ms, to_json,
    window_end_instants,
    AnomalyStore, HistoryQuery, IncidentQuery, LoadedTracker, SaveOutcome, StoreError,
    StoreFuture, TrackerRequest, TrackerSave,
};
use domain::time as timefmt;
use domain::{AnomalyRow, Incident, IncidentMessage, Lineage, TrackerState, VersionedTracker};

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

/// One SQLite file, its connection owned by one thread that runs the store's calls in turn:
/// SQLite has one writer at a time anyway. (From the blocking pool, each waiting call held a
/// thread parked on a mutex: under 8 concurrent invocations 8 threads, each woken through a
/// futex and each keeping its allocator heap after the load.) Dropping the store waits for
/// the thread to finish the calls queued and close the connection (which checkpoints the WAL),
/// as dropping the connection itself did.
pub struct SqliteStore {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The last sender gone, the thread's queue ends once drained. (A call in flight holds
        // no sender: it lets go of its copy once its work is queued.)
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // A panic on the thread was caught per call; one outside a call has nothing to add.
            let _ = thread.join();
        }
    }
}

/// What the store's thread owns: the connection and the trackers it read or wrote.
struct Worker {
    conn: Connection,
    trackers: TrackerCache,
}

/// One call's work on the store's thread; it sends its own answer.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

fn run_jobs(mut worker: Worker, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        job(&mut worker);
    }
}

/// The trackers this store last read or wrote, parsed, with their versions. A load asks the
/// database for the version and reads (and parses) the state only when it is not the cached
/// one: every write moves the version (and tracker rows are never deleted), so another
/// instance's write is always seen and a stale entry never used. Owned by the store's thread
/// beside the connection, so it is only ever used inside that connection's calls.
///
/// Each entry also keeps the `PRAGMA data_version` under which it was last known current. That
/// number changes when another connection commits to the file and never for this connection's
/// own commits (which update the cache), so while it has not moved an entry needs no query at
/// all: one pragma per load instead of a query per device.
#[derive(Default)]
struct TrackerCache {
    entries: HashMap<String, Cached>,
}

struct Cached {
    version: i64,
    state: TrackerState,
    /// The connection's `data_version` when this entry was last known to be the stored tracker.
    current_at: i64,
}

/// Parsed trackers kept: about a kilobyte each at most. Past this the cache starts again
/// (the entries are only a shortcut).
const TRACKER_CACHE_ENTRIES: usize = 4096;

impl TrackerCache {
    fn put(&mut self, key: String, version: i64, state: TrackerState, current_at: i64) {
        if self.entries.len() >= TRACKER_CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Cached {
                version,
                state,
                current_at,
            },
        );
    }
}

/// The connection's `PRAGMA data_version` inside a transaction: it starts the transaction's
/// read (so the value is that of the snapshot the transaction's queries see).
fn data_version(tx: &rusqlite::Transaction<'_>, context: &str) -> Result<i64, StoreError> {
    tx.prepare_cached("PRAGMA data_version")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .during(context)
}

/// The schema's version (`PRAGMA user_version`): 1 keys anomalies and trackers by device and
/// window, not by model version, so a window is stored once whichever champion scores it.
const SCHEMA_VERSION: i64 = 1;

/// The anomaly table's columns, shared by the schema and the version-1 migration.
const ANOMALY_COLUMNS: &str = "
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
    UNIQUE (device_id, window_end)";

/// The tracker table's columns: one tracker per device, `model_version` the model that last
/// moved it.
const TRACKER_COLUMNS: &str = "
    device_id       TEXT    NOT NULL PRIMARY KEY,
    model_version   TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL";

const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS anomalies_by_window ON anomalies (window_end_ms DESC);
CREATE INDEX IF NOT EXISTS anomalies_by_device ON anomalies (device_id, window_end_ms DESC);
CREATE INDEX IF NOT EXISTS incidents_by_activity ON incidents (status, activity_ms DESC);
CREATE INDEX IF NOT EXISTS incidents_by_device ON incidents (device_id, activity_ms DESC);
CREATE INDEX IF NOT EXISTS incident_messages_by_device ON incident_messages (device_id, at_ms);
";

fn schema() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS anomalies ({ANOMALY_COLUMNS});
CREATE TABLE IF NOT EXISTS incident_trackers ({TRACKER_COLUMNS});
CREATE TABLE IF NOT EXISTS incidents (
    incident_id     TEXT    PRIMARY KEY,
    device_id       TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    activity_ms     INTEGER NOT NULL,
    document        TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_messages (
    message_id      TEXT    PRIMARY KEY,
    device_id       TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    document        TEXT    NOT NULL
);
{INDEXES}"
    )
}

/// Version 0 to 1: the tables are rebuilt under the new keys. Of the rows one window has under
/// several model versions, the first stored stays (it is the one that was alerted first); of a
/// device's trackers, the one written last.
fn migration_v1() -> String {
    format!(
        "CREATE TABLE anomalies_v1 ({ANOMALY_COLUMNS});
INSERT OR IGNORE INTO anomalies_v1 SELECT * FROM anomalies ORDER BY id;
DROP TABLE anomalies;
ALTER TABLE anomalies_v1 RENAME TO anomalies;
CREATE TABLE incident_trackers_v1 ({TRACKER_COLUMNS});
INSERT OR REPLACE INTO incident_trackers_v1 SELECT * FROM incident_trackers ORDER BY updated_at, version;
DROP TABLE incident_trackers;
ALTER TABLE incident_trackers_v1 RENAME TO incident_trackers;
DROP INDEX IF EXISTS incident_messages_by_window;
{INDEXES}"
    )
}

/// Creates the schema, or brings an older one to [`SCHEMA_VERSION`], in one write transaction
/// (two processes opening one file at once migrate it once).
fn prepare_schema(conn: &mut Connection) -> Result<(), StoreError> {
    const CONTEXT: &str = "preparing the schema";
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .during(CONTEXT)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).during(CONTEXT)?;
    let existing: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'anomalies'", [], |r| r.get(0))
        .during(CONTEXT)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::invalid(format!(
            "the database has schema version {version}; this build knows {SCHEMA_VERSION} (a newer build wrote it)"
        )));
    }
    if existing > 0 && version < 1 {
        // Tables of version 0 (trackers and messages may predate incidents: create them first).
        tx.execute_batch(&schema()).during(CONTEXT)?;
        tx.execute_batch(&migration_v1()).during(CONTEXT)?;
    } else {
        tx.execute_batch(&schema()).during(CONTEXT)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).during(CONTEXT)?;
    tx.commit().during(CONTEXT)
}

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
        let mut conn = conn;
        prepare_schema(&mut conn)?;
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || {
                let worker = Worker {
                    conn,
                    trackers: TrackerCache::default(),
                };
                run_jobs(worker, queue)
            })
            .map_err(|e| StoreError::permanent("starting the store's thread", e))?;
        Ok(SqliteStore {
            jobs: Some(jobs),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Worker) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let stopped = |context: &str| StoreError::Transient {
                context: context.to_string(),
                source: None,
            };
            let jobs = jobs.ok_or_else(|| stopped("the store is closing"))?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move |worker| {
                // A panic mid-write rolled its transaction back; the connection is still usable.
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(worker)));
                // The caller may have stopped waiting; the work is done either way.
                let _ = reply.send(result);
            });
            jobs.send(job)
                .map_err(|_| stopped("the store's thread has stopped"))?;
            drop(jobs);
            match answer.await {
                Ok(Ok(result)) => result,
                Ok(Err(_panic)) => Err(stopped("the store task panicked")),
                Err(_) => Err(stopped("the store task did not finish")),
            }
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
             ON CONFLICT (device_id, window_end) DO NOTHING",
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
                    to_json(&r.contributions)?,
                    to_json(&r.features)?,
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

fn load_trackers(
    conn: &mut Connection,
    cache: &mut TrackerCache,
    requests: &[TrackerRequest],
) -> Result<Vec<LoadedTracker>, StoreError> {
    const CONTEXT: &str = "reading incident trackers";
    let tx = conn.transaction().during(CONTEXT)?;
    let mut out = Vec::with_capacity(requests.len());
    {
        // The state only when its version is not the cached one (?2; NULL matches none).
        let mut tracker = tx
            .prepare_cached(
                "SELECT version, CASE WHEN version = ?2 THEN NULL ELSE state END
                 FROM incident_trackers WHERE device_id = ?1",
            )
            .during(CONTEXT)?;
        let mut messages = tx
            .prepare_cached(
                "SELECT document FROM incident_messages
                 WHERE device_id = ?1 AND at_ms BETWEEN ?2 AND ?3
                 ORDER BY at_ms, message_id",
            )
            .during(CONTEXT)?;
        let snapshot = data_version(&tx, CONTEXT)?;
        for r in requests {
            let tracker = match cache.entries.get_mut(r.device_id.as_str()) {
                // Nobody else has committed since this entry was known current: it is.
                Some(c) if c.current_at == snapshot => Some(VersionedTracker {
                    state: c.state.clone(),
                    version: c.version,
                }),
                cached => {
                    let cached_version = cached.as_ref().map(|c| c.version);
                    let found: Option<(i64, Option<String>)> = tracker
                        .query_row(params![r.device_id, cached_version], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .optional()
                        .during(CONTEXT)?;
                    match (found, cached) {
                        // The stored version is the cached one: the state is the cached state.
                        (Some((version, None)), Some(c)) => {
                            c.current_at = snapshot;
                            Some(VersionedTracker {
                                state: c.state.clone(),
                                version,
                            })
                        }
                        (Some((version, text)), _) => {
                            // NULL comes only for the cached version, which is then in the cache.
                            let text = text.ok_or_else(|| StoreError::Transient {
                                context: format!(
                                    "{CONTEXT}: the cached tracker of {} is gone",
                                    r.device_id
                                ),
                                source: None,
                            })?;
                            let state = from_stored::<TrackerState>(&text, "incident tracker")?;
                            cache.put(r.device_id.clone(), version, state.clone(), snapshot);
                            Some(VersionedTracker { state, version })
                        }
                        (None, _) => None,
                    }
                }
            };
            let mut loaded = LoadedTracker {
                tracker,
                messages: Vec::new(),
            };
            // Only a re-delivery has messages to find: windows at or before the watermark.
            let replayed = loaded
                .tracker
                .as_ref()
                .is_some_and(|t| r.from_ms <= t.state.watermark_ms);
            if replayed {
                let rows = messages
                    .query_map(
                        params![r.device_id, r.from_ms, r.to_ms],
                        |row| row.get::<_, String>(0),
                    )
                    .during(CONTEXT)?;
                for text in rows {
                    let text = text.during(CONTEXT)?;
                    loaded.messages.push(from_stored::<IncidentMessage>(&text, "incident message")?);
                }
            }
            out.push(loaded);
        }
    }
    tx.commit().during(CONTEXT)?;
    Ok(out)
}

fn save_trackers(
    conn: &mut Connection,
    cache: &mut TrackerCache,
    saves: &[TrackerSave],
) -> Result<SaveOutcome, StoreError> {
    const CONTEXT: &str = "saving incident trackers";
    // Everything is checked and serialized before the transaction: a bad save writes nothing.
    let mut prepared = Vec::with_capacity(saves.len());
    for save in saves {
        let incidents = save
            .incidents
            .iter()
            .map(|i| Ok((incident_activity_ms(i)?, to_json(i)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let messages = save
            .messages
            .iter()
            .map(|m| Ok((message_at_ms(m)?, to_json(m)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        prepared.push((save, to_json(&save.state)?, incidents, messages));
    }
    let now = timefmt::format(timefmt::now());
    // IMMEDIATE: the version check and the write are under one write lock.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .during(CONTEXT)?;
    // Under the write lock: no other connection commits before this transaction does, and this
    // connection's own commit leaves its data_version as it is.
    let snapshot = data_version(&tx, CONTEXT)?;
    let mut outcome = SaveOutcome::default();
    let mut written_versions = Vec::with_capacity(saves.len());
    {
        let mut update = tx
            .prepare_cached(
                "UPDATE incident_trackers SET version = version + 1, model_version = ?2, state = ?3, updated_at = ?4
                 WHERE device_id = ?1 AND version = ?5",
            )
            .during(CONTEXT)?;
        let mut create = tx
            .prepare_cached(
                "INSERT INTO incident_trackers (device_id, model_version, version, state, updated_at)
                 VALUES (?1, ?2, 1, ?3, ?4) ON CONFLICT (device_id) DO NOTHING",
            )
            .during(CONTEXT)?;
        let mut incident = tx
            .prepare_cached(
                "INSERT INTO incidents (incident_id, device_id, model_version, status, activity_ms, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (incident_id) DO UPDATE SET status = excluded.status,
                     activity_ms = excluded.activity_ms, document = excluded.document",
            )
            .during(CONTEXT)?;
        let mut message = tx
            .prepare_cached(
                "INSERT INTO incident_messages (message_id, device_id, model_version, at_ms, document)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING",
            )
            .during(CONTEXT)?;
        for (save, state, incidents, messages) in prepared {
            let (device, model) = (&save.state.device_id, &save.state.model_version);
            let written = match save.expected_version {
                Some(version) => update
                    .execute(params![device, model, state, now, version])
                    .during(CONTEXT)?,
                None => create.execute(params![device, model, state, now]).during(CONTEXT)?,
            };
            if written == 0 {
                outcome.conflicts.push(device.clone());
                continue;
            }
            written_versions.push((save, save.expected_version.map_or(1, |v| v + 1)));
            for (i, (activity, document)) in save.incidents.iter().zip(incidents) {
                incident
                    .execute(params![i.incident_id, device, model, i.status.as_str(), activity, document])
                    .during(CONTEXT)?;
            }
            for (m, (at, document)) in save.messages.iter().zip(messages) {
                message
                    .execute(params![m.message_id, device, model, at, document])
                    .during(CONTEXT)?;
            }
            outcome.saved += 1;
        }
    }
    tx.commit().during(CONTEXT)?;
    // Only what is committed is cached; a conflicting tracker is read again next time anyway
    // (its version is not the cached one).
    for (save, version) in written_versions {
        let state = &save.state;
        cache.put(state.device_id.clone(), version, state.clone(), snapshot);
    }
    Ok(outcome)
}

fn read_incidents(conn: &mut Connection, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
    const CONTEXT: &str = "reading incidents";
    let since = since_ms(q.since.as_deref())?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT document FROM incidents
             WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR activity_ms >= ?3)
             ORDER BY status = 'open' DESC, activity_ms DESC, incident_id ASC
             LIMIT ?4",
        )
        .during(CONTEXT)?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(
            params![q.device_id, q.status.map(|s| s.as_str()), since, limit],
            |row| row.get::<_, String>(0),
        )
        .during(CONTEXT)?;
    let mut out = Vec::new();
    for text in rows {
        out.push(from_stored::<Incident>(&text.during(CONTEXT)?, "incident")?);
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
        self.blocking(move |w| insert_rows(&mut w.conn, &rows))
    }

    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>> {
        self.blocking(move |w| read_history(&mut w.conn, &query))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // A write probe: readers never block in WAL mode, so only taking the write lock tells
        // whether an insert would go through now.
        self.blocking(|w| {
            w.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                .during("probing the write lock")
        })
    }

    fn load_trackers(&self, requests: Vec<TrackerRequest>) -> StoreFuture<'_, Vec<LoadedTracker>> {
        if requests.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.blocking(move |w| load_trackers(&mut w.conn, &mut w.trackers, &requests))
    }

    fn save_trackers(&self, saves: Vec<TrackerSave>) -> StoreFuture<'_, SaveOutcome> {
        if saves.is_empty() {
            return Box::pin(async { Ok(SaveOutcome::default()) });
        }
        self.blocking(move |w| save_trackers(&mut w.conn, &mut w.trackers, &saves))
    }

    fn incidents(&self, query: IncidentQuery) -> StoreFuture<'_, Vec<Incident>> {
        self.blocking(move |w| read_incidents(&mut w.conn, &query))
    }
}
