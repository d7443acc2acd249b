//! The `ScoreWindows` flow: decode the host invocation → window records → score (one ONNX
//! Runtime run) → store anomalies and build alerts → respond.
//!
//! A bad event or record never fails the batch: it is counted, logged with its sequence number
//! and reason, and dead-lettered. The invocation fails (and the host retries) only when the
//! batch cannot be stored; storage is idempotent, so the retry stores nothing twice.

use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::host::{self, InvocationRequest, InvocationResponse, ProtocolError, TriggerEvent};
use crate::metrics::labels;
use crate::records::{self, RecordError, WindowRecord};
use crate::scoring::{Model, ModelError, ScoredWindow};
use crate::startup::AppState;
use crate::store::{AnomalyRow, Lineage, StoreError};

/// Output binding names in `functions/ScoreWindows/function.json`.
pub const ALERTS_OUTPUT: &str = "alerts";
pub const DEAD_LETTER_OUTPUT: &str = "deadletter";
/// At most this many per-record lines go into the invocation's `Logs`; the rest are counted.
const MAX_LOG_LINES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An alert as published to the alerts Event Hub (one per anomalous window).
#[derive(Debug, Clone, Serialize)]
pub struct Alert<'a> {
    /// Stable across re-deliveries, so consumers can drop duplicates.
    pub alert_id: String,
    #[serde(flatten)]
    pub scored: &'a ScoredWindow,
    pub lineage: &'a Lineage,
}

/// A dead-letter entry: the original body and why it was refused.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub reason: String,
    pub field: Option<String>,
    pub event_index: usize,
    /// Which record of the event, when the event held several (LineSeparated/Array output).
    pub record_index: Option<usize>,
    #[serde(flatten)]
    pub lineage: Lineage,
    /// The refused record, or the whole event body when it could not be split into records.
    pub body: String,
}

pub fn alert_id(scored: &ScoredWindow) -> String {
    format!(
        "{}/{}/{}",
        scored.model_version, scored.device_id, scored.window_end
    )
}

/// Valid windows with the index of the event each came from, and the refused parts.
pub struct Decoded {
    pub records: Vec<WindowRecord>,
    pub origin: Vec<usize>,
    pub rejected: Vec<DeadLetter>,
}

pub fn decode_events(events: &[TriggerEvent], feature_names: &[String]) -> Decoded {
    let mut decoded = Decoded {
        records: Vec::new(),
        origin: Vec::new(),
        rejected: Vec::new(),
    };
    for (index, event) in events.iter().enumerate() {
        let items = records::decode_event_body(&event.body);
        let several = items.len() > 1;
        for (position, item) in items.into_iter().enumerate() {
            let record_index = several.then_some(position);
            match item {
                Err(error) => {
                    decoded
                        .rejected
                        .push(dead_letter(index, record_index, event, None, &error))
                }
                Ok(map) => match records::extract(&map, feature_names) {
                    Ok(record) => {
                        decoded.records.push(record);
                        decoded.origin.push(index);
                    }
                    Err(error) => {
                        let body = several.then(|| Value::Object(map).to_string());
                        decoded.rejected.push(dead_letter(
                            index,
                            record_index,
                            event,
                            body,
                            &error,
                        ));
                    }
                },
            }
        }
    }
    decoded
}

/// `body` is the refused record on its own; without it the whole event body is kept.
pub fn dead_letter(
    index: usize,
    record_index: Option<usize>,
    event: &TriggerEvent,
    body: Option<String>,
    error: &RecordError,
) -> DeadLetter {
    DeadLetter {
        reason: error.to_string(),
        field: error.field().map(str::to_string),
        event_index: index,
        record_index,
        lineage: event.lineage.clone(),
        body: body.unwrap_or_else(|| match &event.body {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }),
    }
}

fn reason_label(reason: &str) -> &'static str {
    match reason {
        r if r.starts_with("event body is not JSON") => "not_json",
        r if r.starts_with("event body") => "not_object",
        r if r.starts_with("missing feature") => "missing_feature",
        r if r.starts_with("feature") => "invalid_feature",
        r if r.starts_with("the model's score") => "non_finite_score",
        _ => "invalid_field",
    }
}

/// The window's features by name, as stored and as dead-lettered.
fn feature_map(model: &Model, record: &WindowRecord) -> Map<String, Value> {
    model
        .info
        .feature_names
        .iter()
        .zip(&record.features)
        .map(|(name, v)| (name.clone(), json!(f64::from(*v))))
        .collect()
}

pub fn anomaly_row(
    scored: &ScoredWindow,
    record: &WindowRecord,
    model: &Model,
    lineage: &Lineage,
) -> AnomalyRow {
    let features = feature_map(model, record);
    AnomalyRow {
        device_id: scored.device_id.clone(),
        window_end: scored.window_end.clone(),
        model_version: scored.model_version.clone(),
        score: scored.score,
        threshold: scored.threshold,
        severity: scored.severity.as_str().to_string(),
        contributions: json!(scored.contributions),
        features: Value::Object(features),
        top_channel: scored.top_channel.clone(),
        explanation: scored.explanation.clone(),
        lineage: lineage.clone(),
        inserted_at: None,
    }
}

