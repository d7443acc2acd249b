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
//! The pipeline knows nothing of HTTP, metrics or the live view: it returns a [`BatchOutcome`]
//! saying what happened (every scored point, every decoded window, every store write), and the
//! service's observers (drift, live view, metrics and logs) read that. The edge maps a
//! [`PipelineError`] to a status code; the host protocol (retry context in, response out) is in
//! `ingress`.
//!
//! [`RejectionKind`]: domain::RejectionKind

mod classify;
mod decode;
pub mod incidents;
mod outputs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use domain::{
    Alert, AnomalyRow, DeadLetter, Excerpt, RecordError, RejectionKind, ScoredPoint, WindowRecord,
};
use ingress::host::{BatchInfo, OutputError, TriggerEvent};
use scoring::{Model, ModelError};
use sinks::{AnomalyStore, StoreError, StoreKind};

pub use decode::{decode_events, DecodePolicy, Decoded, MAX_DEAD_LETTERS_PER_EVENT};
pub use incidents::{IncidentOutcome, IncidentPolicy};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Protocol(#[from] ingress::host::ProtocolError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// A batch that failed, with the store writes it made before failing (the observers count
/// them: a failing store shows in the metrics even though no batch succeeds).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BatchFailed {
    #[source]
    pub error: PipelineError,
    pub store_writes: Vec<StoreWrite>,
}

impl From<PipelineError> for BatchFailed {
    fn from(error: PipelineError) -> Self {
        BatchFailed {
            error,
            store_writes: Vec::new(),
        }
    }
}

/// What one batch produced, and everything an observer needs to know about it.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub alerts: Vec<Alert>,
    pub dead_letters: Vec<DeadLetter>,
    pub summary: BatchSummary,
    /// Every scored window (normal or not), for the live view.
    pub points: Vec<ScoredPoint>,
    /// Every decoded window, for the drift monitor.
    pub windows: Vec<WindowRecord>,
    /// Every store write the batch made, in order (one, or one per row after a permanent
    /// refusal).
    pub store_writes: Vec<StoreWrite>,
    /// The incident transitions of the batch's windows (step 5).
    pub incidents: IncidentOutcome,
}

/// The figures of one batch, for the log line, the host's `Logs` and telemetry.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub events: usize,
    pub windows_scored: usize,
    pub anomalies: usize,
    /// Anomalies the store did not have yet (fewer than `anomalies` on a re-delivery).
    pub inserted: usize,
    /// Every refusal by kind (published one by one, or counted on the last dead letter of their
    /// event).
    pub refused_by_kind: BTreeMap<RejectionKind, u64>,
    /// Anomalies sent to the dead-letter hub because the store could not take them.
    pub diverted: usize,
    /// Incident messages published (new ones and those of re-delivered windows).
    pub incident_messages: usize,
    /// True when the store could not take the incident step on the host's last attempt: the
    /// anomalies went out, the incident trackers did not move.
    pub incidents_skipped: bool,
    pub model_version: String,
    pub batch: BatchInfo,
    pub elapsed: Duration,
}

impl BatchSummary {
    /// Refusals in all.
    pub fn refused(&self) -> u64 {
        self.refused_by_kind.values().sum()
    }
}

/// Whether a failed store write can succeed on a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureClass {
    Transient,
    Permanent,
}

impl FailureClass {
    pub fn of(error: &StoreError) -> Self {
        if error.is_transient() {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        }
    }
}

/// What a store write was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreOperation {
    /// The batch's anomalies (or one of them, while a permanent refusal is isolated).
    InsertAnomalies,
    /// The incident step: read the devices' trackers, write those that moved.
    TrackIncidents,
}

impl StoreOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOperation::InsertAnomalies => "insert_anomalies",
            StoreOperation::TrackIncidents => "track_incidents",
        }
    }
}

/// One store write: which store, what for, how long, and how it failed if it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreWrite {
    pub store: StoreKind,
    pub operation: StoreOperation,
    pub rows: usize,
    pub elapsed: Duration,
    pub failure: Option<FailureClass>,
}

