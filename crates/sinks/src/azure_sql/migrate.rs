//! Schema migrations: the versioned scripts under `sql/` (built into the binary), applied in
//! order by `sensor-anomaly db migrate`, each in its own transaction under an application lock
//! (so two deployments cannot race), and recorded with a checksum in `dbo.schema_migrations`.
//! An applied script that was edited afterwards is refused rather than silently skipped.
//!
//! Scripts are plain T-SQL that `sqlcmd` also runs: `GO` on its own line separates batches, and
//! each script guards its own statements so a second run changes nothing.

use super::errors::SqlError;
use super::statements::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every script of `sql/`, in order (a test checks the folder and this list agree).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "V001__anomalies.sql",
        sql: include_str!("../../../../sql/V001__anomalies.sql"),
    },
    Migration {
        version: 2,
        name: "V002__binary_key_collation.sql",
        sql: include_str!("../../../../sql/V002__binary_key_collation.sql"),
    },
    Migration {
        version: 3,
        name: "V003__incidents.sql",
        sql: include_str!("../../../../sql/V003__incidents.sql"),
    },
    Migration {
        version: 4,
        name: "V004__idempotent_across_models.sql",
        sql: include_str!("../../../../sql/V004__idempotent_across_models.sql"),
    },
];

pub const BOOTSTRAP: &str = "IF OBJECT_ID(N'dbo.schema_migrations', N'U') IS NULL
    CREATE TABLE dbo.schema_migrations (
        version    bigint        NOT NULL CONSTRAINT pk_schema_migrations PRIMARY KEY,
        name       nvarchar(200) NOT NULL,
        checksum   nvarchar(16)  NOT NULL,
        applied_at datetime2(3)  NOT NULL CONSTRAINT df_schema_migrations_applied_at DEFAULT SYSUTCDATETIME()
    );";

/// Opens the migration's transaction, takes the lock, and reads the recorded checksum (if any).
/// Migrations run as plain batches, not parameterised RPCs: a transaction begun inside an RPC
/// must end inside it (error 266), and this one spans the script's batches. The values are the
/// runner's own (a version number, a file name, a hex checksum), never input.
pub fn begin(version: i64) -> String {
    format!(
        "SET XACT_ABORT ON;
BEGIN TRANSACTION;
EXEC sp_getapplock @Resource = N'sensor-anomaly-migrations', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
SELECT checksum FROM dbo.schema_migrations WHERE version = {version};"
    )
}

pub fn record(migration: &Migration, checksum: &str) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    format!(
        "INSERT INTO dbo.schema_migrations (version, name, checksum) VALUES ({}, N'{}', N'{}');
COMMIT TRANSACTION;",
        migration.version,
        quote(migration.name),
        quote(checksum)
    )
}

pub const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;";

/// A connection to run migrations on: statements run one after another in one session.
pub trait Session {
    fn run(
        &mut self,
        sql: &str,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<Cell>>, SqlError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    AlreadyApplied,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Setup(#[from] crate::StoreError),
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: SqlError,
    },
    #[error("migration {name} failed")]
    Failed {
        name: &'static str,
        #[source]
        source: SqlError,
    },
    #[error("migration {name} was applied with checksum {recorded} but the script now has {current}: applied scripts must not change; add a new one")]
    Changed {
        name: &'static str,
        recorded: String,
        current: String,
    },
}

/// The batches of a script: split on lines that hold only `GO`, as sqlcmd does.
pub fn batches(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim().eq_ignore_ascii_case("go") {
            out.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    out.push(current);
    out.into_iter().filter(|b| !b.trim().is_empty()).collect()
}

/// FNV-1a (64-bit) of the script with line endings normalised: a change detector, not security.
pub fn checksum(sql: &str) -> String {
    format!("{:016x}", domain::fnv1a(sql.replace("\r\n", "\n").bytes()))
}

/// Applies every migration not yet recorded; returns what happened to each.
pub async fn migrate<S: Session>(
    session: &mut S,
    migrations: &[Migration],
) -> Result<Vec<(Migration, Outcome)>, MigrateError> {
    let failed = |name: &'static str| move |source: SqlError| MigrateError::Failed { name, source };
    session
        .run(BOOTSTRAP)
        .await
        .map_err(failed("dbo.schema_migrations"))?;
    let mut report = Vec::new();
    for migration in migrations {
        let outcome = match apply(session, migration).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // Best effort: XACT_ABORT has usually rolled back already.
                let _ = session.run(ROLLBACK).await;
                return Err(error);
            }
        };
        tracing::info!(migration = migration.name, ?outcome, "migration");
        report.push((*migration, outcome));
    }
    Ok(report)
}

async fn apply<S: Session>(session: &mut S, m: &Migration) -> Result<Outcome, MigrateError> {
    let failed = |source| MigrateError::Failed {
        name: m.name,
        source,
    };
    let current = checksum(m.sql);
    let recorded = session.run(&begin(m.version)).await.map_err(failed)?;
    if let Some(cell) = recorded.first().and_then(|r| r.first()) {
        session.run(ROLLBACK).await.map_err(failed)?;
        let recorded = match cell {
            Cell::Text(text) => text.clone(),
            other => format!("{other:?}"),
        };
        if recorded != current {
            return Err(MigrateError::Changed {
                name: m.name,
                recorded,
                current,
            });
        }
        return Ok(Outcome::AlreadyApplied);
    }
    for batch in batches(m.sql) {
        session.run(&batch).await.map_err(failed)?;
    }
    session.run(&record(m, &current)).await.map_err(failed)?;
    Ok(Outcome::Applied)
}

#[cfg(test)]
mod tests;
