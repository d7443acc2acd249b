//! The pipeline without a server: real ONNX Runtime and the default model, an in-memory store.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::*;
use ingress::host::{self, InvocationRequest, ALERTS_OUTPUT, DEAD_LETTER_OUTPUT};
use domain::{RejectionKind, ALERT_SCHEMA_VERSION};
use sinks::{HistoryQuery, MemoryStore, StoreFuture};

fn model() -> Model {
    Model::load_file(&Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("models/default.onnx"))
        .expect("default model loads")
}

fn pipeline_with(store: Arc<dyn AnomalyStore>) -> Pipeline {
    Pipeline::new(store, PipelineOptions::default())
}

/// One invocation through the host protocol and the pipeline, as the edge runs it.
async fn run(pipeline: &Pipeline, request: &InvocationRequest) -> Result<BatchOutcome, BatchFailed> {
    let events = host::trigger_events(request, &pipeline.options().trigger_binding)
        .map_err(PipelineError::from)?;
    let batch = BatchInfo::of(&events, request);
    pipeline.score_batch(&model(), &events, batch).await
}

/// A window at the training means (normal), optionally with `channel` shifted far up.
fn window(model: &Model, device: &str, minute: u32, shifted: Option<&str>) -> String {
    let mut map = Map::new();
    map.insert("device_id".into(), json!(device));
    map.insert(
        "window_end".into(),
        json!(format!("2026-01-01T00:{minute:02}:00Z")),
    );
    for ((name, mean), sd) in model
        .info
        .feature_names
        .iter()
        .zip(&model.info.feature_mean)
        .zip(&model.info.feature_std)
    {
        let off_stat = !name.ends_with("_std");
        let shift = match shifted {
            Some(channel) if name.starts_with(channel) && off_stat => 40.0 * sd.max(1.0),
            _ => 0.0,
        };
        map.insert(name.clone(), json!(mean + shift));
    }
    Value::Object(map).to_string()
}

fn request(bodies: &[String], first_sequence: i64) -> InvocationRequest {
    let value = host::many_string_invocation(
        "events",
        bodies,
        "2",
        first_sequence,
        "2026-01-01T00:10:00Z",
    );
    serde_json::from_value(value).expect("host-shaped request")
}

fn mixed_batch(model: &Model) -> Vec<String> {
    let mut missing: Value = serde_json::from_str(&window(model, "pump-4", 4, None)).unwrap();
    missing.as_object_mut().unwrap().remove("vibration_std");
    vec![
        window(model, "pump-1", 1, None),
        window(model, "pump-2", 2, Some("vibration")),
        "temperature=21.5".into(),
        missing.to_string(),
    ]
}

#[tokio::test]
async fn a_batch_is_decoded_scored_stored_and_turned_into_outputs() {
    let store = Arc::new(MemoryStore::new());
    let pipeline = pipeline_with(store.clone());
    let batch = mixed_batch(&model());
    let outcome = run(&pipeline, &request(&batch, 100)).await.unwrap();

    let s = &outcome.summary;
    assert_eq!(
        (
            s.events,
            s.windows_scored,
            s.anomalies,
            s.inserted,
            s.refused()
        ),
        (4, 2, 1, 1, 2)
    );
    assert_eq!(s.batch.sequence_range, Some((100, 103)));
    assert_eq!(s.batch.partition.as_deref(), Some("2"));

    let alert = &outcome.alerts[0];
    assert_eq!(alert.device_id, "pump-2");
    assert_eq!(alert.top_channel, "vibration");
    assert_eq!(alert.lineage.sequence_number, Some(101));
    let kinds: Vec<RejectionKind> = outcome.dead_letters.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [RejectionKind::NotJson, RejectionKind::MissingFeature]
    );
    assert_eq!(
        outcome.dead_letters[1].field.as_deref(),
        Some("vibration_std")
    );
    assert_eq!(outcome.dead_letters[0].body, "temperature=21.5");

    let stored = store
        .history(HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].lineage, alert.lineage);

    assert_eq!(
        s.refused_by_kind,
        BTreeMap::from([(RejectionKind::NotJson, 1), (RejectionKind::MissingFeature, 1)])
    );
    assert_eq!(outcome.points.len(), 2, "every scored window is a point");
    assert_eq!(outcome.windows.len(), 2, "every decoded window is there for drift");
    let writes: Vec<_> = outcome.store_writes.iter().map(|w| (w.operation, w.rows, w.failure)).collect();
    assert_eq!(
        writes,
        [
            (StoreOperation::InsertAnomalies, 1, None),
            (StoreOperation::TrackIncidents, 2, None)
        ]
    );

    let response =
        host::response(&outcome.alerts, &outcome.incidents.messages, &outcome.dead_letters, outcome.host_logs()).unwrap();
    let alerts = response.outputs[ALERTS_OUTPUT].as_array().unwrap();
    let published: Value = serde_json::from_str(alerts[0].as_str().unwrap()).unwrap();
    assert_eq!(published["schema_version"], ALERT_SCHEMA_VERSION);
    assert!(published.get("processing_time_us").is_none(), "{published}");
    assert_eq!(
        response.outputs[DEAD_LETTER_OUTPUT]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        response.logs[0].starts_with(
            "ScoreWindows: 4 events, 2 windows scored, 1 anomalies (1 new), 2 refused"
        ),
        "{:?}",
        response.logs
    );
}

