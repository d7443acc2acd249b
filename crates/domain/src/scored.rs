//! A scored window: the model's verdict and its explanation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rejection::RecordError;

/// Severity bands, by how far the score is above the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// `score / threshold`: below 1 normal, [1, 2) low, [2, 4) medium, [4, 8) high, 8+ critical.
    pub fn from_ratio(ratio: f64) -> Self {
        match ratio {
            r if r < 1.0 => Severity::Normal,
            r if r < 2.0 => Severity::Low,
            r if r < 4.0 => Severity::Medium,
            r if r < 8.0 => Severity::High,
            _ => Severity::Critical,
        }
    }

    pub const ALL: [Severity; 5] = [
        Severity::Normal,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "normal",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Text that names no severity (a stored row from elsewhere, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a severity (normal, low, medium, high, critical)")]
pub struct UnknownSeverity(pub String);

impl std::str::FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownSeverity(text.to_string()))
    }
}

/// The result for one window, as `/api/score` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredWindow {
    pub device_id: String,
    pub window_end: String,
    pub score: f64,
    pub threshold: f64,
    pub is_anomaly: bool,
    pub severity: Severity,
    /// The score split over the channels; the values sum to `score`.
    pub contributions: BTreeMap<String, f64>,
    pub top_channel: String,
    /// The feature of the top channel contributing most, and how far it is from the value the
    /// model expected, in training sd.
    pub top_feature: String,
    pub top_feature_z: f64,
    pub explanation: String,
    pub model_version: String,
    /// Wall time of the batch this window was scored in, divided over its windows. Internal:
    /// it is not part of the alert wire format.
    pub processing_time_us: f64,
}

impl ScoredWindow {
    /// A score the model could not compute (non-finite output) must not be stored or alerted on.
    pub fn check_finite(&self) -> Result<(), RecordError> {
        let finite = self.score.is_finite() && self.contributions.values().all(|c| c.is_finite());
        if finite {
            Ok(())
        } else {
            Err(RecordError::NonFiniteScore)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_bands() {
        assert_eq!(Severity::from_ratio(0.99), Severity::Normal);
        assert_eq!(Severity::from_ratio(1.0), Severity::Low);
        assert_eq!(Severity::from_ratio(3.9), Severity::Medium);
        assert_eq!(Severity::from_ratio(4.0), Severity::High);
        assert_eq!(Severity::from_ratio(80.0), Severity::Critical);
    }
}

/// One scored window as the live view keeps it: enough to draw a device's score against the
/// threshold and its channel split, without the explanation text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredPoint {
    #[serde(skip)]
    pub device_id: String,
    pub window_end: String,
    /// For ordering and the "last hour of data" figures.
    #[serde(skip)]
    pub window_end_ms: i64,
    pub score: f64,
    pub severity: Severity,
    pub contributions: BTreeMap<String, f64>,
}