/// The host's retry attempt (`Metadata.RetryContext.RetryCount`), present on re-deliveries.
fn retry_count(request: &InvocationRequest) -> Option<i64> {
    let context = host::unwrap_value(request.metadata.get("RetryContext")?);
    context.get("RetryCount").and_then(Value::as_i64)
}

/// Handles one `ScoreWindows` invocation.
pub async fn score_windows(
    state: &AppState,
    request: InvocationRequest,
) -> Result<InvocationResponse, PipelineError> {
    let started = Instant::now();
    let model = state.model();
    let events = host::trigger_events(&request, &state.settings.trigger_binding)?;
    let Decoded {
        records,
        origin,
        mut rejected,
    } = decode_events(&events, &model.info.feature_names);

    // Inline: one batched run is well under a millisecond, less than a hop to a blocking thread.
    let scored = model.score(&records)?;
    let mut rows = Vec::new();
    let mut alerts = Vec::new();
    let mut severities = Vec::new();
    let mut non_finite = 0;
    for ((s, record), &event) in scored.iter().zip(&records).zip(&origin) {
        if let Err(error) = s.check_finite() {
            non_finite += 1;
            let mut window = feature_map(&model, record);
            window.insert("device_id".into(), json!(record.device_id));
            window.insert("window_end".into(), json!(record.window_end));
            let body = Some(Value::Object(window).to_string());
            rejected.push(dead_letter(event, None, &events[event], body, &error));
            continue;
        }
        if !s.is_anomaly {
            continue;
        }
        let lineage = &events[event].lineage;
        rows.push(anomaly_row(s, record, &model, lineage));
        let alert = Alert {
            alert_id: alert_id(s),
            scored: s,
            lineage,
        };
        alerts.push(Value::String(
            serde_json::to_string(&alert).unwrap_or_default(),
        ));
        severities.push(s.severity.as_str());
    }

    let mut logs = Vec::new();
    for dead in &rejected {
        state
            .metrics
            .rejected
            .get_or_create(&labels(&[("reason", reason_label(&dead.reason))]))
            .inc();
        tracing::warn!(
            partition = ?dead.lineage.partition_id,
            sequence_number = ?dead.lineage.sequence_number,
            reason = %dead.reason,
            "event refused and dead-lettered"
        );
        if logs.len() < MAX_LOG_LINES {
            logs.push(format!(
                "refused event {} (partition {}, sequence number {}): {}",
                dead.event_index,
                dead.lineage.partition_id.as_deref().unwrap_or("?"),
                dead.lineage
                    .sequence_number
                    .map_or("?".to_string(), |n| n.to_string()),
                dead.reason
            ));
        }
    }

    let sequence_numbers = events.iter().filter_map(|e| e.lineage.sequence_number);
    let sequence_range = match (sequence_numbers.clone().min(), sequence_numbers.max()) {
        (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
        _ => "?".to_string(),
    };
    let partition = events
        .first()
        .and_then(|e| e.lineage.partition_id.clone())
        .unwrap_or_else(|| "?".into());
    let anomalies = rows.len();
    let inserted = match state.store.insert(rows).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(
                error = %e,
                windows = records.len(),
                %partition,
                sequence_numbers = %sequence_range,
                "store write failed; failing the invocation so the host retries"
            );
            return Err(e.into());
        }
    };
    for severity in severities {
        state
            .metrics
            .anomalies
            .get_or_create(&labels(&[("severity", severity)]))
            .inc();
    }
    let windows_scored = scored.len() - non_finite;
    state.metrics.windows_scored.inc_by(windows_scored as u64);
    let elapsed = started.elapsed();
    state.metrics.batch_seconds.observe(elapsed.as_secs_f64());

    let mut summary = format!(
        "ScoreWindows: {} events, {} windows scored, {} anomalies ({} new), {} refused, model {}, partition {}, sequence numbers {}, {:.1} ms",
        events.len(),
        windows_scored,
        anomalies,
        inserted,
        rejected.len(),
        model.info.model_version,
        partition,
        sequence_range,
        elapsed.as_secs_f64() * 1e3
    );
    if let Some(retry) = retry_count(&request) {
        summary.push_str(&format!(", host retry {retry}"));
    }
    tracing::info!("{summary}");
    logs.insert(0, summary);
    if rejected.len() > MAX_LOG_LINES {
        logs.push(format!(
            "... and {} more refused records",
            rejected.len() - MAX_LOG_LINES
        ));
    }

    let dead_letters: Vec<Value> = rejected
        .iter()
        .map(|d| Value::String(serde_json::to_string(d).unwrap_or_default()))
        .collect();
    let mut outputs = Map::new();
    outputs.insert(ALERTS_OUTPUT.into(), Value::Array(alerts));
    outputs.insert(DEAD_LETTER_OUTPUT.into(), Value::Array(dead_letters));
    Ok(InvocationResponse {
        outputs,
        logs,
        return_value: Value::Null,
    })
}