#[tokio::test]
async fn a_redelivered_batch_stores_nothing_new_and_repeats_the_same_alerts() {
    let store = Arc::new(MemoryStore::new());
    let pipeline = pipeline_with(store.clone());
    let batch = mixed_batch(&model());
    let first = run(&pipeline, &request(&batch, 7)).await.unwrap();
    let again = run(&pipeline, &request(&batch, 7)).await.unwrap();
    assert_eq!((first.summary.inserted, again.summary.inserted), (1, 0));
    assert_eq!(first.alerts, again.alerts);
    assert_eq!(first.dead_letters, again.dead_letters);
}

/// The host's `RetryContext` on attempt `count` of a policy of `max` retries.
fn with_retry(mut request: InvocationRequest, count: i64, max: i64) -> InvocationRequest {
    request.metadata.insert(
        "RetryContext".into(),
        json!({"RetryCount": count, "MaxRetryCount": max, "Exception": null}),
    );
    request
}

/// A test double: a store whose writes fail with the given class, for every row or only for
/// rows of one device.
struct FailingStoreDouble {
    transient: bool,
    only_device: Option<&'static str>,
    inner: MemoryStore,
}

impl FailingStoreDouble {
    fn new(transient: bool, only_device: Option<&'static str>) -> Self {
        FailingStoreDouble {
            transient,
            only_device,
            inner: MemoryStore::new(),
        }
    }
}

impl AnomalyStore for FailingStoreDouble {
    fn kind(&self) -> sinks::StoreKind {
        sinks::StoreKind::Memory
    }
    fn insert(&self, rows: Vec<domain::AnomalyRow>) -> StoreFuture<'_, usize> {
        let fails = match self.only_device {
            None => true,
            Some(device) => rows.iter().any(|r| r.device_id == device),
        };
        if !fails {
            return self.inner.insert(rows);
        }
        let error = std::io::Error::other("disk on fire");
        let error = if self.transient {
            StoreError::transient("inserting anomalies", error)
        } else {
            StoreError::permanent("inserting anomalies", error)
        };
        Box::pin(async move { Err(error) })
    }
    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<domain::AnomalyRow>> {
        self.inner.history(query)
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn load_trackers(
        &self,
        requests: Vec<sinks::TrackerRequest>,
    ) -> StoreFuture<'_, Vec<sinks::LoadedTracker>> {
        match self.outage("reading incident trackers") {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.load_trackers(requests),
        }
    }
    fn save_trackers(&self, saves: Vec<sinks::TrackerSave>) -> StoreFuture<'_, sinks::SaveOutcome> {
        match self.outage("saving incident trackers") {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.save_trackers(saves),
        }
    }
    fn incidents(&self, query: sinks::IncidentQuery) -> StoreFuture<'_, Vec<domain::Incident>> {
        self.inner.incidents(query)
    }
}

impl FailingStoreDouble {
    /// The whole store is out (not one device's rows): every operation fails alike.
    fn outage(&self, doing: &str) -> Option<StoreError> {
        self.only_device.is_none().then(|| {
            let error = std::io::Error::other("disk on fire");
            if self.transient {
                StoreError::transient(doing, error)
            } else {
                StoreError::permanent(doing, error)
            }
        })
    }
}

#[tokio::test]
async fn a_transient_store_failure_fails_the_batch_while_the_host_will_retry_it() {
    let pipeline = pipeline_with(Arc::new(FailingStoreDouble::new(true, None)));
    let batch = mixed_batch(&model());
    for (count, max) in [(0, 5), (1, 5), (4, 5), (7, -1)] {
        let req = with_retry(request(&batch, 1), count, max);
        let failed = run(&pipeline, &req).await.unwrap_err();
        let failures: Vec<_> = failed.store_writes.iter().map(|w| w.failure).collect();
        assert_eq!(failures, [Some(FailureClass::Transient)], "the failed write is reported");
        let error = failed.error;
        let PipelineError::Store(store_error) = &error else {
            panic!("expected a store error, got {error}");
        };
        assert!(store_error.is_transient());
        let source = std::error::Error::source(store_error).expect("source kept");
        assert_eq!(source.to_string(), "disk on fire");
    }
    // No outcome at all: nothing is counted as scored, the host will re-deliver the batch.
}

