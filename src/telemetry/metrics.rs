//! Metrics, recorded once and sent two ways: Prometheus text at `GET /api/metrics` (always),
//! and OpenTelemetry instruments exported to Application Insights as customMetrics (only when
//! the exporter is on; otherwise no instrument exists and nothing is recorded for it). Labels
//! come from closed sets (rejection kinds, severities, outcomes, channels of the model), never
//! from free text.
//!
//! The Application Insights names (`sensor_anomaly.*`) are what the workbook and the alert
//! queries read; [`OTEL_METRIC_NAMES`] lists them and a test holds the queries to that list.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use opentelemetry::KeyValue;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::app_insights::ExportHealth;
use crate::domain::{RejectionKind, Severity};

type Labels = Vec<(String, String)>;

/// The customMetrics names this handler emits, and their dimensions.
pub const OTEL_METRIC_NAMES: [(&str, &[&str]); 9] = [
    ("sensor_anomaly.invocations", &["function", "outcome"]),
    ("sensor_anomaly.windows_scored", &[]),
    ("sensor_anomaly.anomalies", &["severity", "top_channel"]),
    ("sensor_anomaly.refused", &["kind"]),
    ("sensor_anomaly.batch_duration_ms", &[]),
    ("sensor_anomaly.store_write_duration_ms", &["store"]),
    ("sensor_anomaly.store_write_failures", &["store", "class"]),
    ("sensor_anomaly.model_info", &["model_version", "detector"]),
    ("sensor_anomaly.drift_psi", &["feature", "model_version"]),
];

struct Instruments {
    invocations: OtelCounter<u64>,
    windows_scored: OtelCounter<u64>,
    anomalies: OtelCounter<u64>,
    refused: OtelCounter<u64>,
    batch_ms: OtelHistogram<f64>,
    store_write_ms: OtelHistogram<f64>,
    store_failures: OtelCounter<u64>,
}

