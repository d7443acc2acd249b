//! Every metric, declared once ([`INSTRUMENTS`]) and sent two ways from that declaration:
//! Prometheus text at `GET /api/metrics` (always), and OpenTelemetry instruments exported to
//! Application Insights as customMetrics (only when the exporter is on). Both exporters take the
//! name, the help text and the label keys from the same [`Instrument`], so they cannot disagree:
//! `refused{kind}` is `sensor_anomaly_refused_total{kind=...}` in Prometheus and
//! `sensor_anomaly.refused` with dimension `kind` in Application Insights. Durations follow each
//! exporter's convention: seconds in Prometheus (`_seconds`), milliseconds in Application
//! Insights (`_ms`), which is what the workbook reads.
//!
//! Nothing outside [`super::events`] records a metric: each event type records its series and
//! writes its log line in one place. Labels come from closed sets (enums, the model's channels
//! and features), never from free text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use opentelemetry::KeyValue;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use super::app_insights::ExportHealth;
use crate::model::InService;

/// The prefix of every name: `sensor_anomaly_` in Prometheus, `sensor_anomaly.` in OpenTelemetry.
pub const PREFIX: &str = "sensor_anomaly";

/// How an instrument records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Counts things that happen.
    Counter,
    /// A duration in seconds; buckets start at `first` seconds and double `count` times.
    Duration { first: f64, count: u16 },
    /// A value read when metrics are collected (from the model in service, the exporter).
    ObservedGauge(Observed),
    /// A running total read when metrics are collected. (In Application Insights, which takes
    /// deltas, the increase of an interval whose export failed is lost with that export:
    /// Prometheus has the whole count.)
    ObservedCounter(Observed),
}

/// What an observed instrument reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    ModelInfo,
    DriftPsi,
    ExportFailures,
}

/// One metric: its name without prefix or unit suffix, its help text and its label keys.
#[derive(Debug, PartialEq)]
pub struct Instrument {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub kind: Kind,
}

impl Instrument {
    /// The series name in Prometheus text, as a scrape shows it.
    pub fn prometheus_name(&self) -> String {
        match self.kind {
            Kind::Counter | Kind::ObservedCounter(_) => format!("{PREFIX}_{}_total", self.name),
            Kind::Duration { .. } => format!("{PREFIX}_{}_seconds", self.name),
            Kind::ObservedGauge(_) => format!("{PREFIX}_{}", self.name),
        }
    }

    /// The customMetrics name in Application Insights.
    pub fn otel_name(&self) -> String {
        match self.kind {
            Kind::Duration { .. } => format!("{PREFIX}.{}_ms", self.name),
            _ => format!("{PREFIX}.{}", self.name),
        }
    }
}