#[tokio::test]
async fn on_the_last_attempt_unstorable_anomalies_are_dead_lettered_whole_not_lost() {
    for (transient, retry) in [(true, Some((5, 5))), (true, None), (false, Some((0, 5)))] {
        let pipeline = pipeline_with(Arc::new(FailingStoreDouble::new(transient, None)));
        let batch = mixed_batch(&model());
        let mut req = request(&batch, 1);
        match retry {
            Some((count, max)) => req = with_retry(req, count, max),
            // No retry policy: no RetryContext, and no second attempt.
            None => drop(req.metadata.remove("RetryContext")),
        }
        let outcome = run(&pipeline, &req).await.unwrap();
        let kind = if transient {
            RejectionKind::StoreUnavailable
        } else {
            RejectionKind::StoreRejected
        };
        let diverted: Vec<_> = outcome.dead_letters.iter().filter(|d| d.kind == kind).collect();
        assert_eq!(diverted.len(), 1, "{:?}", outcome.dead_letters);
        assert_eq!(outcome.summary.diverted, 1);
        assert_eq!(outcome.summary.inserted, 0);
        // The alert still goes out: the anomaly is real, only its row is late.
        assert_eq!(outcome.alerts.len(), 1);
        let letter = diverted[0];
        assert!(!letter.body_truncated && kind.is_replayable());
        let window: Value = serde_json::from_str(&letter.body).unwrap();
        assert_eq!(window["device_id"], outcome.alerts[0].device_id);
        assert_eq!(window["window_end"], outcome.alerts[0].window_end);
        let names = &model().info.feature_names;
        assert!(names.iter().all(|n| window[n].is_number()), "{window}");
        assert_eq!(letter.lineage, outcome.alerts[0].lineage);
        assert_eq!(outcome.summary.refused_by_kind.get(&kind), Some(&1));
        let failed: Vec<_> = outcome.store_writes.iter().map(|w| w.failure).collect();
        let class = if transient { FailureClass::Transient } else { FailureClass::Permanent };
        // One batch write; after a permanent refusal, one more per row to find the bad one; then
        // the incident step, which the outage also fails: the batch goes through without it.
        let expected = if transient {
            vec![Some(class), Some(class)]
        } else {
            vec![Some(class), Some(class), Some(class)]
        };
        assert_eq!(failed, expected);
        assert!(outcome.summary.incidents_skipped);
        assert!(outcome.summary.line().contains("incident trackers not moved"));
    }
}

#[tokio::test]
async fn a_row_the_store_refuses_is_dead_lettered_alone_and_the_rest_are_stored() {
    let store = Arc::new(FailingStoreDouble::new(false, Some("pump-9")));
    let pipeline = pipeline_with(store.clone());
    let model = model();
    let batch = vec![
        window(&model, "pump-8", 1, Some("vibration")),
        window(&model, "pump-9", 1, Some("vibration")),
        window(&model, "pump-7", 1, Some("vibration")),
    ];
    let outcome = run(&pipeline, &request(&batch, 1)).await.unwrap();
    assert_eq!(outcome.alerts.len(), 3);
    assert_eq!(outcome.summary.inserted, 2);
    let refused: Vec<_> = outcome.dead_letters.iter().map(|d| (d.kind, d.event_index)).collect();
    assert_eq!(refused, vec![(RejectionKind::StoreRejected, 1)]);
    let stored = store.history(HistoryQuery { limit: 10, ..HistoryQuery::default() }).await.unwrap();
    let mut devices: Vec<_> = stored.iter().map(|r| r.device_id.as_str()).collect();
    devices.sort();
    assert_eq!(devices, ["pump-7", "pump-8"]);
}

#[test]
fn retry_context_is_read_in_the_shapes_the_host_sends() {
    let read = |metadata: Value| {
        host::retry_context(metadata.as_object().unwrap())
            .map(|r| (r.retry_count, r.max_retry_count))
    };
    assert_eq!(read(json!({"RetryContext": {"RetryCount": 2, "MaxRetryCount": 5}})), Some((2, 5)));
    assert_eq!(
        read(json!({"RetryContext": "{\"retryCount\":0,\"maxRetryCount\":-1,\"exception\":null}"})),
        Some((0, -1))
    );
    assert_eq!(read(json!({})), None);
    assert_eq!(read(json!({"RetryContext": {"RetryCount": 1}})), None);
}

#[tokio::test]
async fn an_invocation_without_the_trigger_binding_is_a_protocol_error() {
    let pipeline = pipeline_with(Arc::new(MemoryStore::new()));
    let request: InvocationRequest =
        serde_json::from_value(json!({"Data": {"other": "[]"}, "Metadata": {}})).unwrap();
    assert!(matches!(
        run(&pipeline, &request).await,
        Err(BatchFailed { error: PipelineError::Protocol(_), .. })
    ));
}
