//! The Azure SQL sink (tiberius): anomalies in the database users' dashboards and reports read,
//! with the same promises as SQLite (the store contract suite) and one round trip per write.
//!
//! [`settings`] reads and validates `ANOMALY_SQL_CONNECTION_STRING`; [`token`] keeps an Entra ID
//! token fresh; [`connection`] opens TLS connections and pools them; [`statements`] holds every
//! statement sent; [`errors`] and [`retry`] decide what is retried inside the invocation;
//! [`migrate`] applies the `sql/` scripts.

pub mod connection;
pub mod errors;
pub mod incidents;
pub mod migrate;
pub mod retry;
pub mod settings;
pub mod statements;
pub mod token;

use std::sync::Arc;

use connection::{Connector, Executor, PoolExecutor};
use retry::RetryPolicy;
use settings::SqlSettings;
use statements::Cell;
use token::{TokenCache, REFRESH_MARGIN};

use super::{
    AnomalyStore, HistoryQuery, IncidentQuery, LoadedTracker, SaveOutcome, StoreError, StoreFuture,
    TrackerRequest, TrackerSave,
};
use domain::time as timefmt;
use domain::{AnomalyRow, Incident};

pub struct AzureSqlStore {
    executor: Arc<dyn Executor>,
    retry: RetryPolicy,
    target: String,
}

/// Builds the connector for `settings`: the credential and token cache for Entra ID methods.
pub fn connector(settings: &SqlSettings) -> Result<Connector, StoreError> {
    let credential = token::credential_for(&settings.auth).map_err(|e| {
        StoreError::permanent("cannot create the Entra ID credential for Azure SQL", e)
    })?;
    let tokens = credential.map(|c| Arc::new(TokenCache::new(c, REFRESH_MARGIN)));
    Ok(Connector::new(settings.clone(), tokens))
}

/// `sensor-anomaly db migrate`: applies the `sql/` scripts not yet applied, on one connection.
pub async fn migrate_database(
    settings: &SqlSettings,
) -> Result<Vec<(migrate::Migration, migrate::Outcome)>, migrate::MigrateError> {
    let connector = connector(settings)?;
    let client = connector
        .open()
        .await
        .map_err(|source| migrate::MigrateError::Connect {
            target: settings.target(),
            source,
        })?;
    let mut session = connection::BatchSession(client);
    migrate::migrate(&mut session, migrate::MIGRATIONS).await
}

impl AzureSqlStore {
    /// The store over a lazily filled pool; nothing is connected yet.
    pub fn connect(settings: &SqlSettings) -> Result<(Self, Arc<PoolExecutor>), StoreError> {
        let executor = Arc::new(PoolExecutor::new(
            connector(settings)?,
            settings.pool_size,
            settings.connect_timeout,
        ));
        let store = Self::with_executor(
            executor.clone(),
            RetryPolicy::within(settings.retry_budget),
            settings.target(),
        );
        Ok((store, executor))
    }

    pub fn with_executor(executor: Arc<dyn Executor>, retry: RetryPolicy, target: String) -> Self {
        AzureSqlStore {
            executor,
            retry,
            target,
        }
    }

    /// `host,port/database`, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn run_with_retries(
        &self,
        statement: &statements::Statement,
        doing: &str,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        self.retry
            .run(|| self.executor.run(statement))
            .await
            .map_err(|(error, attempts)| {
                error.into_store_error(&format!("{doing} ({attempts} attempt(s))"))
            })
    }
}

impl AnomalyStore for AzureSqlStore {
    fn kind(&self) -> crate::StoreKind {
        crate::StoreKind::AzureSql
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(0);
            }
            let now = timefmt::format(timefmt::now());
            let statement = statements::insert(&rows, &now)?;
            let doing = format!("inserting {} anomalies", rows.len());
            let result = self.run_with_retries(&statement, &doing).await?;
            statements::inserted_count(&result)
        })
    }

    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>> {
        Box::pin(async move {
            let statement = statements::history(&query)?;
            let rows = self.run_with_retries(&statement, "reading history").await?;
            rows.into_iter().map(statements::anomaly_row).collect()
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // One attempt: a health probe reports the state now, it does not wait it out.
            let statement = statements::ping();
            let rows = self
                .executor
                .run(&statement)
                .await
                .map_err(|e| e.into_store_error("probing"))?;
            match rows.first().and_then(|r| r.first()) {
                Some(Cell::Int(1)) => Ok(()),
                _ => Err(StoreError::invalid(
                    "this identity may not insert into dbo.anomalies: run `sensor-anomaly db migrate` and grant INSERT (see README)",
                )),
            }
        })
    }

    fn load_trackers(&self, requests: Vec<TrackerRequest>) -> StoreFuture<'_, Vec<LoadedTracker>> {
        Box::pin(async move {
            if requests.is_empty() {
                return Ok(Vec::new());
            }
            let statement = incidents::load(&requests)?;
            let rows = self
                .run_with_retries(&statement, "reading incident trackers")
                .await?;
            incidents::loaded(requests.len(), rows)
        })
    }

    fn save_trackers(&self, saves: Vec<TrackerSave>) -> StoreFuture<'_, SaveOutcome> {
        Box::pin(async move {
            if saves.is_empty() {
                return Ok(SaveOutcome::default());
            }
            let now = timefmt::format(timefmt::now());
            let statement = incidents::save(&saves, &now)?;
            // Retrying is safe: a write that committed before its answer was lost comes back as
            // a conflict, and the batch then reads the tracker again.
            let rows = self
                .run_with_retries(&statement, "saving incident trackers")
                .await?;
            incidents::saved(&saves, rows)
        })
    }

    fn incidents(&self, query: IncidentQuery) -> StoreFuture<'_, Vec<Incident>> {
        Box::pin(async move {
            let statement = incidents::incidents(&query)?;
            let rows = self.run_with_retries(&statement, "reading incidents").await?;
            rows.into_iter().map(incidents::incident).collect()
        })
    }
}

#[cfg(test)]
mod tests;