pub const INVOCATIONS: Instrument = Instrument {
    name: "invocations",
    help: "Function invocations by function and outcome",
    labels: &["function", "outcome"],
    kind: Kind::Counter,
};
pub const WINDOWS_SCORED: Instrument = Instrument {
    name: "windows_scored",
    help: "Windows scored",
    labels: &[],
    kind: Kind::Counter,
};
/// Device ids are unbounded, so they are no dimension: they go to a trace per batch.
pub const ANOMALIES: Instrument = Instrument {
    name: "anomalies",
    help: "Anomalous windows by severity and the channel that explains them",
    labels: &["severity", "top_channel"],
    kind: Kind::Counter,
};
/// Counted once per transition (a re-published message of a re-delivered window is not counted
/// again); the incident itself goes to a trace ([`INCIDENT_TRACE`](super::events::INCIDENT_TRACE)).
pub const INCIDENTS: Instrument = Instrument {
    name: "incidents",
    help: "Incident transitions (opened, escalated, resolved) by the incident's peak severity",
    labels: &["transition", "severity"],
    kind: Kind::Counter,
};
pub const REFUSED: Instrument = Instrument {
    name: "refused",
    help: "Events or records refused (dead-lettered or counted) by kind",
    labels: &["kind"],
    kind: Kind::Counter,
};
pub const BATCH_DURATION: Instrument = Instrument {
    name: "batch_duration",
    help: "Time to process one ScoreWindows batch",
    labels: &[],
    kind: Kind::Duration {
        first: 0.0005,
        count: 14,
    },
};
pub const STORE_WRITE_DURATION: Instrument = Instrument {
    name: "store_write_duration",
    help: "Time of one store write",
    labels: &["store"],
    kind: Kind::Duration {
        first: 0.0002,
        count: 14,
    },
};
pub const STORE_WRITE_FAILURES: Instrument = Instrument {
    name: "store_write_failures",
    help: "Failed store writes by class (transient: the host retries; permanent)",
    labels: &["store", "class"],
    kind: Kind::Counter,
};
pub const MODEL_RELOADS: Instrument = Instrument {
    name: "model_reloads",
    help: "Model reload attempts by outcome",
    labels: &["outcome"],
    kind: Kind::Counter,
};
pub const MODEL_FOLLOW: Instrument = Instrument {
    name: "model_follow",
    help: "What following the model store's pointer did, by role (champion, challenger, pointer) and outcome (switched, set, cleared, refused, unreachable)",
    labels: &["role", "outcome"],
    kind: Kind::Counter,
};
/// Per window of every batch the challenger scored in shadow.
pub const SHADOW_WINDOWS: Instrument = Instrument {
    name: "shadow_windows",
    help: "Windows scored by the challenger in shadow, by agreement with the champion (both, champion_only, challenger_only, neither; failed: batches it could not score)",
    labels: &["agreement", "challenger_version"],
    kind: Kind::Counter,
};
/// Once per unbroken run of drift as long as `ANOMALY_RETRAIN_AFTER_HOURS` (the alert rule
/// `retraining-recommended` fires on it).
pub const RETRAINING_RECOMMENDED: Instrument = Instrument {
    name: "retraining_recommended",
    help: "Drift lasted ANOMALY_RETRAIN_AFTER_HOURS: retraining the model in service is recommended",
    labels: &["model_version"],
    kind: Kind::Counter,
};
pub const MODEL_INFO: Instrument = Instrument {
    name: "model_info",
    help: "The model in service (value 1)",
    labels: &["model_version", "detector"],
    kind: Kind::ObservedGauge(Observed::ModelInfo),
};
pub const DRIFT_PSI: Instrument = Instrument {
    name: "drift_psi",
    help: "Population Stability Index of each feature over the recent windows",
    labels: &["feature", "model_version"],
    kind: Kind::ObservedGauge(Observed::DriftPsi),
};
pub const TELEMETRY_EXPORT_FAILURES: Instrument = Instrument {
    name: "telemetry_export_failures",
    help: "Application Insights exports that failed, by signal (and retries)",
    labels: &["signal"],
    kind: Kind::ObservedCounter(Observed::ExportFailures),
};

/// Every metric this handler emits, in both exporters.
pub const INSTRUMENTS: [&Instrument; 15] = [
    &INVOCATIONS,
    &WINDOWS_SCORED,
    &ANOMALIES,
    &INCIDENTS,
    &REFUSED,
    &BATCH_DURATION,
    &STORE_WRITE_DURATION,
    &STORE_WRITE_FAILURES,
    &MODEL_RELOADS,
    &MODEL_FOLLOW,
    &SHADOW_WINDOWS,
    &RETRAINING_RECOMMENDED,
    &MODEL_INFO,
    &DRIFT_PSI,
    &TELEMETRY_EXPORT_FAILURES,
];

type Labels = Vec<(&'static str, String)>;

fn labels(instrument: &Instrument, values: &[&str]) -> Labels {
    // A wrong count would be cut short by `zip` in both exporters alike: refuse it loudly.
    assert_eq!(instrument.labels.len(), values.len(), "{}", instrument.name);
    instrument
        .labels
        .iter()
        .zip(values)
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
}

fn key_values(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// Histogram buckets of one instrument.
#[derive(Clone, Debug)]
struct Buckets {
    first: f64,
    count: u16,
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.first, 2.0, self.count))
    }
}

/// A Prometheus family, or its one series when the instrument has no labels (rendered without
/// an empty `{}`).
enum Prom<M, C = fn() -> M> {
    Plain(M),
    Labelled(Family<Labels, M, C>),
}

