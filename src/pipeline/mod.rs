//! ③ The `ScoreWindows` flow as a value: decode → score → classify → persist → outputs.
//!
//! A bad event or record never fails the batch: it is counted by its [`RejectionKind`], logged
//! (a bounded number of lines per batch) and dead-lettered with a bounded excerpt.
//!
//! **Nothing lost, nothing amplified.** After the host's last retry the Event Hubs listener
//! checkpoints past a failed batch, so a failure the host cannot fix by retrying must never be
//! answered with an error:
//! - a *transient* store failure fails the batch (503, the host retries: storage is idempotent,
//!   so a retry stores nothing twice) **until the host's last attempt** (`RetryContext`), where
//!   the anomalies go to the dead-letter hub as `store_unavailable`, with their whole window, and
//!   the batch succeeds; `sensor-anomaly replay` re-submits them when the store is back;
//! - a *permanent* refusal is retried row by row at once, so one bad row does not take the
//!   batch with it: the rows the store refuses go out as `store_rejected`, the rest are stored.
//!
//! The pipeline knows nothing of HTTP: the edge maps a [`PipelineError`] to a status code.
//!
//! [`RejectionKind`]: crate::domain::RejectionKind

mod classify;
mod decode;
mod outputs;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::domain::{Alert, AnomalyRow, DeadLetter, Excerpt, RecordError};
use crate::ingress::host::{self, InvocationRequest, ProtocolError, TriggerEvent};
use crate::scoring::drift::{DriftMonitor, DriftReport};
use crate::scoring::{Model, ModelError, ServingModel};
use crate::sinks::live::LiveView;
use crate::sinks::{AnomalyStore, StoreError};
use crate::telemetry::Metrics;

pub use decode::{decode_events, DecodePolicy, Decoded, MAX_DEAD_LETTERS_PER_EVENT};
pub use outputs::{response, ALERTS_OUTPUT, DEAD_LETTER_OUTPUT};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot serialize the {what} output: {source}")]
    Output {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What one batch produced.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub alerts: Vec<Alert>,
    pub dead_letters: Vec<DeadLetter>,
    pub summary: BatchSummary,
}

/// The figures of one batch, for the log line, the host's `Logs` and telemetry.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub events: usize,
    pub windows_scored: usize,
    pub anomalies: usize,
    /// Anomalies the store did not have yet (fewer than `anomalies` on a re-delivery).
    pub inserted: usize,
    /// Refusals in all (published one by one, or counted on the last dead letter of their event).
    pub refused: u64,
    /// Anomalies sent to the dead-letter hub because the store could not take them.
    pub diverted: usize,
    pub model_version: String,
    pub batch: BatchInfo,
    pub elapsed: Duration,
}

/// Where the batch came from: its partition, sequence-number range and host retry attempt.
#[derive(Debug, Clone, Default)]
pub struct BatchInfo {
    pub partition: Option<String>,
    pub sequence_range: Option<(i64, i64)>,
    /// `Metadata.RetryContext.RetryCount`: 0 on the first attempt.
    pub retry_count: Option<i64>,
    /// `Metadata.RetryContext.MaxRetryCount`: the policy's retries (-1: retry for ever).
    pub max_retry_count: Option<i64>,
}

impl BatchInfo {
    fn of(events: &[TriggerEvent], request: &InvocationRequest) -> Self {
        let sequence_numbers = events.iter().filter_map(|e| e.lineage.sequence_number);
        let sequence_range = sequence_numbers.clone().min().zip(sequence_numbers.max());
        let retry = host::retry_context(&request.metadata);
        BatchInfo {
            partition: events.first().and_then(|e| e.lineage.partition_id.clone()),
            sequence_range,
            retry_count: retry.map(|r| r.retry_count),
            max_retry_count: retry.map(|r| r.max_retry_count),
        }
    }

    /// Whether a failure now is final: the host will not retry this batch again, and its
    /// listener checkpoints past it. With a retry policy in `function.json` the host sends
    /// `RetryContext` on every attempt (the WebJobs executor creates it before the first, with
    /// `RetryCount` 0, and counts up to `MaxRetryCount`; -1 retries for ever). Without one there
    /// is no `RetryContext` and no retry: every attempt is the last.
    pub fn is_last_attempt(&self) -> bool {
        match (self.retry_count, self.max_retry_count) {
            (Some(count), Some(max)) => max >= 0 && count >= max,
            _ => true,
        }
    }

