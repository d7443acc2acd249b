//! Every event, emitted once on metrics with both exporters on: each declared instrument shows
//! up in Prometheus and in OpenTelemetry under its declared name with exactly its declared label
//! keys, and nothing undeclared shows up in either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use super::*;
use crate::model::InService;
use crate::telemetry::app_insights::ExportHealth;
use crate::telemetry::metrics::{Metrics, INSTRUMENTS};
use domain::{Lineage, RecordError, ScoredPoint, ScoredWindow, TrackerState};
use pipeline::incidents::{Step, Tracker};
use pipeline::{IncidentOutcome, IncidentPolicy};
use ingress::host::BatchInfo;
use pipeline::{BatchSummary, FailureClass, StoreOperation};
use scoring::Model;
use sinks::StoreKind;

type Seen = Arc<Mutex<BTreeMap<String, BTreeSet<Vec<String>>>>>;

/// Keeps each exported metric's name and the label keys of its points.
#[derive(Clone, Default)]
struct Capture(Seen);

fn keys<'a>(attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<String> {
    let mut keys: Vec<String> = attributes.map(|kv| kv.key.to_string()).collect();
    keys.sort();
    keys
}

fn point_keys<T>(data: &MetricData<T>) -> Vec<Vec<String>> {
    match data {
        MetricData::Gauge(g) => g.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::Sum(s) => s.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::Histogram(h) => h.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::ExponentialHistogram(h) => {
            h.data_points().map(|p| keys(p.attributes())).collect()
        }
    }
}

impl PushMetricExporter for Capture {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut seen = self.0.lock().unwrap();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                let points = match metric.data() {
                    AggregatedMetrics::F64(d) => point_keys(d),
                    AggregatedMetrics::U64(d) => point_keys(d),
                    AggregatedMetrics::I64(d) => point_keys(d),
                };
                seen.entry(metric.name().to_string())
                    .or_default()
                    .extend(points);
            }
        }
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    /// As the Application Insights exporter sends them.
    fn temporality(&self) -> Temporality {
        Temporality::Delta
    }
}

fn model() -> InService {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default.onnx"));
    InService::new(
        Model::load_file(path).expect("default model"),
        crate::model::Origin::Packaged { sha256: String::new() },
        24,
    )
}

fn outcome(model: &InService) -> BatchOutcome {
    let m = model.get();
    let names = &m.info.feature_names;
    let window = domain::WindowRecord {
        device_id: "pump-1".into(),
        window_end: "2026-01-01T00:01:00Z".into(),
        window_end_ms: 1_767_225_660_000,
        features: vec![9.0; names.len()],
    };
    let scored: Vec<ScoredWindow> = m.score(std::slice::from_ref(&window)).unwrap();
    let lineage = Lineage::default();
    let letter = DeadLetter::new(
        &RecordError::NotJson("x".into()),
        0,
        None,
        &lineage,
        &domain::Excerpt::of("x"),
    );
    model.observe(&m.info.model_version, std::slice::from_ref(&window));
    let alert = Alert::new(&scored[0], &lineage);
    BatchOutcome {
        incidents: opened(&alert),
        alerts: vec![alert],
        dead_letters: vec![letter],
        summary: BatchSummary {
            events: 2,
            windows_scored: 1,
            anomalies: 1,
            inserted: 1,
            refused_by_kind: BTreeMap::from([(RejectionKind::NotJson, 1)]),
            diverted: 0,
            incident_messages: 0,
            incidents_skipped: false,
            model_version: m.info.model_version.clone(),
            batch: BatchInfo::default(),
            elapsed: Duration::from_millis(3),
        },
        points: Vec::new(),
        windows: vec![window],
        store_writes: vec![
            StoreWrite {
                store: StoreKind::Sqlite,
                operation: StoreOperation::InsertAnomalies,
                rows: 1,
                elapsed: Duration::from_millis(1),
                failure: None,
            },
            StoreWrite {
                store: StoreKind::Sqlite,
                operation: StoreOperation::InsertAnomalies,
                rows: 1,
                elapsed: Duration::from_millis(1),
                failure: Some(FailureClass::Transient),
            },
        ],
    }
}

/// The incident `alert`'s window opens (one anomalous window opens one under this policy),
/// made by this batch.
fn opened(alert: &Alert) -> IncidentOutcome {
    let policy = IncidentPolicy {
        open_at: domain::Severity::Low,
        ..IncidentPolicy::default()
    };
    let mut state = TrackerState::new(&alert.device_id, &alert.model_version);
    let point = ScoredPoint {
        device_id: alert.device_id.clone(),
        window_end: alert.window_end.clone(),
        window_end_ms: 1_767_225_660_000,
        score: alert.score,
        severity: domain::Severity::Low.max(alert.severity),
        contributions: domain::ChannelValues::new(
            vec!["vibration".to_string()].into(),
            vec![alert.score],
        ),
    };
    let Step::Taken(messages) = (Tracker { policy: &policy, state: &mut state }).observe(&point, Some(alert)) else {
        panic!("a first window is never late");
    };
    assert_eq!(messages.len(), 1, "{messages:?}");
    IncidentOutcome {
        made: vec![true],
        messages,
        ..IncidentOutcome::default()
    }
}

