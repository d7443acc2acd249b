//! Step 1: the batch's events → valid window records, and a dead letter for every refused part.
//!
//! Bounded by construction: a dead letter carries an excerpt of what was refused, never a copy
//! of the whole event per record, and at most [`MAX_DEAD_LETTERS_PER_EVENT`] refusals of one
//! event are published one by one; the rest are counted on the last one (`omitted`) and in the
//! metrics. One event of 30,000 bad records is therefore a handful of small messages.

use std::collections::BTreeMap;

use serde_json::Value;

use domain::{DeadLetter, Excerpt, RecordError, RejectionKind, WindowRecord};
use ingress::events;
use ingress::plain::PlainReader;
use ingress::host::TriggerEvent;

/// Refusals of one event published as their own dead letter; later ones are only counted.
pub const MAX_DEAD_LETTERS_PER_EVENT: usize = 16;

/// What decoding checks besides the model's features.
#[derive(Debug, Clone, Copy)]
pub struct DecodePolicy {
    /// Windows ending after this instant (ms since the epoch: the clock plus the allowed skew)
    /// are refused as `future_window`.
    pub latest_window_end_ms: i64,
    pub skew_secs: u64,
}

impl DecodePolicy {
    /// The policy at `now_ms` with `skew_secs` of allowed clock skew.
    pub fn at(now_ms: i64, skew_secs: u64) -> Self {
        let skew_ms = i64::try_from(skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        DecodePolicy {
            latest_window_end_ms: now_ms.saturating_add(skew_ms),
            skew_secs,
        }
    }
}

/// Valid windows with the index of the event each came from, and the refused parts.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<WindowRecord>,
    pub origin: Vec<usize>,
    pub rejected: Vec<DeadLetter>,
    /// Every refusal by kind, including those only counted (for the metrics and the log).
    pub refused_by_kind: BTreeMap<RejectionKind, u64>,
}

impl Decoded {
    /// Refused records in all, whether published one by one or counted.
    pub fn refused_total(&self) -> u64 {
        self.refused_by_kind.values().sum()
    }
}

/// The refusals of one event: the first few become dead letters, the rest are counted on the
/// last of them.
struct EventRefusals<'a> {
    event: &'a TriggerEvent,
    index: usize,
    /// The event's text, excerpted once however many of its records are refused.
    whole: Option<Excerpt>,
    letters: Vec<DeadLetter>,
}

impl<'a> EventRefusals<'a> {
    fn new(event: &'a TriggerEvent, index: usize) -> Self {
        EventRefusals {
            event,
            index,
            whole: None,
            letters: Vec::new(),
        }
    }

    /// Refuses one record; `own` builds the record's own text (only called when published).
    fn refuse(
        &mut self,
        error: &RecordError,
        record_index: Option<usize>,
        own: impl FnOnce() -> Option<String>,
        decoded: &mut Decoded,
    ) {
        *decoded.refused_by_kind.entry(error.kind()).or_default() += 1;
        if self.letters.len() >= MAX_DEAD_LETTERS_PER_EVENT {
            if let Some(last) = self.letters.last_mut() {
                last.omitted += 1;
            }
            return;
        }
        let body = match own() {
            Some(text) => Excerpt::of(&text),
            None => self
                .whole
                .get_or_insert_with(|| Excerpt::of(&body_text(&self.event.body)))
                .clone(),
        };
        self.letters.push(DeadLetter::new(
            error,
            self.index,
            record_index,
            &self.event.lineage,
            &body,
        ));
    }
}

pub fn decode_events(
    batch: &[TriggerEvent],
    feature_names: &[String],
    policy: DecodePolicy,
) -> Decoded {
    let mut decoded = Decoded::default();
    let mut plain = PlainReader::new(feature_names);
    for (index, event) in batch.iter().enumerate() {
        // The plain case without a `Value` tree; anything it does not take (and any window it
        // would have to refuse) goes the general way below.
        if let Value::String(text) = &event.body {
            if let Some(records) = plain.records(text) {
                if records.iter().all(|r| r.window_end_ms <= policy.latest_window_end_ms) {
                    decoded.origin.extend(std::iter::repeat_n(index, records.len()));
                    decoded.records.extend(records);
                    continue;
                }
            }
        }
        let items = events::decode_event_items(&event.body);
        let several = items.len() > 1;
        let mut refusals = EventRefusals::new(event, index);
        for (position, item) in items.into_iter().enumerate() {
            let record_index = several.then_some(position);
            let map = match item.record {
                Ok(map) => map,
                Err(error) => {
                    // The part's own text when the event held several; else the whole body.
                    let own = || item.text.filter(|_| several);
                    refusals.refuse(&error, record_index, own, &mut decoded);
                    continue;
                }
            };
            // The record's own text when the event held several; else the whole body.
            let own = || several.then(|| Value::Object(map.clone()).to_string());
            match events::extract(&map, feature_names) {
                Ok(record) if record.window_end_ms > policy.latest_window_end_ms => {
                    let error = RecordError::FutureWindow {
                        window_end: record.window_end,
                        skew_secs: policy.skew_secs,
                    };
                    refusals.refuse(&error, record_index, own, &mut decoded);
                }
                Ok(record) => {
                    decoded.records.push(record);
                    decoded.origin.push(index);
                }
                Err(error) => refusals.refuse(&error, record_index, own, &mut decoded),
            }
        }
        decoded.rejected.append(&mut refusals.letters);
    }
    decoded
}

