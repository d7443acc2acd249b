//! Observability: logging, Application Insights export ([`app_insights`]) and [`metrics`].
//!
//! The Functions host captures the handler's stdout/stderr into its own logs, so plain lines on
//! stderr are enough locally; `RUST_LOG` filters them. Logging is layers on one registry: the
//! stderr layer always, and the OpenTelemetry layer when `APPLICATIONINSIGHTS_CONNECTION_STRING`
//! is set, with its own filter (the spans and events of every `sensor_anomaly*` crate at info and above).

pub mod app_insights;
pub mod events;
pub mod metrics;

use std::io::IsTerminal;
use std::sync::Arc;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use app_insights::{AppInsights, AppInsightsError, AppInsightsSettings, ExportHealth};
pub use metrics::Metrics;

/// Human-readable lines on stderr: no colour codes unless stderr is a terminal, since the
/// host's log capture would keep them verbatim.
pub fn stderr_layer() -> impl Layer<Registry> + Send + Sync {
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}

/// What was set up: the exporter when on. Keep it for the life of the process and call
/// [`Telemetry::shutdown`] at exit to flush.
#[derive(Default)]
pub struct Telemetry {
    app_insights: Option<AppInsights>,
}

impl Telemetry {
    pub fn disabled() -> Self {
        Telemetry::default()
    }

    /// The metrics of this process, observing `model`: OpenTelemetry instruments only when
    /// exporting.
    pub fn metrics(&self, model: Arc<crate::model::InService>) -> Metrics {
        match &self.app_insights {
            Some(ai) => Metrics::with_export(
                model,
                Some(ai.meter_provider.meter("sensor-anomaly")),
                Some(Arc::clone(&ai.health)),
            ),
            None => Metrics::new(model),
        }
    }

    pub fn exporting(&self) -> bool {
        self.app_insights.is_some()
    }

    pub fn shutdown(&self) {
        if let Some(ai) = &self.app_insights {
            ai.shutdown();
        }
    }
}

/// Installs the process-wide subscriber: `RUST_LOG`, or `default_filter` when it is unset, and
/// the exporter when `app_insights` is given. Call outside an async runtime. A second call
/// (tests, the demo) keeps the first subscriber and exports nothing new.
pub fn init(
    default_filter: &str,
    app_insights: Option<&AppInsightsSettings>,
) -> Result<Telemetry, AppInsightsError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let app_insights = app_insights.map(AppInsights::start).transpose()?;
    let otel_layer = app_insights.as_ref().map(|ai| {
        tracing_opentelemetry::layer()
            .with_tracer(ai.tracer_provider.tracer("sensor-anomaly"))
            .with_filter(Targets::new().with_target("sensor_anomaly", tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(stderr_layer().with_filter(filter))
        .with(otel_layer)
        .try_init()
        .is_ok();
    Ok(Telemetry {
        app_insights: app_insights.filter(|_| installed),
    })
}
