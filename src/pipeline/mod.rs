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

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::domain::{Alert, DeadLetter};
use crate::ingress::host::{self, InvocationRequest, ProtocolError, TriggerEvent};
use crate::scoring::{Model, ModelError, ServingModel};
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

    pub fn partition_text(&self) -> &str {
        self.partition.as_deref().unwrap_or("?")
    }

    pub fn sequence_text(&self) -> String {
        self.sequence_range
            .map_or_else(|| "?".to_string(), |(lo, hi)| format!("{lo}..={hi}"))
    }
}

/// The scoring service: the model in service, the store and the metrics, shared by every request.
pub struct Pipeline {
    model: ServingModel,
    store: Arc<dyn AnomalyStore>,
    metrics: Arc<Metrics>,
    trigger_binding: String,
}

impl Pipeline {
    pub fn new(
        model: Model,
        store: Arc<dyn AnomalyStore>,
        metrics: Arc<Metrics>,
        trigger_binding: impl Into<String>,
    ) -> Self {
        metrics.set_model(&model.info.model_version, &model.info.detector);
        Pipeline {
            model: ServingModel::new(model),
            store,
            metrics,
            trigger_binding: trigger_binding.into(),
        }
    }

    pub fn model(&self) -> Arc<Model> {
        self.model.get()
    }

    /// Puts `model` in service; batches already running finish on the one it replaces.
    pub fn replace_model(&self, model: Model) -> Arc<Model> {
        self.model.replace(model, |m| {
            self.metrics
                .set_model(&m.info.model_version, &m.info.detector)
        })
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
        let events = host::trigger_events(request, &self.trigger_binding)?;
        let batch = BatchInfo::of(&events, request);
        let decoded = decode_events(&events, &model.info.feature_names);
        let classified = classify::classify(&model, decoded, &events)?;
        self.record_rejections(&classified.dead_letters);
        let inserted = self.persist(&classified, &batch).await?;
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

    /// One write of every anomaly of the batch; a failure fails the batch.
    async fn persist(
        &self,
        classified: &classify::Classified,
        batch: &BatchInfo,
    ) -> Result<usize, PipelineError> {
        match self.store.insert(classified.rows.clone()).await {
            Ok(inserted) => Ok(inserted),
            Err(error) => {
                self.metrics.store_error(error.is_transient());
                tracing::error!(
                    error = %error,
                    source = ?std::error::Error::source(&error).map(ToString::to_string),
                    transient = error.is_transient(),
                    windows = classified.windows_scored,
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
            self.metrics.anomaly(alert.severity);
        }
        self.metrics
            .windows_scored
            .inc_by(summary.windows_scored as u64);
        self.metrics
            .batch_seconds
            .observe(summary.elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
