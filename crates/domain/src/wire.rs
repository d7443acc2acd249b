//! The messages this service publishes: alerts and dead letters, each a versioned JSON document
//! (`schemas/alert.v1.schema.json`, `schemas/dead-letter.v2.schema.json`, described in
//! `docs/wire-formats.md`). They are defined field by field, not derived from internal types,
//! so an internal change cannot leak onto a hub; a breaking change bumps the version.
//!
//! Every message is bounded whatever its input: a dead letter carries at most
//! [`MAX_EXCERPT_BYTES`] of the refused text (with its full size and SHA-256), so one large
//! event cannot become a large message, and every message stays under [`MAX_MESSAGE_BYTES`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lineage::Lineage;
use super::rejection::{RecordError, RejectionKind};
use super::scored::{ScoredWindow, Severity};

/// `schema_version` of the alerts this build writes.
pub const ALERT_SCHEMA_VERSION: u32 = 1;
/// `schema_version` of the dead letters this build writes (2: the body became a bounded
/// excerpt with its size and hash).
pub const DEAD_LETTER_SCHEMA_VERSION: u32 = 2;

/// At most this many bytes of refused text travel in a dead letter.
pub const MAX_EXCERPT_BYTES: usize = 4096;

/// Event Hubs refuses events over 1 MB (Basic and Standard tiers); every message this service
/// publishes stays below this, leaving room for the event's own envelope.
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// The most channels a model may have: an alert lists each one's contribution, and with this
/// many names of the longest kind it still fits the 256 KB that older Event Hubs output
/// bindings send (a test builds that alert).
pub const MAX_ALERT_CHANNELS: usize = 256;

/// A bounded excerpt of a text, with what identifies the whole: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    pub text: String,
    pub bytes: u64,
    pub sha256: String,
    pub truncated: bool,
}

impl Excerpt {
    /// The first [`MAX_EXCERPT_BYTES`] of `text`, cut on a character boundary.
    pub fn of(text: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(text.as_bytes());
        let start = cut(text, MAX_EXCERPT_BYTES);
        Excerpt {
            text: start.to_string(),
            bytes: text.len() as u64,
            sha256: hex(&digest),
            truncated: start.len() < text.len(),
        }
    }