impl<M, C> Prom<M, C>
where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
    C: MetricConstructor<M> + Clone + Send + Sync + std::fmt::Debug + 'static,
{
    fn register(registry: &mut Registry, instrument: &Instrument, unit: Option<Unit>, make: C) -> Self {
        let (name, help) = (instrument.name, instrument.help);
        let prom = if instrument.labels.is_empty() {
            Prom::Plain(make.new_metric())
        } else {
            Prom::Labelled(Family::new_with_constructor(make))
        };
        match (&prom, unit) {
            (Prom::Plain(m), Some(unit)) => registry.register_with_unit(name, help, unit, m.clone()),
            (Prom::Plain(m), None) => registry.register(name, help, m.clone()),
            (Prom::Labelled(f), Some(unit)) => registry.register_with_unit(name, help, unit, f.clone()),
            (Prom::Labelled(f), None) => registry.register(name, help, f.clone()),
        }
        prom
    }

    fn with<R>(&self, labels: &Labels, f: impl FnOnce(&M) -> R) -> R {
        match self {
            Prom::Plain(m) => f(m),
            Prom::Labelled(family) => f(&family.get_or_create(labels)),
        }
    }
}

enum Series {
    Counter {
        prometheus: Prom<Counter>,
        otel: Option<OtelCounter<u64>>,
        total: AtomicU64,
    },
    Duration {
        prometheus: Prom<Histogram, Buckets>,
        otel: Option<OtelHistogram<f64>>,
    },
    ObservedGauge {
        prometheus: Family<Labels, Gauge<f64, AtomicU64>>,
    },
    ObservedCounter {
        prometheus: Family<Labels, Counter>,
    },
}

/// Where the observed instruments read their values: the same function feeds both exporters.
#[derive(Clone)]
struct Sources {
    model: Arc<InService>,
    export_health: Option<Arc<ExportHealth>>,
}

impl Sources {
    /// The current points of an observed instrument: label values and value.
    fn observe(&self, instrument: &Instrument) -> Vec<(Labels, f64)> {
        let observed = match instrument.kind {
            Kind::ObservedGauge(o) | Kind::ObservedCounter(o) => o,
            Kind::Counter | Kind::Duration { .. } => return Vec::new(),
        };
        match observed {
            Observed::ModelInfo => {
                let model = self.model.get();
                vec![(
                    labels(
                        instrument,
                        &[&model.info.model_version, &model.info.detector],
                    ),
                    1.0,
                )]
            }
            Observed::DriftPsi => {
                let version = self.model.get().info.model_version.clone();
                self.model
                    .psi()
                    .into_iter()
                    .map(|(feature, psi)| (labels(instrument, &[&feature, &version]), psi))
                    .collect()
            }
            Observed::ExportFailures => match &self.export_health {
                Some(health) => [
                    ("spans", &health.span_failures),
                    ("metrics", &health.metric_failures),
                    ("retries", &health.retries),
                ]
                .into_iter()
                .map(|(signal, n)| {
                    (
                        labels(instrument, &[signal]),
                        n.load(Ordering::Relaxed) as f64,
                    )
                })
                .collect(),
                None => Vec::new(),
            },
        }
    }
}

/// The metrics of this process. Recorded only through [`super::events`].
pub struct Metrics {
    registry: Registry,
    series: BTreeMap<&'static str, Series>,
    sources: Sources,
}

impl Metrics {
    /// Prometheus only.
    pub fn new(model: Arc<InService>) -> Self {
        Self::with_export(model, None, None)
    }