/// Per-feature PSI of the model in service, read when metrics are collected.
pub type DriftSource = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub invocations: Family<Labels, Counter>,
    pub windows_scored: Counter,
    pub anomalies: Family<Labels, Counter>,
    pub rejected: Family<Labels, Counter>,
    pub batch_seconds: Histogram,
    pub model_reloads: Family<Labels, Counter>,
    pub model_info: Family<Labels, Gauge>,
    pub store_errors: Family<Labels, Counter>,
    pub store_write_seconds: Histogram,
    drift_psi:
        Family<Labels, prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>>,
    export_failures: Family<Labels, Counter>,
    export_health: Option<Arc<ExportHealth>>,
    model: Arc<Mutex<(String, String)>>,
    drift: Arc<Mutex<Option<DriftSource>>>,
    otel: Option<Instruments>,
    refused_total: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn kv(pairs: &[(&'static str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.to_string()))
        .collect()
}

impl Metrics {
    /// Prometheus only.
    pub fn new() -> Self {
        Self::with_export(None, None)
    }

    /// Prometheus, and OpenTelemetry instruments on `meter` when the exporter is on.
    pub fn with_export(meter: Option<Meter>, export_health: Option<Arc<ExportHealth>>) -> Self {
        let mut registry = Registry::with_prefix("sensor_anomaly");
        let metrics = Metrics {
            invocations: Family::default(),
            windows_scored: Counter::default(),
            anomalies: Family::default(),
            rejected: Family::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            model_reloads: Family::default(),
            model_info: Family::default(),
            store_errors: Family::default(),
            store_write_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 14)),
            drift_psi: Family::default(),
            export_failures: Family::default(),
            export_health,
            model: Arc::new(Mutex::new((String::new(), String::new()))),
            drift: Arc::new(Mutex::new(None)),
            otel: None,
            refused_total: std::sync::atomic::AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "invocations",
            "Function invocations by function and outcome",
            metrics.invocations.clone(),
        );
        registry.register(
            "windows_scored",
            "Windows scored",
            metrics.windows_scored.clone(),
        );
        registry.register(
            "anomalies",
            "Anomalous windows by severity",
            metrics.anomalies.clone(),
        );
        registry.register(
            "rejected_records",
            "Events or records refused (dead-lettered) by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "batch_duration_seconds",
            "Time to process one ScoreWindows batch",
            metrics.batch_seconds.clone(),
        );
        registry.register(
            "model_reloads",
            "Model reload attempts by outcome",
            metrics.model_reloads.clone(),
        );
        registry.register(
            "model_info",
            "The model being served (value 1)",
            metrics.model_info.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store writes by class (transient: the host retries; permanent)",
            metrics.store_errors.clone(),
        );
        registry.register(
            "store_write_duration_seconds",
            "Time to write one batch's anomalies",
            metrics.store_write_seconds.clone(),
        );
        registry.register(
            "drift_psi",
            "Population Stability Index of each feature over the recent windows",
            metrics.drift_psi.clone(),
        );
        registry.register(
            "telemetry_export_failures",
            "Application Insights exports that failed, by signal (and retries)",
            metrics.export_failures.clone(),
        );
        let mut metrics = Metrics {
            registry,
            ..metrics
        };
        if let Some(meter) = meter {
            metrics.otel = Some(metrics.instruments(&meter));
        }
        metrics
    }

    fn instruments(&self, meter: &Meter) -> Instruments {
        let model = Arc::clone(&self.model);
        meter
            .u64_observable_gauge("sensor_anomaly.model_info")
            .with_description("The model in service (value 1)")
            .with_callback(move |observer| {
                if let Ok(m) = model.lock() {
                    observer.observe(1, &kv(&[("model_version", &m.0), ("detector", &m.1)]));
                }
            })
            .build();
        let drift = Arc::clone(&self.drift);
        let model = Arc::clone(&self.model);
        meter
            .f64_observable_gauge("sensor_anomaly.drift_psi")
            .with_description("Population Stability Index of each feature over the recent windows")
            .with_callback(move |observer| {
                let source = drift.lock().ok().and_then(|d| d.clone());
                let version = model.lock().map(|m| m.0.clone()).unwrap_or_default();
                if let Some(source) = source {
                    for (feature, psi) in source() {
                        observer.observe(
                            psi,
                            &kv(&[("feature", &feature), ("model_version", &version)]),
                        );
                    }
                }
            })
            .build();
        Instruments {
            invocations: meter.u64_counter("sensor_anomaly.invocations").build(),
            windows_scored: meter.u64_counter("sensor_anomaly.windows_scored").build(),
            anomalies: meter.u64_counter("sensor_anomaly.anomalies").build(),
            refused: meter.u64_counter("sensor_anomaly.refused").build(),
            batch_ms: meter
                .f64_histogram("sensor_anomaly.batch_duration_ms")
                .with_unit("ms")
                .build(),
            store_write_ms: meter
                .f64_histogram("sensor_anomaly.store_write_duration_ms")
                .with_unit("ms")
                .build(),
            store_failures: meter
                .u64_counter("sensor_anomaly.store_write_failures")
                .build(),
        }
    }

    /// Whether OpenTelemetry instruments are recording (the exporter is on).
    pub fn exporting(&self) -> bool {
        self.otel.is_some()
    }

    pub fn invocation(&self, function: &str, outcome: &str) {
        self.invocations
            .get_or_create(&labels(&[("function", function), ("outcome", outcome)]))
            .inc();
        if let Some(otel) = &self.otel {
            otel.invocations
                .add(1, &kv(&[("function", function), ("outcome", outcome)]));
        }
    }

    pub fn scored(&self, windows: u64) {
        self.windows_scored.inc_by(windows);
        if let Some(otel) = &self.otel {
            otel.windows_scored.add(windows, &[]);
        }
    }

    /// Refused events and records since start (all kinds).
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    pub fn rejected(&self, kind: RejectionKind) {
        self.rejected_n(kind, 1);
    }

    /// `count` refusals of one kind.
    pub fn rejected_n(&self, kind: RejectionKind, count: u64) {
        self.refused_total.fetch_add(count, Ordering::Relaxed);
        self.rejected
            .get_or_create(&labels(&[("reason", kind.as_str())]))
            .inc_by(count);
        if let Some(otel) = &self.otel {
            otel.refused.add(count, &kv(&[("kind", kind.as_str())]));
        }
    }

    /// One anomalous window. Dimensions come from closed sets only (severity, the model's
    /// channels): device ids are unbounded, so they go to traces ("anomalous devices"), which the
    /// workbook's per-device view reads.
    pub fn anomaly(&self, severity: Severity, top_channel: &str) {
        self.anomalies
            .get_or_create(&labels(&[("severity", severity.as_str())]))
            .inc();
        if let Some(otel) = &self.otel {
            otel.anomalies.add(
                1,
                &kv(&[
                    ("severity", severity.as_str()),
                    ("top_channel", top_channel),
                ]),
            );
        }
    }

    pub fn batch_duration(&self, seconds: f64) {
        self.batch_seconds.observe(seconds);
        if let Some(otel) = &self.otel {
            otel.batch_ms.record(seconds * 1e3, &[]);
        }
    }

    /// One store write: its duration, and its failure class when it failed.
    pub fn store_write(&self, store: &'static str, seconds: f64, failure: Option<bool>) {
        self.store_write_seconds.observe(seconds);
        if let Some(transient) = failure {
            let class = if transient { "transient" } else { "permanent" };
            self.store_errors
                .get_or_create(&labels(&[("class", class)]))
                .inc();
            if let Some(otel) = &self.otel {
                otel.store_failures
                    .add(1, &kv(&[("store", store), ("class", class)]));
            }
        }
        if let Some(otel) = &self.otel {
            otel.store_write_ms
                .record(seconds * 1e3, &kv(&[("store", store)]));
        }
    }

    pub fn set_model(&self, version: &str, detector: &str) {
        self.model_info.clear();
        self.model_info
            .get_or_create(&labels(&[("version", version), ("detector", detector)]))
            .set(1);
        if let Ok(mut m) = self.model.lock() {
            *m = (version.to_string(), detector.to_string());
        }
    }

    /// Where the drift gauges read the per-feature PSI from (the pipeline's monitor).
    pub fn set_drift_source(&self, source: DriftSource) {
        if let Ok(mut drift) = self.drift.lock() {
            *drift = Some(source);
        }
    }

    pub fn render(&self) -> String {
        // Gauges computed on scrape: drift of the model in service, export health.
        let source = self.drift.lock().ok().and_then(|d| d.clone());
        self.drift_psi.clear();
        if let Some(source) = source {
            for (feature, psi) in source() {
                self.drift_psi
                    .get_or_create(&labels(&[("feature", &feature)]))
                    .set(psi);
            }
        }
        if let Some(health) = &self.export_health {
            for (signal, value) in [
                ("spans", &health.span_failures),
                ("metrics", &health.metric_failures),
                ("retries", &health.retries),
            ] {
                let counter = self
                    .export_failures
                    .get_or_create(&labels(&[("signal", signal)]));
                let seen = counter.get();
                let now = value.load(Ordering::Relaxed);
                if now > seen {
                    counter.inc_by(now - seen);
                }
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
