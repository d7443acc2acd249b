//! A scored window: the model's verdict and its explanation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

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

/// The result for one window, as `/api/score` returns it (and `sensor-anomaly score` writes it,
/// which `sensor-anomaly incidents` reads back).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(default)]
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
    fn channel_values_serialize_as_the_sorted_map_they_stand_for() {
        let names: Arc<[String]> = vec!["vibration".to_string(), "humidity".into(), "sound".into()].into();
        let values = ChannelValues::new(names, vec![2.5, 0.25, 1.0]);
        let map = values.to_map();
        assert_eq!(serde_json::to_string(&values).unwrap(), serde_json::to_string(&map).unwrap());
        assert_eq!(values.iter().next(), Some(("vibration", 2.5)));
        let short = ChannelValues::new(vec!["a".to_string(), "b".into()].into(), vec![1.0]);
        assert_eq!(short.to_map(), BTreeMap::from([("a".to_string(), 1.0)]));
    }

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
    pub contributions: ChannelValues,
}

/// A value per channel in the model's channel order, the names shared by every window the model
/// scores: one allocation per window where a map of owned names took one per channel. It
/// serializes as the map it stands for, names in sorted order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelValues {
    names: Arc<[String]>,
    values: Box<[f64]>,
}

impl ChannelValues {
    /// `values[i]` belongs to `names[i]`; extra values or names are dropped.
    pub fn new(names: Arc<[String]>, values: impl Into<Box<[f64]>>) -> Self {
        let mut values = values.into().into_vec();
        values.truncate(names.len());
        let names = if names.len() > values.len() {
            names[..values.len()].into()
        } else {
            names
        };
        ChannelValues {
            names,
            values: values.into_boxed_slice(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names.iter().map(String::as_str).zip(self.values.iter().copied())
    }

    pub fn to_map(&self) -> BTreeMap<String, f64> {
        self.iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl Serialize for ChannelValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut order: Vec<usize> = (0..self.values.len()).collect();
        order.sort_by(|&a, &b| self.names[a].cmp(&self.names[b]));
        let mut map = serializer.serialize_map(Some(order.len()))?;
        for i in order {
            map.serialize_entry(&self.names[i], &self.values[i])?;
        }
        map.end()
    }
}
