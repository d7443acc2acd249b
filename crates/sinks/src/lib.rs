//! ④ Where anomalies go: the [`AnomalyStore`] trait the pipeline writes through, its error
//! type, and the implementations: [`sqlite`] (the embedded default) and [`memory`] (for tests
//! and trying the pipeline without a disk). The Azure SQL sink implements the same trait.
//!
//! Every store keeps the same promises, checked by one contract suite (`crates/tools/tests/it/store_contract.rs`):
//! rows are unique on (device, window end), so a re-delivered batch is stored once, whichever
//! model scores it (a fleet switching champions included); `insert` is all-or-nothing and returns how many rows were new; history is newest window
//! first by instant.

pub mod azure_sql;
pub mod memory;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use domain::time as timefmt;
use domain::{AnomalyRow, Incident, IncidentMessage, IncidentStatus, TrackerState, VersionedTracker};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store failure, classified by whether retrying can help. The invocation answers 503 for a
/// transient failure (the host retries the batch) and 500 for a permanent one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Busy, locked, unreachable, out of space, timed out: the same write may succeed later.
    #[error("store unavailable: {context}")]
    Transient {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Bad data, a broken schema, a read-only or corrupt database: retrying cannot help.
    #[error("store refused the operation: {context}")]
    Permanent {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    pub fn transient(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Transient {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub fn permanent(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Permanent {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// A permanent error with no underlying error (invalid data caught by the store itself).
    pub fn invalid(context: impl Into<String>) -> Self {
        StoreError::Permanent {
            context: context.into(),
            source: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    pub device_id: Option<String>,
    /// Canonical RFC 3339; windows ending at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

/// Which incidents `/api/incidents` lists: open ones first, then by last activity, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    pub device_id: Option<String>,
    pub status: Option<IncidentStatus>,
    /// Canonical RFC 3339; incidents active (last anomalous window or resolution) at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

/// The tracker of one device, and the stored incident messages of its windows between `from_ms`
/// and `to_ms` (the batch's windows of that device), to publish again for a re-delivery. One
/// tracker per device whatever the model: an incident open when the champion changes is
/// continued (and resolved) by the next one, not opened again.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerRequest {
    pub device_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What [`AnomalyStore::load_trackers`] found for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedTracker {
    /// None: the device has no tracker yet.
    pub tracker: Option<VersionedTracker>,
    /// Stored messages made at windows within the request's range, in window order.
    pub messages: Vec<IncidentMessage>,
}

/// A conditional write of one tracker: it goes through only if the stored version is still
/// `expected_version` (None: no tracker stored yet), and then also stores its incidents and new
/// messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerSave {
    pub state: TrackerState,
    pub expected_version: Option<i64>,
    /// Incidents to insert or replace (by id).
    pub incidents: Vec<Incident>,
    /// Messages made by this write (kept unique by id).
    pub messages: Vec<IncidentMessage>,
}

/// What [`AnomalyStore::save_trackers`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveOutcome {
    pub saved: usize,
    /// Devices whose stored version was not the expected one: nothing of theirs was written.
    pub conflicts: Vec<String>,
}

/// A value as the JSON text a store keeps (incident trackers, incidents, messages).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::permanent("cannot serialize", e))
}

/// A value back from the JSON text a store kept; `what` names it in the error.
pub(crate) fn from_stored<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::permanent(format!("stored {what} is not readable"), e))
}

/// The activity instant of an incident: its resolution, or its last anomalous window.
pub fn incident_activity_ms(incident: &Incident) -> Result<i64, StoreError> {
    let text = incident.resolved_at.as_deref().unwrap_or(&incident.last_anomalous_at);
    unix_ms(text).ok_or_else(|| {
        StoreError::invalid(format!("incident {} has no timestamp {text:?}", incident.incident_id))
    })
}

/// The window instant of a message.
pub fn message_at_ms(message: &IncidentMessage) -> Result<i64, StoreError> {
    unix_ms(&message.at).ok_or_else(|| {
        StoreError::invalid(format!("message {} has no timestamp", message.message_id))
    })
}

/// Which store: reported by `/api/health`, in logs and as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreKind {
    Sqlite,
    Memory,
    AzureSql,
}

impl StoreKind {
    pub const ALL: [StoreKind; 3] = [StoreKind::Sqlite, StoreKind::Memory, StoreKind::AzureSql];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Memory => "memory",
            StoreKind::AzureSql => "azure-sql",
        }
    }

    /// The database system, as OpenTelemetry's `db.system.name` names it (Application Insights
    /// shows a dependency of type `SQL` with the SQL icon and query view).
    pub fn system_name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Memory => "memory",
            StoreKind::AzureSql => "SQL",
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for StoreKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable anomaly sink. `insert` is all-or-nothing and idempotent; it returns how many rows
/// were new.
pub trait AnomalyStore: Send + Sync + 'static {
    fn kind(&self) -> StoreKind;
    /// Where writes go (a file, `host,port/database`), for logs and dependency telemetry; never
    /// a credential.
    fn target(&self) -> String {
        self.kind().as_str().to_string()
    }
    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize>;
    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>>;
    /// Succeeds when a write would go through now.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// One answer per request, in order.
    fn load_trackers(&self, requests: Vec<TrackerRequest>) -> StoreFuture<'_, Vec<LoadedTracker>>;
    /// Each save is atomic on its own, and the whole call is one transaction: a failure writes
    /// nothing; a version conflict skips that tracker only and names it.
    fn save_trackers(&self, saves: Vec<TrackerSave>) -> StoreFuture<'_, SaveOutcome>;
    fn incidents(&self, query: IncidentQuery) -> StoreFuture<'_, Vec<Incident>>;
}

/// Milliseconds since the epoch: timestamps compare as numbers, whatever their text form.
pub fn unix_ms(text: &str) -> Option<i64> {
    timefmt::parse(text).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `window_end` of every row as an instant, or a permanent error naming the bad row: checked
/// before anything is written, so a bad row refuses the whole batch.
pub fn window_end_instants(rows: &[AnomalyRow]) -> Result<Vec<i64>, StoreError> {
    rows.iter()
        .map(|r| {
            unix_ms(&r.window_end).ok_or_else(|| {
                StoreError::invalid(format!("window_end {:?} is not a timestamp", r.window_end))
            })
        })
        .collect()
}

/// `since` of a history query as an instant.
pub fn since_instant(query: &HistoryQuery) -> Result<Option<i64>, StoreError> {
    since_ms(query.since.as_deref())
}

/// A listing's `since` (history or incidents) as an instant.
pub fn since_ms(since: Option<&str>) -> Result<Option<i64>, StoreError> {
    since
        .map(|text| {
            unix_ms(text)
                .ok_or_else(|| StoreError::invalid(format!("since {text:?} is not a timestamp")))
        })
        .transpose()
}
