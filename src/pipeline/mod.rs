//! ③ The `ScoreWindows` flow as a value: decode → score → classify → persist → outputs.
//!
//! A bad event or record never fails the batch: it is counted by its [`RejectionKind`], logged
//! with its sequence number, and dead-lettered. The batch fails (and the host retries) only when
//! the anomalies cannot be stored; storage is idempotent, so the retry stores nothing twice.
//! The pipeline knows nothing of HTTP: the edge maps a [`PipelineError`] to a status code.
//!
//! [`RejectionKind`]: crate::domain::RejectionKind

mod classify;
mod decode;
mod outputs;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Instrument;

use crate::domain::{Alert, DeadLetter};
use crate::ingress::host::{self, InvocationRequest, ProtocolError, TriggerEvent};
use crate::scoring::drift::{DriftMonitor, DriftReport};
use crate::scoring::{Model, ModelError, ServingModel};
use crate::sinks::live::LiveView;
use crate::sinks::{AnomalyStore, StoreError};
use crate::telemetry::Metrics;

pub use decode::{decode_events, Decoded};
pub use outputs::{ALERTS_OUTPUT, DEAD_LETTER_OUTPUT};

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
    pub refused: usize,
    pub model_version: String,
    pub batch: BatchInfo,
    pub elapsed: Duration,
}

/// Where the batch came from: its partition, sequence-number range and host retry attempt.
#[derive(Debug, Clone, Default)]
pub struct BatchInfo {
    pub partition: Option<String>,
    pub sequence_range: Option<(i64, i64)>,
    /// `Metadata.RetryContext.RetryCount`, present on re-deliveries.
    pub retry_count: Option<i64>,
}

impl BatchInfo {
    fn of(events: &[TriggerEvent], request: &InvocationRequest) -> Self {
        let sequence_numbers = events.iter().filter_map(|e| e.lineage.sequence_number);
        let sequence_range = sequence_numbers.clone().min().zip(sequence_numbers.max());
        let retry_count = request
            .metadata
            .get("RetryContext")
            .map(host::unwrap_value)
            .and_then(|context| context.get("RetryCount").and_then(Value::as_i64));
        BatchInfo {
            partition: events.first().and_then(|e| e.lineage.partition_id.clone()),
            sequence_range,
            retry_count,
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

/// The scoring service: the model in service, the store, the metrics and the drift monitor,
/// shared by every request.
pub struct Pipeline {
    model: ServingModel,
    store: Arc<dyn AnomalyStore>,
    metrics: Arc<Metrics>,
    trigger_binding: String,
    drift: SharedDrift,
    drift_hours: u32,
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
    /// `drift_hours`: how many hours of data time the drift check covers.
    pub fn new(
        model: Model,
        store: Arc<dyn AnomalyStore>,
        metrics: Arc<Metrics>,
        trigger_binding: impl Into<String>,
        drift_hours: u32,
    ) -> Self {
        metrics.set_model(&model.info.model_version, &model.info.detector);
        let drift: SharedDrift = Arc::new(Mutex::new(drift_monitor(&model, drift_hours)));
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
            trigger_binding: trigger_binding.into(),
            drift,
            drift_hours,
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
                *drift = drift_monitor(m, self.drift_hours);
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

    /// Handles one `ScoreWindows` invocation's input.
    pub async fn score_batch(
        &self,
        request: &InvocationRequest,
    ) -> Result<BatchOutcome, PipelineError> {
        let started = Instant::now();
        let model = self.model.get();
        let span = tracing::Span::current();
        span.record("model_version", model.info.model_version.as_str());
        let events = host::trigger_events(request, &self.trigger_binding)?;
        let batch = BatchInfo::of(&events, request);
        batch.record_on(&span, events.len());
        let decoded = decode_events(&events, &model.info.feature_names);
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
        self.record_rejections(&classified.dead_letters);
        let rows = std::mem::take(&mut classified.rows);
        let inserted = self
            .persist(rows, classified.windows_scored, &batch)
            .await?;
        self.live.record(classified.points.iter().cloned());
        let summary = BatchSummary {
            events: events.len(),
            windows_scored: classified.windows_scored,
            anomalies: classified.alerts.len(),
            inserted,
            refused: classified.dead_letters.len(),
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

    fn record_rejections(&self, dead_letters: &[DeadLetter]) {
        for dead in dead_letters {
            self.metrics.rejected(dead.kind);
            tracing::warn!(
                partition = ?dead.lineage.partition_id,
                sequence_number = ?dead.lineage.sequence_number,
                kind = dead.kind.as_str(),
                reason = %dead.reason,
                "event refused and dead-lettered"
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

    /// One write of every anomaly of the batch; a failure fails the batch.
    async fn persist(
        &self,
        rows: Vec<crate::domain::AnomalyRow>,
        windows_scored: usize,
        batch: &BatchInfo,
    ) -> Result<usize, PipelineError> {
        let kind = self.store.kind();
        let span = tracing::info_span!(
            "store.insert",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = if kind == "azure-sql" {
                "SQL"
            } else if kind == "sqlite" {
                "SQLite"
            } else {
                kind
            },
            db.namespace = self.store.target(),
            db.operation.name = "INSERT",
            rows = rows.len(),
        );
        let started = Instant::now();
        let result = self.store.insert(rows).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(inserted) => {
                self.metrics.store_write(kind, seconds, None);
                Ok(inserted)
            }
            Err(error) => {
                span.record("otel.status_code", "error");
                self.metrics
                    .store_write(kind, seconds, Some(error.is_transient()));
                tracing::error!(
                    error = %error,
                    source = ?std::error::Error::source(&error).map(ToString::to_string),
                    transient = error.is_transient(),
                    windows = windows_scored,
                    partition = batch.partition_text(),
                    sequence_numbers = %batch.sequence_text(),
                    "store write failed; the batch fails"
                );
                Err(error.into())
            }
        }
    }

    fn record_success(&self, classified: &classify::Classified, summary: &BatchSummary) {
        for alert in &classified.alerts {
            self.metrics
                .anomaly(alert.severity, &alert.top_channel, &alert.device_id);
        }
        self.metrics.scored(summary.windows_scored as u64);
        self.metrics.batch_duration(summary.elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