    /// An excerpt of a text that was not kept whole: its `start`, and the whole's size and hash.
    pub fn of_start(start: &str, bytes: u64, sha256: String) -> Self {
        Excerpt {
            text: cut(start, MAX_EXCERPT_BYTES).to_string(),
            bytes,
            sha256,
            truncated: true,
        }
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// One anomalous window, published to the alerts hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    /// `device_id/window_end`: stable across re-deliveries and across models (a window
    /// re-delivered while the fleet switches champions keeps its id), so consumers can drop
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
    pub fn id(device_id: &str, window_end: &str) -> String {
        format!("{device_id}/{window_end}")
    }

    pub fn new(scored: &ScoredWindow, lineage: &Lineage) -> Self {
        Alert {
            schema_version: ALERT_SCHEMA_VERSION,
            alert_id: Self::id(&scored.device_id, &scored.window_end),
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

/// A refused event or record, published to the dead-letter hub with a bounded excerpt of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema_version: u32,
    /// Machine-readable reason (the metric label). Readers ignore kinds they do not know.
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
    /// The refused record (or the whole event body when it could not be split into records),
    /// cut to [`MAX_EXCERPT_BYTES`]; whole when `body_truncated` is false.
    pub body: String,
    /// Size in bytes of the refused text `body` was cut from.
    pub body_bytes: u64,
    /// SHA-256 (hex) of the refused text `body` was cut from.
    pub body_sha256: String,
    pub body_truncated: bool,
    /// Refusals of the same event after this one that were counted, not published one by one
    /// (past the per-event cap); their event is still in the source hub at `lineage`.
    pub omitted: u64,
    /// For `invocation_too_large`: the batch's last sequence number; its events are those of
    /// `lineage.partition_id` from `lineage.sequence_number` to this one. Null otherwise.
    pub last_sequence_number: Option<i64>,
}

impl DeadLetter {
    pub fn new(
        error: &RecordError,
        event_index: usize,
        record_index: Option<usize>,
        lineage: &Lineage,
        body: &Excerpt,
    ) -> Self {
        DeadLetter {
            schema_version: DEAD_LETTER_SCHEMA_VERSION,
            kind: error.kind(),
            reason: bounded_reason(error.to_string()),
            field: error.field().map(|f| cut(f, 256).to_string()),
            event_index,
            record_index,
            lineage: lineage.clone(),
            body: body.text.clone(),
            body_bytes: body.bytes,
            body_sha256: body.sha256.clone(),
            body_truncated: body.truncated,
            omitted: 0,
            last_sequence_number: None,
        }
    }
}

/// A reason quotes input (a feature name, a line): keep it to a readable length.
fn bounded_reason(reason: String) -> String {
    const MAX_REASON_BYTES: usize = 1024;
    if reason.len() <= MAX_REASON_BYTES {
        reason
    } else {
        format!("{}…", cut(&reason, MAX_REASON_BYTES))
    }
}

fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_on_char_boundaries_and_identify_the_whole() {
        let small = Excerpt::of("{\"a\":1}");
        assert_eq!((small.text.as_str(), small.bytes, small.truncated), ("{\"a\":1}", 7, false));
        assert_eq!(
            small.sha256,
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
        );
        let wide = "é".repeat(MAX_EXCERPT_BYTES); // two bytes each
        let excerpt = Excerpt::of(&wide);
        assert!(excerpt.truncated);
        assert_eq!(excerpt.text.len(), MAX_EXCERPT_BYTES);
        assert_eq!(excerpt.bytes, 2 * MAX_EXCERPT_BYTES as u64);
        let odd = format!("x{wide}");
        assert_eq!(Excerpt::of(&odd).text.len(), MAX_EXCERPT_BYTES - 1);
    }

    #[test]
    fn an_alert_with_the_most_channels_of_the_longest_names_fits_256_kb() {
        use crate::{ScoredWindow, MAX_NAME_UNITS};
        // Control characters are written as \u00XX: the longest JSON a name can take.
        let name = |i: usize| format!("{i:04}{}", "\u{1}".repeat(MAX_NAME_UNITS - 4));
        let contributions: BTreeMap<String, f64> = (0..MAX_ALERT_CHANNELS)
            .map(|i| (name(i), -1.234_567_890_123e-300))
            .collect();
        let scored = ScoredWindow {
            device_id: "\u{1}".repeat(MAX_NAME_UNITS),
            window_end: "2026-01-01T00:00:00.123456789Z".into(),
            score: f64::MAX,
            threshold: f64::MIN_POSITIVE,
            is_anomaly: true,
            severity: Severity::Critical,
            contributions,
            top_channel: name(0),
            top_feature: format!("{}_mean", name(0)),
            top_feature_z: f64::MAX,
            explanation: format!("{} mean is far above normal; {} explains 100% of the error", name(0), name(0)),
            model_version: "\u{1}".repeat(MAX_NAME_UNITS),
            processing_time_us: 0.0,
        };
        let lineage = Lineage {
            partition_id: Some("31".into()),
            sequence_number: Some(i64::MAX),
            offset: Some(i64::MAX.to_string()),
            enqueued_time: Some("2026-01-01T00:00:00.1234567Z".into()),
        };
        let json = serde_json::to_string(&Alert::new(&scored, &lineage)).unwrap();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
    }

    #[test]
    fn the_largest_dead_letter_stays_far_under_the_message_limit() {
        let error = RecordError::InvalidFeature {
            feature: "f".repeat(100_000),
            problem: "x".repeat(100_000),
        };
        let lineage = Lineage {
            partition_id: Some("p".repeat(1000)),
            sequence_number: Some(i64::MAX),
            offset: Some("9".repeat(1000)),
            enqueued_time: Some("t".repeat(1000)),
        };
        let body = Excerpt::of(&"\u{1}\"".repeat(1_000_000));
        let letter = DeadLetter::new(&error, usize::MAX, Some(usize::MAX), &lineage, &body);
        let json = serde_json::to_string(&letter).unwrap();
        assert!(json.len() < 64 * 1024, "{} bytes", json.len());
        assert!(json.len() < MAX_MESSAGE_BYTES);
    }
}
