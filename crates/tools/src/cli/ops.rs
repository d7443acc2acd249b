//! `db migrate` and `demo`.

use std::io::Write;

use anyhow::{bail, Result};

use super::args::DemoArgs;
use sensor_anomaly::demo::{self, DemoOptions};
use service::startup;
use service::telemetry::{self, AppInsightsSettings};
use sinks::azure_sql::{self, migrate::Outcome, settings::SqlSettings};

/// `db migrate`: the `sql/` migrations not yet applied, applied.
pub(crate) fn db_migrate() -> Result<()> {
    let Some(sql) = SqlSettings::from_lookup(|name| std::env::var(name).ok())? else {
        bail!("ANOMALY_SQL_CONNECTION_STRING is not set: migrations are for Azure SQL (the embedded SQLite store creates its own schema)");
    };
    let runtime = super::quiet_runtime()?;
    let report = runtime.block_on(azure_sql::migrate_database(&sql))?;
    for (migration, outcome) in report {
        let what = match outcome {
            Outcome::Applied => "applied",
            Outcome::AlreadyApplied => "already applied",
        };
        println!("{}: {what}", migration.name);
    }
    println!("{} is up to date", sql.target());
    Ok(())
}

/// `demo`: the whole pipeline on a laptop, and a report.
pub(crate) fn demo(args: DemoArgs) -> Result<()> {
    let DemoArgs {
        sim,
        window_secs,
        batch_size,
        concurrency,
        model,
        db,
        json,
        serve,
        port,
    } = args;
    // With APPLICATIONINSIGHTS_CONNECTION_STRING set, the demo exports as `serve` does
    // (how the exporter's cost is measured: scripts/bench-telemetry.sh).
    let app_insights = AppInsightsSettings::from_lookup(|n| std::env::var(n).ok())?;
    let telemetry =
        telemetry::init(if json { "off" } else { "warn" }, app_insights.as_ref())?;
    let options = DemoOptions {
        sim: sim.config()?,
        window_secs,
        batch_size,
        concurrency,
        model_path: model,
        db_path: db,
        progress: !json,
        serve_port: serve.then_some(port),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let (report, serving) = demo::run_and_serve(options, &telemetry).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", demo::render(&report));
        }
        if let Some(serving) = serving {
            println!(
                "\nserving the demo's data until Ctrl-C:\n  dashboard  http://127.0.0.1:{}/api/dashboard",
                serving.port
            );
            std::io::stdout().flush()?;
            serving.until(startup::shutdown_signal()).await?;
        }
        anyhow::Ok(())
    });
    drop(runtime);
    telemetry.shutdown();
    result
}
