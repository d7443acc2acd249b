//! Steps 2 and 3: one ONNX Runtime run for the batch, then each window is an anomaly (a row to
//! store and an alert), normal, or refused because the model could not score it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::decode::Decoded;
use domain::{
    Alert, AnomalyRow, DeadLetter, Excerpt, RecordError, RejectionKind, ScoredPoint, Severity,
    WindowRecord,
};
use ingress::host::TriggerEvent;
use scoring::{Model, ModelError};

#[derive(Debug, Default)]
pub(super) struct Classified {
    pub rows: Vec<AnomalyRow>,
    /// The event each row came from.
    pub row_events: Vec<usize>,
    pub alerts: Vec<Alert>,
    /// The decoder's refusals, then windows with a non-finite score.
    pub dead_letters: Vec<DeadLetter>,
    /// Every refusal of the batch by kind: the decoder's (including those only counted), then
    /// the windows refused here and those the store could not take.
    pub refused_by_kind: BTreeMap<RejectionKind, u64>,
    pub windows_scored: usize,
    /// Every scored window, for the live view.
    pub points: Vec<ScoredPoint>,
    /// Every decoded window (scored or not), for the drift monitor.
    pub records: Vec<WindowRecord>,
}

pub(super) fn classify(
    model: &Model,
    decoded: Decoded,
    events: &[TriggerEvent],
) -> Result<Classified, ModelError> {
    // Inline: one batched run is well under a millisecond, less than a hop to a blocking thread.
    let verdicts = model.assess(&decoded.records)?;
    let mut out = Classified {
        dead_letters: decoded.rejected,
        refused_by_kind: decoded.refused_by_kind,
        points: Vec::with_capacity(decoded.records.len()),
        ..Classified::default()
    };
    for (i, (record, &event)) in decoded.records.iter().zip(&decoded.origin).enumerate() {
        let lineage = &events[event].lineage;
        if !verdicts.is_finite(i) {
            let error = RecordError::NonFiniteScore;
            let mut body = feature_map(model, record);
            body.insert("device_id".into(), json!(record.device_id));
            body.insert("window_end".into(), json!(record.window_end));
            let body = Excerpt::of(&Value::Object(body).to_string());
            *out.refused_by_kind.entry(error.kind()).or_default() += 1;
            out.dead_letters
                .push(DeadLetter::new(&error, event, None, lineage, &body));
            continue;
        }
        out.windows_scored += 1;
        let severity = verdicts.severity(i);
        out.points.push(ScoredPoint {
            device_id: record.device_id.clone(),
            window_end: record.window_end.clone(),
            window_end_ms: record.window_end_ms,
            score: verdicts.score(i),
            severity,
            contributions: verdicts.channel_values(i),
        });
        if severity != Severity::Normal {
            // Only anomalies get the full explanation: it is what their row and alert carry.
            let window = verdicts.explain(i, record);
            out.rows
                .push(AnomalyRow::new(&window, feature_map(model, record), lineage));
            out.row_events.push(event);
            out.alerts.push(Alert::new(&window, lineage));
        }
    }
    out.records = decoded.records;
    Ok(out)
}

impl Classified {
    /// Adds dead letters made after classification (anomalies the store could not take).
    pub fn refuse_all(&mut self, letters: Vec<DeadLetter>) {
        for letter in &letters {
            *self.refused_by_kind.entry(letter.kind).or_default() += 1;
        }
        self.dead_letters.extend(letters);
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
