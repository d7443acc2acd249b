//! Event bodies through the whole decode path: body → records → window records or dead letters.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

use domain::time as timefmt;
use domain::{name_fits, Lineage, WindowRecord, MAX_EXCERPT_BYTES, MAX_NAME_UNITS};
use ingress::events::{decode_event_items, extract};
use ingress::plain::PlainReader;
use ingress::host::TriggerEvent;
use pipeline::{decode_events, DecodePolicy, Decoded, MAX_DEAD_LETTERS_PER_EVENT};

use crate::{assert_schema, feature_names, Schema};

/// The clock the decode policy sees: 2027-01-15, so the fixtures' 2026 windows are in the past.
pub(crate) const NOW_MS: i64 = 1_800_000_000_000;
/// A dead letter's JSON stays under this whatever it refuses (the excerpt is 4 KiB; the reason
/// quotes at most a preview).
const MAX_LETTER_JSON: usize = 16 * 1024;

fn event(body: Value, sequence: i64) -> TriggerEvent {
    TriggerEvent {
        body,
        lineage: Lineage {
            partition_id: Some("0".into()),
            sequence_number: Some(sequence),
            ..Lineage::default()
        },
    }
}

/// The bytes as an event body in each form the host delivers: text (`dataType: string`), the
/// JSON value itself when they are JSON, and base64 (`dataType: binary`).
pub fn check_event_body(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    check_plain_agrees(&text);
    let mut events = vec![
        event(Value::String(text), 0),
        event(
            Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
            1,
        ),
    ];
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        events.push(event(value, 2));
    }
    let decoded = decode_events(&events, feature_names(), DecodePolicy::at(NOW_MS, 600));
    check_decoded(&events, &decoded, DecodePolicy::at(NOW_MS, 600));
}

/// The plain path (no `Value` tree) answers only for bodies whose every part is a window, and
/// then exactly what the general path answers.
fn check_plain_agrees(text: &str) {
    let names = feature_names();
    let Some(plain) = PlainReader::new(names).records(text) else {
        return;
    };
    let general: Vec<WindowRecord> = decode_event_items(&Value::String(text.to_string()))
        .into_iter()
        .map(|item| {
            let map = item.record.expect("the plain path took a body with a refused part");
            extract(&map, names).expect("the plain path took a record the general path refuses")
        })
        .collect();
    assert_eq!(plain, general, "the plain path read the body differently");
}

/// What holds for any decode, whatever the events were.
pub(crate) fn check_decoded(events: &[TriggerEvent], decoded: &Decoded, policy: DecodePolicy) {
    // Every part of every body is a record or a refusal, and parts are bounded by the body.
    let mut parts = 0;
    for e in events {
        let n = decode_event_items(&e.body).len();
        let size = match &e.body {
            Value::String(s) => s.len(),
            other => other.to_string().len(),
        };
        assert!(n <= size + 1, "{n} parts from a body of {size} bytes");
        parts += n as u64;
    }
    assert_eq!(
        decoded.records.len() as u64 + decoded.refused_total(),
        parts,
        "every part is a window or a refusal"
    );
    assert_eq!(decoded.records.len(), decoded.origin.len());
    for (record, origin) in decoded.records.iter().zip(&decoded.origin) {
        assert!(*origin < events.len());
        assert!(record.window_end_ms <= policy.latest_window_end_ms);
        assert!(!record.device_id.is_empty() && name_fits(&record.device_id));
        assert_eq!(
            timefmt::canonical(&record.window_end).as_deref(),
            Some(record.window_end.as_str()),
            "window_end is canonical"
        );
        assert_eq!(record.features.len(), feature_names().len());
        assert!(record.features.iter().all(|f| f.is_finite()));
    }
    // Refusals: at most a few letters per event, the rest counted on the last; each bounded.
    let mut per_event = BTreeMap::<usize, usize>::new();
    for letter in &decoded.rejected {
        *per_event.entry(letter.event_index).or_default() += 1;
        assert!(letter.event_index < events.len());
        assert!(letter.body.len() <= MAX_EXCERPT_BYTES);
        let json = serde_json::to_value(letter).expect("a dead letter serializes");
        let size = json.to_string().len();
        assert!(size <= MAX_LETTER_JSON, "a dead letter of {size} bytes");
        assert_schema(Schema::DeadLetter, &json);
    }
    assert!(per_event.values().all(|n| *n <= MAX_DEAD_LETTERS_PER_EVENT));
    let omitted: u64 = decoded.rejected.iter().map(|d| d.omitted).sum();
    assert_eq!(
        decoded.rejected.len() as u64 + omitted,
        decoded.refused_total(),
        "every refusal is a letter or counted on one"
    );
}

/// A window record built from the bytes, written as Stream Analytics writes it (one object, a
/// JSON-encoded string, base64 of it, a line of LineSeparated output, an element of an Array),
/// decodes back to itself: decode(encode(x)) == x.
pub fn check_window_record(data: &[u8]) {
    let record = record_from(data);
    let names = feature_names();
    let mut object = Map::new();
    object.insert("device_id".into(), Value::String(record.device_id.clone()));
    object.insert("window_end".into(), Value::String(record.window_end.clone()));
    for (name, value) in names.iter().zip(&record.features) {
        object.insert(name.clone(), serde_json::json!(value));
    }
    let object = Value::Object(object);
    let text = object.to_string();
    let bodies = [
        object.clone(),
        Value::String(text.clone()),
        Value::String(base64::engine::general_purpose::STANDARD.encode(&text)),
        Value::String(format!("{text}\n{text}\n")),
        Value::Array(vec![object.clone(), Value::String(text.clone())]),
    ];
    let events: Vec<TriggerEvent> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| event(b, i as i64))
        .collect();
    let decoded = decode_events(&events, names, DecodePolicy::at(i64::MAX / 2, 0));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(decoded.records.len(), 7);
    for got in &decoded.records {
        assert_eq!(got, &record, "decode(encode(x)) != x");
    }
}

/// A valid window record from arbitrary bytes: a device id that fits the key columns, a window
/// end RFC 3339 can write, finite features.
fn record_from(data: &[u8]) -> WindowRecord {
    let mut bytes = data.iter().copied();
    let mut next = |n: usize| -> Vec<u8> { (&mut bytes).take(n).collect() };
    let seconds_bytes = next(8);
    let mut seconds = [0u8; 8];
    seconds[..seconds_bytes.len()].copy_from_slice(&seconds_bytes);
    // 0000-01-01 .. 9999-12-31 in whole milliseconds.
    const FIRST_MS: i64 = -62_167_219_200_000;
    const LAST_MS: i64 = 253_402_300_799_999;
    let window_end_ms = FIRST_MS + (u64::from_le_bytes(seconds) % (LAST_MS - FIRST_MS) as u64) as i64;
    let instant = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(window_end_ms) * 1_000_000)
        .expect("in range by construction");
    let features = (0..feature_names().len())
        .map(|_| {
            let raw = next(4);
            let mut b = [0u8; 4];
            b[..raw.len()].copy_from_slice(&raw);
            let v = f32::from_le_bytes(b);
            if v.is_finite() { v } else { 0.0 }
        })
        .collect();
    let rest = String::from_utf8_lossy(&next(usize::MAX)).into_owned();
    let mut device_id: String = rest.trim().chars().take(MAX_NAME_UNITS / 2).collect();
    device_id = device_id.trim().to_string();
    if device_id.is_empty() {
        device_id = "d".into();
    }
    WindowRecord {
        device_id,
        window_end: timefmt::format(instant),
        window_end_ms,
        features,
    }
}