/// The event body as the producer sent it: text stays text, anything else is written as JSON.
fn body_text(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The bounds, attacked with random event bodies: every refusal is one bounded dead letter
    //! or counted on the last of its event, and nothing grows with how a body repeats itself.

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};

    use super::*;
    use domain::{Lineage, MAX_EXCERPT_BYTES};

    const NAMES: [&str; 2] = ["a_mean", "a_std"];

    fn names() -> Vec<String> {
        NAMES.iter().map(|n| n.to_string()).collect()
    }

    /// A random JSON value: windows (good or broken), scalars, arrays and re-encoded text, of at
    /// most `budget` nodes.
    fn value(rng: &mut StdRng, depth: u32, budget: &mut usize) -> Value {
        *budget = budget.saturating_sub(1);
        match rng.random_range(0..9) {
            0 => json!(rng.random::<f64>() * 1e6),
            1 => json!("x".repeat(rng.random_range(0..3000))),
            2 => Value::Null,
            3 | 4 => {
                let mut w = json!({"device_id": format!("d{}", rng.random_range(0..5)),
                    "window_end": "2026-01-01T00:01:00Z", "a_mean": 1.0, "a_std": 0.5});
                match rng.random_range(0..4) {
                    0 => drop(w.as_object_mut().unwrap().remove("a_std")),
                    1 => w["window_end"] = json!("9999-01-01T00:00:00Z"),
                    2 => w["pad"] = json!("p".repeat(rng.random_range(0..20_000))),
                    _ => {}
                }
                w
            }
            5 | 6 if depth < 4 && *budget > 0 => {
                let len = rng.random_range(0..400);
                let mut items = Vec::new();
                while items.len() < len && *budget > 0 {
                    items.push(value(rng, depth + 1, budget));
                }
                Value::Array(items)
            }
            7 if depth < 4 => Value::String(value(rng, depth + 1, budget).to_string()),
            _ => Value::String("{not json".repeat(rng.random_range(1..200))),
        }
    }

    #[test]
    fn random_bodies_give_bounded_dead_letters_that_account_for_every_refusal() {
        let mut rng = StdRng::seed_from_u64(17);
        let policy = DecodePolicy::at(1_800_000_000_000, 600);
        for round in 0..300 {
            let events: Vec<TriggerEvent> = (0..rng.random_range(1..6))
                .map(|i| TriggerEvent {
                    body: value(&mut rng, 0, &mut 3000),
                    lineage: Lineage {
                        sequence_number: Some(i),
                        ..Lineage::default()
                    },
                })
                .collect();
            let input: usize = events.iter().map(|e| e.body.to_string().len()).sum();
            let decoded = decode_events(&events, &names(), policy);
            let mut per_event = std::collections::BTreeMap::<usize, usize>::new();
            let mut output = 0;
            for letter in &decoded.rejected {
                *per_event.entry(letter.event_index).or_default() += 1;
                assert!(letter.body.len() <= MAX_EXCERPT_BYTES, "round {round}");
                let json = serde_json::to_string(letter).unwrap();
                assert!(json.len() < 16 * 1024, "round {round}: {} bytes", json.len());
                output += json.len();
            }
            assert!(
                per_event.values().all(|n| *n <= MAX_DEAD_LETTERS_PER_EVENT),
                "round {round}: {per_event:?}"
            );
            let omitted: u64 = decoded.rejected.iter().map(|d| d.omitted).sum();
            assert_eq!(
                decoded.rejected.len() as u64 + omitted,
                decoded.refused_total(),
                "round {round}: every refusal is a letter or counted"
            );
            // Output grows with the input only through the per-event cap, never per byte.
            assert!(
                output <= events.len() * MAX_DEAD_LETTERS_PER_EVENT * 16 * 1024,
                "round {round}: {output} bytes of dead letters for {input} bytes"
            );
            assert_eq!(decoded.records.len(), decoded.origin.len());
            assert!(decoded.records.iter().all(|r| r.window_end_ms <= policy.latest_window_end_ms));
        }
    }
}