/// How the pipeline reads its input.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The Event Hub trigger's binding name in function.json.
    pub trigger_binding: String,
    /// Windows ending more than this many seconds ahead of the clock are refused.
    pub max_future_skew_secs: u64,
    /// When incidents open, escalate and resolve.
    pub incident_policy: IncidentPolicy,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            trigger_binding: "events".into(),
            max_future_skew_secs: 600,
            incident_policy: IncidentPolicy::default(),
        }
    }
}

/// The `ScoreWindows` flow: decode, score, classify, persist. It holds only the store it writes
/// to and its options; the model is handed in per batch, so a reload never races a batch.
pub struct Pipeline {
    store: Arc<dyn AnomalyStore>,
    options: PipelineOptions,
}

impl Pipeline {
    pub fn new(store: Arc<dyn AnomalyStore>, options: PipelineOptions) -> Self {
        Pipeline { store, options }
    }

    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// The decode policy now: the clock plus the allowed skew.
    pub fn decode_policy(&self) -> DecodePolicy {
        DecodePolicy::at(domain::time::now_ms(), self.options.max_future_skew_secs)
    }

    /// Scores one batch of trigger events with `model`.
    pub async fn score_batch(
        &self,
        model: &Model,
        events: &[TriggerEvent],
        batch: BatchInfo,
    ) -> Result<BatchOutcome, BatchFailed> {
        let started = Instant::now();
        let decoded = decode_events(events, &model.info.feature_names, self.decode_policy());
        let mut classified = {
            let _run = tracing::info_span!(
                "onnxruntime.run",
                otel.kind = "internal",
                windows = decoded.records.len(),
                model_version = model.info.model_version.as_str()
            )
            .entered();
            classify::classify(model, decoded, events).map_err(PipelineError::from)?
        };
        let mut store_writes = Vec::new();
        let stored = self
            .store_steps(model, &mut classified, events, &batch, &mut store_writes)
            .await;
        let Stored {
            inserted,
            diverted,
            incidents,
            incidents_skipped,
        } = match stored {
            Ok(stored) => stored,
            Err(error) => {
                return Err(BatchFailed {
                    error,
                    store_writes,
                })
            }
        };
        let summary = BatchSummary {
            events: events.len(),
            windows_scored: classified.windows_scored,
            anomalies: classified.alerts.len(),
            inserted,
            refused_by_kind: std::mem::take(&mut classified.refused_by_kind),
            diverted,
            incident_messages: incidents.messages.len(),
            incidents_skipped,
            model_version: model.info.model_version.clone(),
            batch,
            elapsed: started.elapsed(),
        };
        Ok(BatchOutcome {
            alerts: classified.alerts,
            dead_letters: classified.dead_letters,
            summary,
            points: classified.points,
            windows: classified.records,
            store_writes,
            incidents,
        })
    }

    /// Steps 4 and 5, the store's: the anomalies (those it could not take join the dead
    /// letters), then the incidents.
    async fn store_steps(
        &self,
        model: &Model,
        classified: &mut classify::Classified,
        events: &[TriggerEvent],
        batch: &BatchInfo,
        writes: &mut Vec<StoreWrite>,
    ) -> Result<Stored, PipelineError> {
        let rows = std::mem::take(&mut classified.rows);
        let row_events = std::mem::take(&mut classified.row_events);
        let persisted = self.persist(rows, &row_events, events, batch, writes).await?;
        let diverted = persisted.diverted.len();
        classified.refuse_all(persisted.diverted);
        let (incidents, incidents_skipped) = self.track(model, classified, batch, writes).await?;
        Ok(Stored {
            inserted: persisted.inserted,
            diverted,
            incidents,
            incidents_skipped,
        })
    }

