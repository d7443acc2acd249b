//! A stored anomaly: what `/api/history` returns and what every store keeps.

use serde::{Deserialize, Serialize};

use super::lineage::Lineage;
use super::scored::{ScoredWindow, Severity};

/// One stored anomaly. Unique on (device, window end, model version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRow {
    pub device_id: String,
    pub window_end: String,
    pub model_version: String,
    pub score: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub contributions: serde_json::Value,
    /// The window's features by name.
    pub features: serde_json::Value,
    pub top_channel: String,
    pub explanation: String,
    pub lineage: Lineage,
    /// Set by the store.
    #[serde(default)]
    pub inserted_at: Option<String>,
}

impl AnomalyRow {
    /// The row for an anomalous window; `features` are the window's inputs by name.
    pub fn new(
        scored: &ScoredWindow,
        features: serde_json::Map<String, serde_json::Value>,
        lineage: &Lineage,
    ) -> Self {
        AnomalyRow {
            device_id: scored.device_id.clone(),
            window_end: scored.window_end.clone(),
            model_version: scored.model_version.clone(),
            score: scored.score,
            threshold: scored.threshold,
            severity: scored.severity,
            contributions: serde_json::json!(scored.contributions),
            features: serde_json::Value::Object(features),
            top_channel: scored.top_channel.clone(),
            explanation: scored.explanation.clone(),
            lineage: lineage.clone(),
            inserted_at: None,
        }
    }

    /// The window as Stream Analytics sent it (device, window end and the model's features):
    /// what a dead letter carries so that `sensor-anomaly replay` can submit it again.
    pub fn window_text(&self) -> String {
        let mut window = serde_json::Map::new();
        window.insert("device_id".into(), self.device_id.clone().into());
        window.insert("window_end".into(), self.window_end.clone().into());
        if let serde_json::Value::Object(features) = &self.features {
            for (name, value) in features {
                window.insert(name.clone(), value.clone());
            }
        }
        serde_json::Value::Object(window).to_string()
    }
}
