//! Observability: logging set-up and the Prometheus [`metrics`].
//!
//! The Functions host captures the handler's stdout/stderr into its own logs, so plain lines on
//! stderr are enough locally; `RUST_LOG` filters them. Logging is built from layers on one
//! registry, so an exporter (OpenTelemetry) is one more layer.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use metrics::Metrics;

/// Human-readable lines on stderr: no colour codes unless stderr is a terminal, since the
/// host's log capture would keep them verbatim.
pub fn stderr_layer() -> impl Layer<Registry> + Send + Sync {
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}

/// Installs the process-wide subscriber: `RUST_LOG`, or `default_filter` when it is unset.
/// A second call (tests, the demo) keeps the first subscriber.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::registry()
        .with(stderr_layer())
        .with(filter)
        .try_init();
}