    /// Prometheus, and OpenTelemetry instruments on `meter` when the exporter is on.
    pub fn with_export(
        model: Arc<InService>,
        meter: Option<Meter>,
        export_health: Option<Arc<ExportHealth>>,
    ) -> Self {
        let sources = Sources {
            model,
            export_health,
        };
        let mut registry = Registry::with_prefix(PREFIX);
        let mut series = BTreeMap::new();
        for instrument in INSTRUMENTS {
            let (name, help) = (instrument.name, instrument.help);
            let one = match instrument.kind {
                Kind::Counter => {
                    let prometheus = Prom::register(
                        &mut registry,
                        instrument,
                        None,
                        Counter::default as fn() -> Counter,
                    );
                    Series::Counter {
                        prometheus,
                        otel: meter.as_ref().map(|m| {
                            m.u64_counter(instrument.otel_name())
                                .with_description(help)
                                .build()
                        }),
                        total: AtomicU64::new(0),
                    }
                }
                Kind::Duration { first, count } => {
                    let prometheus = Prom::register(
                        &mut registry,
                        instrument,
                        Some(Unit::Seconds),
                        Buckets { first, count },
                    );
                    Series::Duration {
                        prometheus,
                        otel: meter.as_ref().map(|m| {
                            m.f64_histogram(instrument.otel_name())
                                .with_description(help)
                                .with_unit("ms")
                                .build()
                        }),
                    }
                }
                Kind::ObservedGauge(_) => {
                    let prometheus = Family::<Labels, Gauge<f64, AtomicU64>>::default();
                    registry.register(name, help, prometheus.clone());
                    if let Some(meter) = &meter {
                        let sources = sources.clone();
                        meter
                            .f64_observable_gauge(instrument.otel_name())
                            .with_description(help)
                            .with_callback(move |observer| {
                                for (labels, value) in sources.observe(instrument) {
                                    observer.observe(value, &key_values(&labels));
                                }
                            })
                            .build();
                    }
                    Series::ObservedGauge { prometheus }
                }
                Kind::ObservedCounter(_) => {
                    let prometheus = Family::<Labels, Counter>::default();
                    registry.register(name, help, prometheus.clone());
                    if let Some(meter) = &meter {
                        let sources = sources.clone();
                        meter
                            .u64_observable_counter(instrument.otel_name())
                            .with_description(help)
                            .with_callback(move |observer| {
                                for (labels, value) in sources.observe(instrument) {
                                    observer.observe(value as u64, &key_values(&labels));
                                }
                            })
                            .build();
                    }
                    Series::ObservedCounter { prometheus }
                }
            };
            series.insert(instrument.name, one);
        }
        Metrics {
            registry,
            series,
            sources,
        }
    }

    /// Adds `n` to a counter.
    pub(super) fn add(&self, instrument: &Instrument, values: &[&str], n: u64) {
        if let Some(Series::Counter {
            prometheus,
            otel,
            total,
        }) = self.series.get(instrument.name)
        {
            let labels = labels(instrument, values);
            if let Some(otel) = otel {
                otel.add(n, &key_values(&labels));
            }
            prometheus.with(&labels, |c| c.inc_by(n));
            total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records a duration.
    pub(super) fn duration(&self, instrument: &Instrument, values: &[&str], seconds: f64) {
        if let Some(Series::Duration { prometheus, otel }) = self.series.get(instrument.name) {
            let labels = labels(instrument, values);
            if let Some(otel) = otel {
                otel.record(seconds * 1e3, &key_values(&labels));
            }
            prometheus.with(&labels, |h| h.observe(seconds));
        }
    }

    /// A counter's total since start, over all its labels.
    pub fn total(&self, instrument: &Instrument) -> u64 {
        match self.series.get(instrument.name) {
            Some(Series::Counter { total, .. }) => total.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// The Prometheus text exposition; observed instruments are read now.
    pub fn render(&self) -> String {
        for instrument in INSTRUMENTS {
            match self.series.get(instrument.name) {
                Some(Series::ObservedGauge { prometheus }) => {
                    prometheus.clear();
                    for (labels, value) in self.sources.observe(instrument) {
                        prometheus.get_or_create(&labels).set(value);
                    }
                }
                Some(Series::ObservedCounter { prometheus }) => {
                    for (labels, value) in self.sources.observe(instrument) {
                        let counter = prometheus.get_or_create(&labels);
                        let (seen, now) = (counter.get(), value as u64);
                        if now > seen {
                            counter.inc_by(now - seen);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_labels_are_snake_case() {
        let mut names: Vec<_> = INSTRUMENTS.iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), INSTRUMENTS.len());
        for instrument in INSTRUMENTS {
            for key in instrument.labels {
                assert!(key.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{key}");
            }
            assert!(instrument.otel_name().starts_with("sensor_anomaly."));
        }
    }
}
