//! `sensor-anomaly replay`: dead-lettered windows back through the pipeline.
//!
//! A window dead-lettered for a reason outside itself (`store_unavailable`, `store_rejected`,
//! `future_window`) carries its whole record in `body`. Replay reads dead letters (a JSON-lines
//! file, or the dead-letter hub through the Event Hubs client), keeps those of the chosen kinds
//! whose body is whole, and sends the windows where the pipeline reads them: to the windows hub
//! (partition key = device, as Stream Analytics sends them), so the deployed function scores,
//! stores and alerts them like any other, or straight to a handler's `ScoreWindows` route as
//! host-shaped invocations. The store's unique key makes a replay safe to repeat: a window
//! already stored is not stored again.

use std::collections::BTreeSet;

use serde_json::Value;

use domain::{DeadLetter, RejectionKind};
use ingress::host;

/// Windows per invocation when replaying to a handler (host.json's `maxEventBatchSize`).
pub const EVENTS_PER_INVOCATION: usize = 48;

/// Which dead letters to replay.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub kinds: BTreeSet<RejectionKind>,
}

impl Default for ReplayFilter {
    /// The kinds whose record was valid: refused by the store or the clock, not for its content.
    fn default() -> Self {
        ReplayFilter {
            kinds: RejectionKind::ALL
                .into_iter()
                .filter(|k| k.is_replayable())
                .collect(),
        }
    }
}

impl ReplayFilter {
    /// Kinds by their wire names (`store_unavailable,future_window`).
    pub fn named(names: &[String]) -> Result<Self, String> {
        let kinds = names
            .iter()
            .map(|name| {
                RejectionKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == name.trim())
                    .ok_or_else(|| format!("unknown dead-letter kind {name:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ReplayFilter { kinds })
    }
}

/// What one dead letter comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Selected {
    /// A window to send again: its device (the partition key) and its record as JSON text.
    Window { device_id: String, body: String },
    /// A kind not chosen.
    OtherKind(RejectionKind),
    /// Only an excerpt was kept: the record is in the source hub at the dead letter's lineage.
    Truncated,
    /// Not a dead letter this build reads (another message, an unknown kind, broken JSON).
    Unreadable,
}

/// Sorts one dead letter (as published: one JSON document).
pub fn select(message: &[u8], filter: &ReplayFilter) -> Selected {
    let Ok(letter) = serde_json::from_slice::<DeadLetter>(message) else {
        return Selected::Unreadable;
    };
    if !filter.kinds.contains(&letter.kind) {
        return Selected::OtherKind(letter.kind);
    }
    if letter.body_truncated {
        return Selected::Truncated;
    }
    let device_id = serde_json::from_str::<Value>(&letter.body)
        .ok()
        .and_then(|v| v.get("device_id").and_then(Value::as_str).map(str::to_string));
    match device_id {
        Some(device_id) => Selected::Window {
            device_id,
            body: letter.body,
        },
        None => Selected::Unreadable,
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub read: u64,
    pub replayed: u64,
    pub other_kind: u64,
    pub truncated: u64,
    pub unreadable: u64,
}

impl ReplayStats {
    /// Sorts one message, counting it; returns the window to send, if any.
    pub fn take(&mut self, message: &[u8], filter: &ReplayFilter) -> Option<(String, String)> {
        self.read += 1;
        match select(message, filter) {
            Selected::Window { device_id, body } => {
                self.replayed += 1;
                Some((device_id, body))
            }
            Selected::OtherKind(_) => {
                self.other_kind += 1;
                None
            }
            Selected::Truncated => {
                self.truncated += 1;
                None
            }
            Selected::Unreadable => {
                self.unreadable += 1;
                None
            }
        }
    }
}

impl std::fmt::Display for ReplayStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} dead letters read: {} windows replayed, {} of other kinds, {} with only an excerpt (read those from the source hub at their lineage), {} unreadable",
            self.read, self.replayed, self.other_kind, self.truncated, self.unreadable
        )
    }
}

/// What the handler answered to the replayed invocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerTotals {
    pub invocations: u64,
    pub alerts: u64,
    pub dead_letters: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot reach the handler at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the handler at {url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// Sends `windows` to a handler's `ScoreWindows` route as host-shaped invocations of up to
/// [`EVENTS_PER_INVOCATION`] windows. Stops at the first invocation the handler does not take
/// (a store still down answers 503): what was sent before is stored, and a second run skips it.
pub async fn to_handler(
    base_url: &str,
    windows: &[String],
    binding: &str,
) -> Result<HandlerTotals, ReplayError> {
    let url = format!("{}/ScoreWindows", base_url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let now = domain::time::format(domain::time::now());
    let mut totals = HandlerTotals::default();
    for chunk in windows.chunks(EVENTS_PER_INVOCATION) {
        let invocation = host::many_string_invocation(binding, chunk, "replay", 0, &now);
        let response = client
            .post(&url)
            .json(&invocation)
            .send()
            .await
            .map_err(|source| ReplayError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err(ReplayError::Refused {
                url,
                status,
                body: text.chars().take(500).collect(),
            });
        }
        let reply: Value = serde_json::from_str(&text).unwrap_or_default();
        let count = |output: &str| {
            reply["Outputs"][output]
                .as_array()
                .map_or(0, |a| a.len() as u64)
        };
        totals.invocations += 1;
        totals.alerts += count(host::ALERTS_OUTPUT);
        totals.dead_letters += count(host::DEAD_LETTER_OUTPUT);
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Excerpt, Lineage, RecordError};

    fn letter(error: RecordError, body: &str) -> Vec<u8> {
        let letter = DeadLetter::new(&error, 0, None, &Lineage::default(), &Excerpt::of(body));
        serde_json::to_vec(&letter).unwrap()
    }

    #[test]
    fn only_whole_windows_of_the_chosen_kinds_are_replayed() {
        let window = r#"{"device_id":"pump-1","window_end":"2026-01-01T00:01:00Z","a_mean":1.0}"#;
        let filter = ReplayFilter::default();
        let mut stats = ReplayStats::default();
        let unavailable = letter(RecordError::StoreUnavailable("down".into()), window);
        assert_eq!(
            stats.take(&unavailable, &filter),
            Some(("pump-1".to_string(), window.to_string()))
        );
        let not_json = letter(RecordError::NotJson("x".into()), "temperature=21.5");
        assert_eq!(stats.take(&not_json, &filter), None);
        let huge = format!(r#"{{"device_id":"pump-1","pad":"{}"}}"#, "x".repeat(10_000));
        assert_eq!(
            stats.take(&letter(RecordError::StoreRejected("no".into()), &huge), &filter),
            None
        );
        assert_eq!(stats.take(b"{\"schema_version\":1}", &filter), None);
        assert_eq!(
            stats,
            ReplayStats {
                read: 4,
                replayed: 1,
                other_kind: 1,
                truncated: 1,
                unreadable: 1
            }
        );
        let only = ReplayFilter::named(&["not_json".into()]).unwrap();
        assert!(matches!(select(&not_json, &only), Selected::Unreadable), "a body that is not a window");
        assert!(ReplayFilter::named(&["bogus".into()]).is_err());
    }
}