/// Prometheus series name → the label-key sets seen.
fn prometheus_series(text: &str) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let mut out: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let head = line.split(' ').next().unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let mut keys: Vec<String> = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| l.split('=').next().unwrap().to_string())
            .filter(|k| k != "le")
            .collect();
        keys.sort();
        out.entry(name.to_string()).or_default().insert(keys);
    }
    out
}

#[test]
fn every_event_reaches_both_exporters_with_the_declared_names_and_labels() {
    let capture = Capture::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(capture.clone()).build())
        .build();
    let model = Arc::new(model());
    let health = Arc::new(ExportHealth::default());
    health.span_failures.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    let metrics = Metrics::with_export(
        Arc::clone(&model),
        Some(provider.meter("test")),
        Some(health),
    );

    // Every event there is.
    let outcome = outcome(&model);
    BatchScored(&outcome).emit(&metrics);
    BatchFailed(&outcome.store_writes).emit(&metrics);
    WindowsScored { windows: 3 }.emit(&metrics);
    for function in Function::ALL {
        for outcome in Outcome::ALL {
            InvocationFinished { function, outcome }.emit(&metrics);
        }
    }
    ModelReloaded::Replaced { from: "a", to: "b", source: "f" }.emit(&metrics);
    let error = std::io::Error::other("bad file");
    ModelReloaded::Refused { serving: "b", error: &error }.emit(&metrics);
    ModelFollowed::Switched { from: "a", to: "b", source: "blob", took: Duration::from_millis(5) }.emit(&metrics);
    ModelFollowed::ChallengerSet { model_version: "c", blob: "blob" }.emit(&metrics);
    ModelFollowed::ChallengerCleared.emit(&metrics);
    ModelFollowed::Refused { role: Role::Challenger, model_version: "c", error: &error }.emit(&metrics);
    ModelFollowed::Unreachable { store: "http://store/models", error: &error }.emit(&metrics);
    let comparison = crate::shadow::Comparison { counts: [1, 2, 3, 4], ..Default::default() };
    ShadowScored { challenger_version: "c", comparison: &comparison }.emit(&metrics);
    ShadowFailed { challenger_version: "c", error: &error }.emit(&metrics);
    let recommendation = crate::retrain::Recommendation {
        model_version: "b".into(),
        drifting_since_ms: 0,
        features: vec![("temperature_mean".into(), 0.4)],
    };
    RetrainingRecommended(&recommendation).emit(&metrics);

    let prometheus = prometheus_series(&metrics.render());
    provider.force_flush().unwrap();
    let otel = capture.0.lock().unwrap().clone();

    for instrument in INSTRUMENTS {
        let mut declared: Vec<String> = instrument.labels.iter().map(|s| s.to_string()).collect();
        declared.sort();
        let expected = BTreeSet::from([declared]);
        assert_eq!(
            prometheus.get(&instrument.prometheus_name()),
            Some(&expected),
            "Prometheus {}: {prometheus:#?}",
            instrument.prometheus_name()
        );
        assert_eq!(
            otel.get(&instrument.otel_name()),
            Some(&expected),
            "OpenTelemetry {}: {otel:#?}",
            instrument.otel_name()
        );
    }
    let declared: BTreeSet<String> = INSTRUMENTS.iter().map(|i| i.prometheus_name()).collect();
    let extra: Vec<_> = prometheus.keys().filter(|k| !declared.contains(*k)).collect();
    assert!(extra.is_empty(), "undeclared Prometheus series {extra:?}");
    let declared: BTreeSet<String> = INSTRUMENTS.iter().map(|i| i.otel_name()).collect();
    let extra: Vec<_> = otel.keys().filter(|k| !declared.contains(*k)).collect();
    assert!(extra.is_empty(), "undeclared OpenTelemetry metrics {extra:?}");
}

#[test]
fn a_republished_incident_message_is_not_counted_again() {
    let model = Arc::new(model());
    let metrics = Metrics::with_export(Arc::clone(&model), None, None);
    let mut outcome = outcome(&model);
    BatchScored(&outcome).emit(&metrics);
    assert_eq!(metrics.total(&crate::telemetry::metrics::INCIDENTS), 1);
    // The host re-delivers the batch: the stored message goes out again, made elsewhere.
    outcome.incidents.made = vec![false];
    BatchScored(&outcome).emit(&metrics);
    assert_eq!(metrics.total(&crate::telemetry::metrics::INCIDENTS), 1);
}

#[test]
fn a_reload_changes_the_model_both_exporters_report() {
    let capture = Capture::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(capture.clone()).build())
        .build();
    let model = Arc::new(model());
    let metrics = Metrics::with_export(Arc::clone(&model), Some(provider.meter("test")), None);
    let before = model.get().info.model_version.clone();
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default.onnx"));
    let mut replacement = Model::load_file(path).unwrap();
    replacement.info.model_version = format!("{before}-next");
    model.replace(replacement, crate::model::Origin::Reload { source: "test".into() });
    let text = metrics.render();
    assert!(text.contains(&format!("model_version=\"{before}-next\"")), "{text}");
    assert!(!text.contains(&format!("model_version=\"{before}\"")), "{text}");
    provider.force_flush().unwrap();
    // The OpenTelemetry gauge reads the same model: Application Insights sees the new one too.
    let otel = capture.0.lock().unwrap();
    assert!(otel.contains_key("sensor_anomaly.model_info"), "{otel:?}");
}
