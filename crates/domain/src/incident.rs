//! Incidents: one episode of anomalous windows on one device, instead of one alert per window.
//!
//! An [`Incident`] opens, may escalate, and resolves; each of those is an [`IncidentMessage`]
//! on the incidents hub (`schemas/incident.v1.schema.json`). What the tracker of one device
//! remembers between batches is a [`TrackerState`]; the store keeps it with a version for
//! optimistic concurrency. The rules that move it are `pipeline::incidents`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lineage::Lineage;
use super::scored::Severity;

/// `schema_version` of the incident messages this build writes.
pub const INCIDENT_SCHEMA_VERSION: u32 = 1;

/// Whether an incident is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// Text that names no incident status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an incident status (open, resolved)")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for IncidentStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "open" => Ok(IncidentStatus::Open),
            "resolved" => Ok(IncidentStatus::Resolved),
            _ => Err(UnknownStatus(text.to_string())),
        }
    }
}

/// What happened to an incident: the kind of an [`IncidentMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Opened,
    /// A window more severe than any before it in the incident.
    Escalated,
    Resolved,
}

impl Transition {
    pub const ALL: [Transition; 3] = [Transition::Opened, Transition::Escalated, Transition::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Escalated => "escalated",
            Transition::Resolved => "resolved",
        }
    }
}

/// Why an incident resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The configured number of normal windows in a row.
    QuietWindows,
    /// The device's next window came after a gap longer than the quiet period: the incident
    /// ends at its last window before the gap.
    DataGap,
}

/// One channel's part of an incident: its share of the summed contributions of the incident's
/// anomalous windows (shares sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelShare {
    pub channel: String,
    pub share: f64,
}

/// One anomaly episode on one device (`model_version`: the model that opened it; a champion
/// promoted while it is open continues it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `device_id/first anomalous window end`: the same however often the windows are delivered
    /// and whichever model scores them.
    pub incident_id: String,
    pub device_id: String,
    pub model_version: String,
    pub status: IncidentStatus,
    /// End of its first anomalous window.
    pub opened_at: String,
    /// End of the window that opened it (the detection time in data time).
    pub detected_at: String,
    pub last_anomalous_at: String,
    /// End of the window that resolved it (the last window before the gap for a data gap).
    pub resolved_at: Option<String>,
    pub resolution: Option<Resolution>,
    pub peak_severity: Severity,
    pub peak_score: f64,
    pub threshold: f64,
    pub peak_window_end: String,
    pub peak_top_channel: String,
    /// The explanation of its peak window.
    pub peak_explanation: String,
    pub anomalous_windows: u64,
    /// Windows from its first anomalous window to its last window seen, normal ones included.
    pub windows: u64,
    /// The channels that explain it, largest share first.
    pub channels: Vec<ChannelShare>,
    /// The event of its first anomalous window, and of its last.
    pub first_lineage: Lineage,
    pub last_lineage: Lineage,
}

impl Incident {
    pub fn id(device_id: &str, first_window_end: &str) -> String {
        format!("{device_id}/{first_window_end}")
    }
}

/// An incident transition, published to the incidents hub. Delivery is at least once (a
/// re-delivered batch publishes the same messages again): drop repeats by `message_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentMessage {
    pub schema_version: u32,
    /// `incident_id/transition/at`.
    pub message_id: String,
    pub transition: Transition,
    /// End of the window that made the transition.
    pub at: String,
    /// The incident as it stood after the transition.
    pub incident: Incident,
}

impl IncidentMessage {
    pub fn new(transition: Transition, at: &str, incident: &Incident) -> Self {
        IncidentMessage {
            schema_version: INCIDENT_SCHEMA_VERSION,
            message_id: format!("{}/{}/{at}", incident.incident_id, transition.as_str()),
            transition,
            at: at.to_string(),
            incident: incident.clone(),
        }
    }
}

/// An anomalous window remembered by the tracker: before an incident opens (it may become the
/// incident's first window) and as the incident's peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMark {
    pub window_end: String,
    pub window_end_ms: i64,
    pub score: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub contributions: BTreeMap<String, f64>,
    pub top_channel: String,
    pub explanation: String,
    pub lineage: Lineage,
}

/// An open incident and the running sums its channel shares come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub incident: Incident,
    pub channel_sums: BTreeMap<String, f64>,
    /// Normal windows in a row since its last anomalous one.
    pub quiet_run: u32,
}

/// What the incident tracker of one device remembers between batches (`model_version`: the
/// model that scored the last batch it took).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    pub device_id: String,
    pub model_version: String,
    /// End of the last window taken into account, as text and as an instant: a window ending
    /// at or before it is a re-delivery or late, and changes nothing.
    pub watermark: String,
    pub watermark_ms: i64,
    /// The last windows (up to the policy's `open_of`), newest in bit 0: 1 anomalous, 0
    /// normal or not seen.
    pub recent: u32,
    /// The anomalous windows among `recent` while no incident is open, oldest first.
    pub pending: Vec<WindowMark>,
    pub open: Option<OpenIncident>,
}

impl TrackerState {
    pub fn new(device_id: &str, model_version: &str) -> Self {
        TrackerState {
            device_id: device_id.to_string(),
            model_version: model_version.to_string(),
            watermark: String::new(),
            watermark_ms: i64::MIN,
            recent: 0,
            pending: Vec::new(),
            open: None,
        }
    }
}

/// A tracker as stored: its state and the version a conditional write checks.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedTracker {
    pub state: TrackerState,
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_names_are_the_wire_names() {
        assert_eq!(Incident::id("pump-1", "2026-01-01T00:01:00Z"), "pump-1/2026-01-01T00:01:00Z");
        for t in Transition::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in [IncidentStatus::Open, IncidentStatus::Resolved] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse::<IncidentStatus>(), Ok(s));
        }
        assert!("closed".parse::<IncidentStatus>().is_err());
    }
}
