//! Export to Application Insights: `tracing` spans → OpenTelemetry → the App Insights exporter
//! (requests and dependencies), and OpenTelemetry metrics (customMetrics).
//!
//! Configured by `APPLICATIONINSIGHTS_CONNECTION_STRING`, the app setting Azure sets. Unset:
//! no exporter, no OpenTelemetry instruments, nothing on the hot path. Set: spans go through a
//! bounded batch queue and metrics through a periodic reader, both exported from their own
//! threads with a blocking HTTP client, so a slow, failing or unreachable ingestion endpoint
//! never holds an invocation up; failed exports are counted (Prometheus
//! `sensor_anomaly_telemetry_export_failures_total`) and logged. The standard OpenTelemetry
//! variables tune it (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_METRIC_EXPORT_INTERVAL`, ...).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_application_insights::Exporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use domain::Secret;

pub const CONNECTION_STRING: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/// How long one upload may take before it counts as failed.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits to flush: the host gives a stopping worker only seconds.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInsightsSettings {
    pub connection_string: Secret,
    /// An `IngestionEndpoint` given as plain `http://` (a local collector or test endpoint). The
    /// exporter's connection-string parser rewrites every endpoint to https, so such an
    /// endpoint is set explicitly; Azure's endpoints are https and go through the parser.
    pub plain_http_endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {CONNECTION_STRING} is invalid: {problem}")]
pub struct AppInsightsSettingsError {
    pub problem: String,
}

impl AppInsightsSettings {
    /// Reads the setting; `None` when unset. The value is checked, never echoed (it is a key).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, AppInsightsSettingsError> {
        let Some(text) = lookup(CONNECTION_STRING).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let mut has_key = false;
        let mut plain_http_endpoint = None;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(AppInsightsSettingsError {
                    problem: "expected `Key=Value` pairs separated by `;`".into(),
                });
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "instrumentationkey" => has_key = !value.trim().is_empty(),
                key @ ("ingestionendpoint" | "liveendpoint") => {
                    let v = value.trim();
                    if !(v.starts_with("https://") || v.starts_with("http://")) {
                        return Err(AppInsightsSettingsError {
                            problem: format!("`{key}` must be an http(s) URL"),
                        });
                    }
                    if key == "ingestionendpoint" && v.starts_with("http://") {
                        plain_http_endpoint = Some(v.to_string());
                    }
                }
                _ => {}
            }
        }
        if !has_key {
            return Err(AppInsightsSettingsError {
                problem: "no `InstrumentationKey`".into(),
            });
        }
        Ok(Some(AppInsightsSettings {
            connection_string: Secret::new(text),
            plain_http_endpoint,
        }))
    }
}

/// Exports that failed (after the exporter's own retries) and retries, by signal.
#[derive(Debug, Default)]
pub struct ExportHealth {
    pub span_failures: AtomicU64,
    pub metric_failures: AtomicU64,
    pub retries: AtomicU64,
}

/// Counts an inner exporter's failures; the inner exporter does the work.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.health.span_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "Application Insights span export failed; spans dropped");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            self.health.metric_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "Application Insights metric export failed; metrics dropped");
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The providers of an enabled export; dropped or shut down at exit to flush.
pub struct AppInsights {
    pub tracer_provider: SdkTracerProvider,
    pub meter_provider: SdkMeterProvider,
    pub health: Arc<ExportHealth>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up Application Insights export ({CONNECTION_STRING}): {0}")]
pub struct AppInsightsError(String);

impl AppInsights {
    /// Builds the exporters. Call outside an async runtime: the HTTP client is a blocking one,
    /// used only on the exporters' own threads.
    pub fn start(settings: &AppInsightsSettings) -> Result<Self, AppInsightsError> {
        let health = Arc::new(ExportHealth::default());
        let exporter = |health: &Arc<ExportHealth>| -> Result<Exporter<reqwest::blocking::Client>, AppInsightsError> {
            let client = reqwest::blocking::Client::builder()
                .timeout(UPLOAD_TIMEOUT)
                .build()
                .map_err(|e| AppInsightsError(e.to_string()))?;
            let retries = Arc::clone(health);
            let mut exporter =
                Exporter::new_from_connection_string(settings.connection_string.expose(), client)
                    .map_err(|e| AppInsightsError(e.to_string()))?
                    .with_retry_notify(move |_error, _delay| {
                        retries.retries.fetch_add(1, Ordering::Relaxed);
                    });
            if let Some(endpoint) = &settings.plain_http_endpoint {
                // Deprecated in favour of the connection string, which cannot say plain http.
                #[allow(deprecated)]
                {
                    exporter = exporter
                        .with_endpoint(endpoint)
                        .map_err(|e| AppInsightsError(e.to_string()))?;
                }
            }
            Ok(exporter)
        };
        let resource = Resource::builder()
            .with_service_name("sensor-anomaly")
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new(
                    "service.instance.id",
                    std::env::var("WEBSITE_INSTANCE_ID")
                        .or_else(|_| std::env::var("HOSTNAME"))
                        .unwrap_or_else(|_| format!("pid-{}", std::process::id())),
                ),
            ])
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(Counted {
                inner: exporter(&health)?,
                health: Arc::clone(&health),
            })
            .build();
        let reader = PeriodicReader::builder(Counted {
            inner: exporter(&health)?,
            health: Arc::clone(&health),
        })
        .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        Ok(AppInsights {
            tracer_provider,
            meter_provider,
            health,
        })
    }

    /// Flushes what is queued, waiting at most a few seconds.
    pub fn shutdown(&self) {
        if let Err(error) = self.tracer_provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "flushing spans at shutdown failed");
        }
        if let Err(error) = self.meter_provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "flushing metrics at shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Option<AppInsightsSettings>, AppInsightsSettingsError> {
        AppInsightsSettings::from_lookup(|name| {
            (name == CONNECTION_STRING).then(|| value.to_string())
        })
    }

    #[test]
    fn connection_strings_are_checked_without_echoing_them() {
        assert!(parse("").unwrap().is_none());
        let ok = parse("InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/").unwrap().unwrap();
        assert!(!format!("{ok:?}").contains("00000000"), "redacted in Debug");
        assert_eq!(ok.plain_http_endpoint, None);
        let local = parse("InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:9/")
            .unwrap()
            .unwrap();
        assert_eq!(
            local.plain_http_endpoint.as_deref(),
            Some("http://127.0.0.1:9/")
        );
        for (bad, expected) in [
            ("IngestionEndpoint=https://x/", "no `InstrumentationKey`"),
            (
                "InstrumentationKey=secret-key;IngestionEndpoint=ftp://x",
                "http(s) URL",
            ),
            ("InstrumentationKey", "Key=Value"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains(CONNECTION_STRING),
                "{err}"
            );
            assert!(!err.contains("secret-key"), "{err}");
        }
    }
}
