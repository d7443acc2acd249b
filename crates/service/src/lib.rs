//! The Azure Functions custom handler: what the Functions host starts and talks to.
//!
//! The data path lives in the stage crates (`ingress` → `scoring` → `pipeline` → `sinks`); this
//! crate is the edge around it: [`http`] maps the host's routes onto the pipeline, [`live`] and
//! [`telemetry`] observe what each batch did, [`configuration`] reads the app settings once and
//! [`startup`] assembles it all. The CLI's tools live in another crate that this one cannot
//! name, so the deployed binary carries none of them.

pub mod configuration;
pub mod http;
pub mod live;
pub mod model;
pub mod model_follow;
pub mod retrain;
pub mod shadow;
pub mod startup;
pub mod telemetry;

/// Runs the handler until SIGTERM or Ctrl-C: settings from the environment, validated once;
/// telemetry before the runtime (the exporter's HTTP client is a blocking one) and flushed after.
pub fn serve() -> anyhow::Result<()> {
    use anyhow::Context;
    let settings = configuration::Settings::from_env().context("invalid configuration")?;
    let telemetry = telemetry::init("info", settings.app_insights.as_ref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let served = runtime.block_on(async {
        let app = startup::Application::build_with_telemetry(settings, &telemetry).await?;
        app.run_until_stopped(startup::shutdown_signal()).await?;
        anyhow::Ok(())
    });
    drop(runtime);
    telemetry.shutdown();
    served
}