    /// Step 5, with the same failure rule as the anomalies: a transient store failure fails the
    /// batch until the host's last attempt; then (or for a permanent failure) the batch goes
    /// through without moving the trackers, and says so in its log line.
    async fn track(
        &self,
        model: &Model,
        classified: &classify::Classified,
        batch: &BatchInfo,
        writes: &mut Vec<StoreWrite>,
    ) -> Result<(IncidentOutcome, bool), PipelineError> {
        if classified.points.is_empty() {
            return Ok((IncidentOutcome::default(), false));
        }
        let span = tracing::info_span!(
            "store.incidents",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = self.store.kind().system_name(),
            db.namespace = self.store.target(),
            db.operation.name = "MERGE",
            windows = classified.points.len(),
        );
        let tracking = incidents::track_batch(
            self.store.as_ref(),
            &self.options.incident_policy,
            &model.info.model_version,
            &classified.points,
            &classified.alerts,
        );
        let operation = StoreOperation::TrackIncidents;
        let result = self
            .recorded(operation, classified.points.len(), span, tracking, writes)
            .await;
        match result {
            Ok(outcome) => Ok((outcome, false)),
            Err(error) if error.is_transient() && !batch.is_last_attempt() => {
                tracing::error!(
                    error = %error,
                    partition = batch.partition_text(),
                    sequence_numbers = %batch.sequence_text(),
                    "incident step failed; the batch fails and the host retries it"
                );
                Err(error.into())
            }
            Err(error) => {
                tracing::error!(
                    error = %error,
                    transient = error.is_transient(),
                    partition = batch.partition_text(),
                    sequence_numbers = %batch.sequence_text(),
                    "incident step failed on the host's last attempt or for good: the batch's anomalies and alerts went out, its windows did not move the incident trackers"
                );
                Ok((IncidentOutcome::default(), true))
            }
        }
    }

    /// One write of every anomaly of the batch, and what to do when it fails (module doc).
    async fn persist(
        &self,
        rows: Vec<AnomalyRow>,
        row_events: &[usize],
        events: &[TriggerEvent],
        batch: &BatchInfo,
        writes: &mut Vec<StoreWrite>,
    ) -> Result<Persisted, PipelineError> {
        if rows.is_empty() {
            return Ok(Persisted::default());
        }
        let error = match self.write(rows.clone(), writes).await {
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
                anomalies = rows.len(),
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
                match self.write(vec![row], writes).await {
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

    /// One store write, with its dependency span; recorded in `writes` for the observers.
    async fn write(
        &self,
        rows: Vec<AnomalyRow>,
        writes: &mut Vec<StoreWrite>,
    ) -> Result<usize, StoreError> {
        let span = tracing::info_span!(
            "store.insert",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = self.store.kind().system_name(),
            db.namespace = self.store.target(),
            db.operation.name = "INSERT",
            rows = rows.len(),
        );
        let count = rows.len();
        let insert = self.store.insert(rows);
        self.recorded(StoreOperation::InsertAnomalies, count, span, insert, writes)
            .await
    }

    /// Runs one store operation in its dependency `span` (marked as an error when it fails)
    /// and records it in `writes` for the observers.
    async fn recorded<T>(
        &self,
        operation: StoreOperation,
        rows: usize,
        span: tracing::Span,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
        writes: &mut Vec<StoreWrite>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = work.instrument(span.clone()).await;
        let failure = result.as_ref().err().map(FailureClass::of);
        if failure.is_some() {
            span.record("otel.status_code", "error");
        }
        writes.push(StoreWrite {
            store: self.store.kind(),
            operation,
            rows,
            elapsed: started.elapsed(),
            failure,
        });
        result
    }
}

/// What the store steps of a batch did, for its summary and outcome.
struct Stored {
    inserted: usize,
    diverted: usize,
    incidents: IncidentOutcome,
    incidents_skipped: bool,
}

/// What the store took of a batch, and the anomalies it could not take.
#[derive(Debug, Default)]
struct Persisted {
    inserted: usize,
    diverted: Vec<DeadLetter>,
}

#[cfg(test)]
mod tests;
