//! ④ Where anomalies go: the [`AnomalyStore`] trait the pipeline writes through, its error
//! type, and the implementations: [`sqlite`] (the embedded default) and [`memory`] (for tests
//! and trying the pipeline without a disk). The Azure SQL sink implements the same trait.
//!
//! Every store keeps the same promises, checked by one contract suite (`crates/tools/tests/it/store_contract.rs`):
//! rows are unique on (device, window end, model version), so a re-delivered batch is stored
//! once; `insert` is all-or-nothing and returns how many rows were new; history is newest window
//! first by instant.

pub mod azure_sql;
pub mod memory;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use domain::time as timefmt;
use domain::AnomalyRow;

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
    query
        .since
        .as_deref()
        .map(|text| {
            unix_ms(text)
                .ok_or_else(|| StoreError::invalid(format!("since {text:?} is not a timestamp")))
        })
        .transpose()
}
