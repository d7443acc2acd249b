//! Step 1: the batch's events → valid window records, and a dead letter for every refused part.

use serde_json::Value;

use crate::domain::{DeadLetter, RecordError, WindowRecord};
use crate::ingress::events;
use crate::ingress::host::TriggerEvent;

/// Valid windows with the index of the event each came from, and the refused parts.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<WindowRecord>,
    pub origin: Vec<usize>,
    pub rejected: Vec<DeadLetter>,
}

pub fn decode_events(batch: &[TriggerEvent], feature_names: &[String]) -> Decoded {
    let mut decoded = Decoded::default();
    for (index, event) in batch.iter().enumerate() {
        let items = events::decode_event_body(&event.body);
        let several = items.len() > 1;
        for (position, item) in items.into_iter().enumerate() {
            let record_index = several.then_some(position);
            let refuse = |error: &RecordError, body: Option<String>| {
                // The refused record on its own when the event held several; else the whole body.
                let body = body.unwrap_or_else(|| body_text(&event.body));
                DeadLetter::new(error, index, record_index, &event.lineage, body)
            };
            match item {
                Err(error) => decoded.rejected.push(refuse(&error, None)),
                Ok(map) => match events::extract(&map, feature_names) {
                    Ok(record) => {
                        decoded.records.push(record);
                        decoded.origin.push(index);
                    }
                    Err(error) => {
                        let body = several.then(|| Value::Object(map).to_string());
                        decoded.rejected.push(refuse(&error, body));
                    }
                },
            }
        }
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
