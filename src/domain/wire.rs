//! The messages this service publishes: alerts and dead letters, each a versioned JSON document
//! (`schemas/alert.v1.schema.json`, `schemas/dead-letter.v1.schema.json`, described in
//! `docs/wire-formats.md`). They are defined field by field, not derived from internal types,
//! so an internal change cannot leak onto a hub; a breaking change bumps the version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lineage::Lineage;
use super::rejection::{RecordError, RejectionKind};
use super::scored::{ScoredWindow, Severity};

/// `schema_version` of the alert and dead-letter documents this build writes.
pub const WIRE_SCHEMA_VERSION: u32 = 1;

/// One anomalous window, published to the alerts hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    /// `model_version/device_id/window_end`: stable across re-deliveries, so consumers can drop
    /// duplicates (delivery is at least once).
    pub alert_id: String,
    pub device_id: String,
    pub window_end: String,
    pub model_version: String,
    pub score: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub contributions: BTreeMap<String, f64>,
    pub top_channel: String,
    pub top_feature: String,
    pub top_feature_z: f64,
    pub explanation: String,
    pub lineage: Lineage,
}

impl Alert {
    pub fn id(model_version: &str, device_id: &str, window_end: &str) -> String {
        format!("{model_version}/{device_id}/{window_end}")
    }

    pub fn new(scored: &ScoredWindow, lineage: &Lineage) -> Self {
        Alert {
            schema_version: WIRE_SCHEMA_VERSION,
            alert_id: Self::id(&scored.model_version, &scored.device_id, &scored.window_end),
            device_id: scored.device_id.clone(),
            window_end: scored.window_end.clone(),
            model_version: scored.model_version.clone(),
            score: scored.score,
            threshold: scored.threshold,
            severity: scored.severity,
            contributions: scored.contributions.clone(),
            top_channel: scored.top_channel.clone(),
            top_feature: scored.top_feature.clone(),
            top_feature_z: scored.top_feature_z,
            explanation: scored.explanation.clone(),
            lineage: lineage.clone(),
        }
    }
}

/// A refused event or record, published to the dead-letter hub with the original text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema_version: u32,
    /// Machine-readable reason (the metric label).
    pub kind: RejectionKind,
    /// Human-readable reason.
    pub reason: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Position of the event in the invocation's batch.
    pub event_index: usize,
    /// Which record of the event, when the event held several (LineSeparated/Array output).
    pub record_index: Option<usize>,
    pub lineage: Lineage,
    /// The refused record, or the whole event body when it could not be split into records.
    pub body: String,
}

impl DeadLetter {
    pub fn new(
        error: &RecordError,
        event_index: usize,
        record_index: Option<usize>,
        lineage: &Lineage,
        body: String,
    ) -> Self {
        DeadLetter {
            schema_version: WIRE_SCHEMA_VERSION,
            kind: error.kind(),
            reason: error.to_string(),
            field: error.field().map(str::to_string),
            event_index,
            record_index,
            lineage: lineage.clone(),
            body,
        }
    }
}