    /// The batch's coordinates on the invocation's span (fields declared by the edge).
    fn record_on(&self, span: &tracing::Span, events: usize) {
        span.record("events", events);
        span.record("partition", self.partition_text());
        if let Some((first, last)) = self.sequence_range {
            span.record("sequence_first", first);
            span.record("sequence_last", last);
        }
        if let Some(retry) = self.retry_count {
            span.record("retry_count", retry);
        }
    }

    pub fn partition_text(&self) -> &str {
        self.partition.as_deref().unwrap_or("?")
    }

    pub fn sequence_text(&self) -> String {
        self.sequence_range
            .map_or_else(|| "?".to_string(), |(lo, hi)| format!("{lo}..={hi}"))
    }
}

/// The drift monitor of the model in service (`None` when the model has no training quantiles).
type SharedDrift = Arc<Mutex<Option<DriftMonitor>>>;

/// How the pipeline reads its input.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The Event Hub trigger's binding name in function.json.
    pub trigger_binding: String,
    /// Hours of data time the drift check covers.
    pub drift_hours: u32,
    /// Windows ending more than this many seconds ahead of the clock are refused.
    pub max_future_skew_secs: u64,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            trigger_binding: "events".into(),
            drift_hours: 24,
            max_future_skew_secs: 600,
        }
    }
}

/// At most this many refusals are logged one by one per batch; the rest are summed by kind.
const MAX_REFUSAL_LOG_LINES: usize = 10;

/// The scoring service: the model in service, the store, the metrics and the drift monitor,
/// shared by every request.
pub struct Pipeline {
    model: ServingModel,
    store: Arc<dyn AnomalyStore>,
    metrics: Arc<Metrics>,
    options: PipelineOptions,
    drift: SharedDrift,
    live: LiveView,
}

fn drift_monitor(model: &Model, hours: u32) -> Option<DriftMonitor> {
    DriftMonitor::new(
        &model.info.model_version,
        &model.info.feature_names,
        &model.info.feature_quantiles,
        hours,
    )
}

impl Pipeline {
    pub fn new(
        model: Model,
        store: Arc<dyn AnomalyStore>,
        metrics: Arc<Metrics>,
        options: PipelineOptions,
    ) -> Self {
        metrics.set_model(&model.info.model_version, &model.info.detector);
        let drift: SharedDrift = Arc::new(Mutex::new(drift_monitor(&model, options.drift_hours)));
        let source = Arc::clone(&drift);
        metrics.set_drift_source(Arc::new(move || {
            source
                .lock()
                .ok()
                .and_then(|d| d.as_ref().map(DriftMonitor::report))
                .filter(|r| r.windows > 0)
                .map(|r| r.features.into_iter().map(|f| (f.feature, f.psi)).collect())
                .unwrap_or_default()
        }));
        Pipeline {
            model: ServingModel::new(model),
            store,
            metrics,
            options,
            drift,
            live: LiveView::new(),
        }
    }

    /// Drift of the live windows from the training data; `None` when the model carries no
    /// training quantiles.
    pub fn drift(&self) -> Option<DriftReport> {
        self.drift
            .lock()
            .ok()
            .and_then(|d| d.as_ref().map(DriftMonitor::report))
    }

    pub fn model(&self) -> Arc<Model> {
        self.model.get()
    }

    /// Puts `model` in service; batches already running finish on the one it replaces. Drift
    /// starts over against the new model's training data.
    pub fn replace_model(&self, model: Model) -> Arc<Model> {
        self.model.replace(model, |m| {
            self.metrics
                .set_model(&m.info.model_version, &m.info.detector);
            if let Ok(mut drift) = self.drift.lock() {
                *drift = drift_monitor(m, self.options.drift_hours);
            }
        })
    }

    /// The recent scores of each device (the dashboard's drill-down).
    pub fn live(&self) -> &LiveView {
        &self.live
    }

    pub fn store(&self) -> &Arc<dyn AnomalyStore> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The decode policy now: the clock plus the allowed skew.
    pub fn decode_policy(&self) -> DecodePolicy {
        DecodePolicy::at(
            crate::domain::time::now_ms(),
            self.options.max_future_skew_secs,
        )
    }

