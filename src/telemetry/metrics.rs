//! Prometheus metrics served at `GET /api/metrics`. Labels come from closed sets (rejection
//! kinds, severities, outcomes), never from free text.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::{RejectionKind, Severity};

type Labels = Vec<(String, String)>;

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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sensor_anomaly");
        let invocations = Family::<Labels, Counter>::default();
        let windows_scored = Counter::default();
        let anomalies = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let model_reloads = Family::<Labels, Counter>::default();
        let model_info = Family::<Labels, Gauge>::default();
        let store_errors = Family::<Labels, Counter>::default();
        registry.register(
            "invocations",
            "Function invocations by function and outcome",
            invocations.clone(),
        );
        registry.register("windows_scored", "Windows scored", windows_scored.clone());
        registry.register(
            "anomalies",
            "Anomalous windows by severity",
            anomalies.clone(),
        );
        registry.register(
            "rejected_records",
            "Events or records refused (dead-lettered) by reason",
            rejected.clone(),
        );
        registry.register(
            "batch_duration_seconds",
            "Time to process one ScoreWindows batch",
            batch_seconds.clone(),
        );
        registry.register(
            "model_reloads",
            "Model reload attempts by outcome",
            model_reloads.clone(),
        );
        registry.register(
            "model_info",
            "The model being served (value 1)",
            model_info.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store writes by class (transient: the host retries; permanent)",
            store_errors.clone(),
        );
        Metrics {
            registry,
            invocations,
            windows_scored,
            anomalies,
            rejected,
            batch_seconds,
            model_reloads,
            model_info,
            store_errors,
        }
    }

    pub fn invocation(&self, function: &str, outcome: &str) {
        self.invocations
            .get_or_create(&labels(&[("function", function), ("outcome", outcome)]))
            .inc();
    }

    pub fn rejected(&self, kind: RejectionKind) {
        self.rejected
            .get_or_create(&labels(&[("reason", kind.as_str())]))
            .inc();
    }

    pub fn anomaly(&self, severity: Severity) {
        self.anomalies
            .get_or_create(&labels(&[("severity", severity.as_str())]))
            .inc();
    }

    pub fn store_error(&self, transient: bool) {
        let class = if transient { "transient" } else { "permanent" };
        self.store_errors
            .get_or_create(&labels(&[("class", class)]))
            .inc();
    }

    pub fn set_model(&self, version: &str, detector: &str) {
        self.model_info.clear();
        self.model_info
            .get_or_create(&labels(&[("version", version), ("detector", detector)]))
            .set(1);
    }

    pub fn render(&self) -> String {
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