    /// Handles one `ScoreWindows` invocation's input.
    pub async fn score_batch(
        &self,
        request: &InvocationRequest,
    ) -> Result<BatchOutcome, PipelineError> {
        let started = Instant::now();
        let model = self.model.get();
        let span = tracing::Span::current();
        span.record("model_version", model.info.model_version.as_str());
        let events = host::trigger_events(request, &self.options.trigger_binding)?;
        let batch = BatchInfo::of(&events, request);
        batch.record_on(&span, events.len());
        let decoded = decode_events(&events, &model.info.feature_names, self.decode_policy());
        self.observe_drift(&decoded);
        let mut classified = {
            let _run = tracing::info_span!(
                "onnxruntime.run",
                otel.kind = "internal",
                windows = decoded.records.len(),
                model_version = model.info.model_version.as_str()
            )
            .entered();
            classify::classify(&model, decoded, &events)?
        };
        let rows = std::mem::take(&mut classified.rows);
        let row_events = std::mem::take(&mut classified.row_events);
        let persisted = self
            .persist(rows, &row_events, &events, classified.windows_scored, &batch)
            .await?;
        let diverted = persisted.diverted.len();
        classified.refuse_all(persisted.diverted);
        let refused_by_kind = &classified.refused_by_kind;
        self.record_rejections(&classified.dead_letters, refused_by_kind);
        self.live.record(classified.points.iter().cloned());
        let summary = BatchSummary {
            events: events.len(),
            windows_scored: classified.windows_scored,
            anomalies: classified.alerts.len(),
            inserted: persisted.inserted,
            refused: refused_by_kind.values().sum(),
            diverted,
            model_version: model.info.model_version.clone(),
            batch,
            elapsed: started.elapsed(),
        };
        self.record_success(&classified, &summary);
        span.record("windows_scored", summary.windows_scored);
        span.record("anomalies", summary.anomalies);
        span.record("refused", summary.refused);
        tracing::info!("{}", outputs::summary_line(&summary));
        Ok(BatchOutcome {
            alerts: classified.alerts,
            dead_letters: classified.dead_letters,
            summary,
        })
    }

    /// Counts every refusal by kind; logs the first few one by one and the rest as one line.
    fn record_rejections(
        &self,
        dead_letters: &[DeadLetter],
        refused_by_kind: &std::collections::BTreeMap<crate::domain::RejectionKind, u64>,
    ) {
        for (kind, count) in refused_by_kind {
            self.metrics.rejected_n(*kind, *count);
        }
        for dead in dead_letters.iter().take(MAX_REFUSAL_LOG_LINES) {
            tracing::warn!(
                partition = ?dead.lineage.partition_id,
                sequence_number = ?dead.lineage.sequence_number,
                kind = dead.kind.as_str(),
                reason = %dead.reason,
                "event refused and dead-lettered"
            );
        }
        let total: u64 = refused_by_kind.values().sum();
        let logged = dead_letters.len().min(MAX_REFUSAL_LOG_LINES) as u64;
        if total > logged {
            let by_kind: Vec<String> = refused_by_kind
                .iter()
                .map(|(kind, n)| format!("{}={n}", kind.as_str()))
                .collect();
            tracing::warn!(
                refused = total,
                not_logged = total - logged,
                by_kind = %by_kind.join(","),
                "more refusals in this batch than are logged one by one"
            );
        }
    }

    fn observe_drift(&self, decoded: &Decoded) {
        if let Ok(mut drift) = self.drift.lock() {
            if let Some(monitor) = drift.as_mut() {
                monitor.observe(&decoded.records);
            }
        }
    }

    /// One write of every anomaly of the batch, and what to do when it fails (module doc).
    async fn persist(
        &self,
        rows: Vec<AnomalyRow>,
        row_events: &[usize],
        events: &[TriggerEvent],
        windows_scored: usize,
        batch: &BatchInfo,
    ) -> Result<Persisted, PipelineError> {
        if rows.is_empty() {
            return Ok(Persisted::default());
        }
        let error = match self.write(rows.clone()).await {
            Ok(inserted) => {
                return Ok(Persisted {
                    inserted,
                    diverted: Vec::new(),
                })
            }
            Err(error) => error,
        };
        let last = batch.is_last_attempt();
        if error.is_transient() && !last {
            tracing::error!(
                error = %error,
                source = ?std::error::Error::source(&error).map(ToString::to_string),
                windows = windows_scored,
                partition = batch.partition_text(),
                sequence_numbers = %batch.sequence_text(),
                retry_count = ?batch.retry_count,
                max_retry_count = ?batch.max_retry_count,
                "store write failed; the batch fails and the host retries it"
            );
            return Err(error.into());
        }
        // The dead letter of a row the store could not take: its whole window, for replay.
        let divert = |window: &Excerpt, event: usize, error: &StoreError| {
            let record_error = if error.is_transient() {
                RecordError::StoreUnavailable(error.to_string())
            } else {
                RecordError::StoreRejected(error.to_string())
            };
            DeadLetter::new(&record_error, event, None, &events[event].lineage, window)
        };
        let mut persisted = Persisted::default();
        if error.is_transient() {
            persisted.diverted = rows
                .iter()
                .zip(row_events)
                .map(|(row, &event)| divert(&Excerpt::of(&row.window_text()), event, &error))
                .collect();
        } else {
            // Permanent: find the rows the store refuses, one write each; keep the others.
            for (row, &event) in rows.into_iter().zip(row_events) {
                let window = Excerpt::of(&row.window_text());
                match self.write(vec![row]).await {
                    Ok(inserted) => persisted.inserted += inserted,
                    Err(row_error) if row_error.is_transient() && !last => {
                        return Err(row_error.into())
                    }
                    Err(row_error) => persisted.diverted.push(divert(&window, event, &row_error)),
                }
            }
        }
        tracing::error!(
            error = %error,
            transient = error.is_transient(),
            diverted = persisted.diverted.len(),
            stored = persisted.inserted,
            partition = batch.partition_text(),
            sequence_numbers = %batch.sequence_text(),
            retry_count = ?batch.retry_count,
            "the store could not take every anomaly; those it could not are dead-lettered with their window for `sensor-anomaly replay`"
        );
        Ok(persisted)
    }

    /// One store write, with its dependency span and metrics.
    async fn write(&self, rows: Vec<AnomalyRow>) -> Result<usize, StoreError> {
        let kind = self.store.kind();
        let span = tracing::info_span!(
            "store.insert",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = self.store.system_name(),
            db.namespace = self.store.target(),
            db.operation.name = "INSERT",
            rows = rows.len(),
        );
        let started = Instant::now();
        let result = self.store.insert(rows).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(_) => self.metrics.store_write(kind, seconds, None),
            Err(error) => {
                span.record("otel.status_code", "error");
                self.metrics
                    .store_write(kind, seconds, Some(error.is_transient()));
            }
        }
        result
    }

    fn record_success(&self, classified: &classify::Classified, summary: &BatchSummary) {
        for alert in &classified.alerts {
            self.metrics.anomaly(alert.severity, &alert.top_channel);
        }
        log_anomalous_devices(&classified.alerts);
        self.metrics.scored(summary.windows_scored as u64);
        self.metrics.batch_duration(summary.elapsed.as_secs_f64());
    }
}

/// What the store took of a batch, and the anomalies it could not take.
#[derive(Debug, Default)]
struct Persisted {
    inserted: usize,
    diverted: Vec<DeadLetter>,
}

/// The trace with a batch's anomalous devices, and its properties: `devices` is a JSON array of
/// `[device_id, anomalies, critical]`. The workbook's per-device view reads it (device ids are
/// unbounded, so they are no metric dimension); a test holds the workbook to these names.
pub const ANOMALOUS_DEVICES_TRACE: (&str, &[&str]) = ("anomalous devices", &["devices", "anomalies"]);

/// One trace per batch with its anomalous devices ([`ANOMALOUS_DEVICES_TRACE`]), bounded by the
/// batch.
fn log_anomalous_devices(alerts: &[Alert]) {
    if alerts.is_empty() {
        return;
    }
    let mut devices: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for alert in alerts {
        let entry = devices.entry(alert.device_id.as_str()).or_default();
        entry.0 += 1;
        if alert.severity == crate::domain::Severity::Critical {
            entry.1 += 1;
        }
    }
    let list: Vec<(&str, u64, u64)> = devices.into_iter().map(|(d, (n, c))| (d, n, c)).collect();
    let json = serde_json::to_string(&list).unwrap_or_default();
    tracing::info!(devices = %json, anomalies = alerts.len(), "anomalous devices");
}

#[cfg(test)]
mod tests;
