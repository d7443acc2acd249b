//! Event bodies → window records: decoding Stream Analytics output events into individual windows and
//! extracting the model's feature vector from each.
//!
//! An Event Hubs event written by Stream Analytics holds one JSON object, several
//! newline-separated objects (LineSeparated format) or one JSON array (Array format). On the way
//! through the Functions host a body may be JSON-encoded again (a string holding JSON text), or
//! base64 when the trigger's `dataType` is `binary`; every layer is peeled here.

use base64::Engine;
use serde_json::{Map, Value};

use domain::rejection::MAX_ENCODING_DEPTH;
use domain::time as timefmt;
use domain::{DeviceIdError, RecordError, WindowRecord};

/// Splits one event body into its JSON objects. Each item is a record object, or the reason a
/// part of the body could not be read; good parts survive bad neighbours.
pub fn decode_event_body(body: &Value) -> Vec<Result<Map<String, Value>, RecordError>> {
    decode_event_items(body)
        .into_iter()
        .map(|item| item.record)
        .collect()
}

/// One part of an event body: a record, or why it was refused with the refused part's own text
/// where there is one (an element of an array, a line), so that a dead letter can carry that
/// part instead of the whole event.
#[derive(Debug)]
pub struct BodyItem {
    pub record: Result<Map<String, Value>, RecordError>,
    pub text: Option<String>,
}

/// [`decode_event_body`], with each refused part's own text.
pub fn decode_event_items(body: &Value) -> Vec<BodyItem> {
    let mut out = Vec::new();
    collect_objects(body, 0, &mut out);
    if out.is_empty() {
        out.push(refused(RecordError::NotJson("empty body".into()), None));
    }
    out
}

fn refused(error: RecordError, text: Option<String>) -> BodyItem {
    BodyItem {
        record: Err(error),
        text,
    }
}

fn collect_objects(value: &Value, depth: usize, out: &mut Vec<BodyItem>) {
    if depth > MAX_ENCODING_DEPTH {
        out.push(refused(RecordError::TooDeep, None));
        return;
    }
    match value {
        Value::Object(map) => out.push(BodyItem {
            record: Ok(map.clone()),
            text: None,
        }),
        Value::Array(items) => {
            for item in items {
                collect_objects(item, depth + 1, out);
            }
        }
        Value::String(text) => collect_from_text(text, depth + 1, out),
        Value::Null => out.push(refused(RecordError::NotAnObject("null"), Some("null".into()))),
        Value::Bool(b) => out.push(refused(RecordError::NotAnObject("boolean"), Some(b.to_string()))),
        Value::Number(n) => out.push(refused(RecordError::NotAnObject("number"), Some(n.to_string()))),
    }
}

/// Text is JSON (one value, or several separated by newlines), or base64 of such text.
fn collect_from_text(text: &str, depth: usize, out: &mut Vec<BodyItem>) {
    let trimmed = trim_body(text);
    if trimmed.is_empty() {
        out.push(refused(RecordError::NotJson("empty body".into()), None));
        return;
    }
    if !trimmed.starts_with(['{', '[', '"']) {
        if let Ok(scalar) = serde_json::from_str::<Value>(trimmed) {
            collect_objects(&scalar, depth, out);
        } else {
            match decode_base64_text(trimmed) {
                Some(decoded) => collect_from_text(&decoded, depth + 1, out),
                None => out.push(refused(RecordError::NotJson(preview(trimmed)), None)),
            }
        }
        return;
    }
    let values: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(trimmed)
        .into_iter::<Value>()
        .collect();
    match values {
        Ok(values) => {
            for v in &values {
                collect_objects(v, depth, out);
            }
        }
        // LineSeparated output with a broken line: keep every line that parses.
        Err(_) if trimmed.contains('\n') => {
            for line in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match serde_json::from_str::<Value>(line) {
                    Ok(v) => collect_objects(&v, depth, out),
                    Err(e) => out.push(refused(
                        RecordError::NotJson(format!("{e} in line {}", preview(line))),
                        Some(line.to_string()),
                    )),
                }
            }
        }
        Err(e) => out.push(refused(
            RecordError::NotJson(format!("{e}: {}", preview(trimmed))),
            None,
        )),
    }
}

/// A body's text without surrounding whitespace or byte-order mark.
pub(crate) fn trim_body(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// Base64 text decoded, when what it holds is JSON text (an object, an array or a string).
pub(crate) fn decode_base64_text(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let decoded = String::from_utf8(bytes).ok()?;
    decoded
        .trim_start()
        .starts_with(['{', '[', '"'])
        .then_some(decoded)
}

fn preview(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Field names accepted for the device and the window end (Stream Analytics keeps the alias
/// case of the query; camelCase variants come from hand-written producers).
pub(crate) const DEVICE_FIELDS: [&str; 3] = ["device_id", "deviceId", "DeviceId"];
pub(crate) const WINDOW_END_FIELDS: [&str; 3] = ["window_end", "windowEnd", "WindowEnd"];

fn find<'a>(map: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| map.get(*n))
}

/// Validates a record object against the model's feature names. Nothing is ever filled in: a
/// missing, null, non-numeric or non-finite feature rejects the record.
pub fn extract(
    map: &Map<String, Value>,
    feature_names: &[String],
) -> Result<WindowRecord, RecordError> {
    let value = find(map, &DEVICE_FIELDS)
        .ok_or_else(|| RecordError::MissingField("device_id".into()))?;
    let invalid = |problem: String| RecordError::InvalidField {
        field: "device_id".into(),
        problem,
    };
    let number;
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Number(n) => {
            number = n.to_string();
            number.as_str()
        }
        _ => "",
    };
    let device_id = match domain::device_id(text) {
        Ok(id) => id.to_string(),
        Err(DeviceIdError::Empty) => {
            return Err(invalid(format!("must be a non-empty string, got {value}")))
        }
        Err(e @ DeviceIdError::TooLong) => return Err(invalid(e.to_string())),
    };
    let (window_end, window_end_ms) = match find(map, &WINDOW_END_FIELDS) {
        None => return Err(RecordError::MissingField("window_end".into())),
        Some(Value::String(s)) => {
            timefmt::canonical_with_ms(s).ok_or_else(|| RecordError::InvalidField {
                field: "window_end".into(),
                problem: format!("is not an RFC 3339 timestamp: {}", preview(s)),
            })?
        }
        Some(other) => {
            return Err(RecordError::InvalidField {
                field: "window_end".into(),
                problem: format!("must be an RFC 3339 string, got {other}"),
            })
        }
    };
    let mut features = Vec::with_capacity(feature_names.len());
    for name in feature_names {
        features.push(feature_value(map, name)?);
    }
    Ok(WindowRecord {
        device_id,
        window_end,
        window_end_ms,
        features,
    })
}

fn feature_value(map: &Map<String, Value>, name: &str) -> Result<f32, RecordError> {
    let invalid = |problem: String| RecordError::InvalidFeature {
        feature: name.to_string(),
        problem,
    };
    let value = match map.get(name) {
        None => return Err(RecordError::MissingFeature(name.to_string())),
        Some(Value::Null) => return Err(invalid("null".into())),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| invalid(format!("not representable: {n}")))?,
        // JSON has no NaN/Infinity literals; producers that write them as strings are refused.
        Some(Value::String(s)) => {
            return Err(match s.trim().parse::<f64>() {
                Ok(v) if !v.is_finite() => invalid(format!("not finite ({s})")),
                _ => invalid(format!("not a number ({})", preview(s))),
            })
        }
        Some(other) => return Err(invalid(format!("not a number ({other})"))),
    };
    let narrowed = value as f32;
    if !value.is_finite() || !narrowed.is_finite() {
        return Err(invalid(format!("not finite in 32-bit float ({value})")));
    }
    Ok(narrowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::MAX_NAME_UNITS;
    use serde_json::json;

    fn names() -> Vec<String> {
        vec!["a_mean".into(), "a_std".into()]
    }

    fn objects(body: &Value) -> Vec<Value> {
        decode_event_body(body)
            .into_iter()
            .map(|r| Value::Object(r.expect("decodes")))
            .collect()
    }

    #[test]
    fn one_object_line_separated_and_array_formats_decode_to_records() {
        let a = json!({"device_id": "d1", "window_end": "2026-01-01T00:01:00Z", "a_mean": 1.0, "a_std": 0.5});
        let b = json!({"device_id": "d2", "window_end": "2026-01-01T00:01:00Z", "a_mean": 2.0, "a_std": 0.5});
        assert_eq!(objects(&Value::String(a.to_string())), vec![a.clone()]);
        let lines = format!("{a}\n{b}\n");
        assert_eq!(objects(&Value::String(lines)), vec![a.clone(), b.clone()]);
        let lines_crlf = format!("{a}\r\n{b}");
        assert_eq!(
            objects(&Value::String(lines_crlf)),
            vec![a.clone(), b.clone()]
        );
        let array = json!([a, b]).to_string();
        assert_eq!(objects(&Value::String(array)), vec![a.clone(), b.clone()]);
        assert_eq!(objects(&json!([a, b])), vec![a, b]);
    }

    #[test]
    fn multiply_encoded_and_base64_bodies_are_peeled() {
        let a = json!({"device_id": "d1", "window_end": "2026-01-01T00:01:00Z", "a_mean": 1.0, "a_std": 0.5});
        let once = Value::String(a.to_string());
        let twice = Value::String(serde_json::to_string(&a.to_string()).unwrap());
        let thrice = Value::String(
            serde_json::to_string(&serde_json::to_string(&a.to_string()).unwrap()).unwrap(),
        );
        for body in [once, twice, thrice] {
            assert_eq!(objects(&body), vec![a.clone()]);
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(a.to_string());
        assert_eq!(objects(&Value::String(b64)), vec![a.clone()]);
        let b64_lines = base64::engine::general_purpose::STANDARD.encode(format!("{a}\n{a}"));
        assert_eq!(objects(&Value::String(b64_lines)).len(), 2);
    }

    #[test]
    fn malformed_bodies_give_reasons_and_spare_good_lines() {
        let not_json = decode_event_body(&Value::String("temperature=21.5".into()));
        assert!(matches!(&not_json[..], [Err(RecordError::NotJson(_))]));
        let truncated = decode_event_body(&Value::String("{\"device_id\": \"d1\"".into()));
        assert!(matches!(&truncated[..], [Err(RecordError::NotJson(_))]));
        assert!(matches!(
            &decode_event_body(&json!(42))[..],
            [Err(RecordError::NotAnObject("number"))]
        ));
        assert!(matches!(
            &decode_event_body(&Value::Null)[..],
            [Err(RecordError::NotAnObject("null"))]
        ));
        assert!(matches!(
            &decode_event_body(&Value::String("  ".into()))[..],
            [Err(RecordError::NotJson(_))]
        ));
        let mixed = decode_event_body(&Value::String(
            "{\"device_id\":\"d1\"}\n{oops\n{\"device_id\":\"d2\"}".into(),
        ));
        assert_eq!(mixed.len(), 3);
        assert!(mixed[0].is_ok() && mixed[1].is_err() && mixed[2].is_ok());
        let mut deep = Value::String("{}".into());
        for _ in 0..12 {
            deep = Value::String(serde_json::to_string(&deep).unwrap());
        }
        assert!(matches!(
            &decode_event_body(&deep)[..],
            [Err(RecordError::TooDeep)]
        ));
    }

    #[test]
    fn extract_validates_every_feature_without_filling_in() {
        let good = json!({"device_id": "d1", "window_end": "2026-01-01T00:01:00.0000000Z", "a_mean": 1.5, "a_std": 0.25, "extra": "ignored"});
        let record = extract(good.as_object().unwrap(), &names()).unwrap();
        assert_eq!(record.device_id, "d1");
        assert_eq!(record.window_end, "2026-01-01T00:01:00Z");
        assert_eq!(record.features, vec![1.5, 0.25]);

        let case = |v: Value| extract(v.as_object().unwrap(), &names()).unwrap_err();
        assert_eq!(
            case(json!({"window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": 1})),
            RecordError::MissingField("device_id".into())
        );
        assert_eq!(
            case(json!({"device_id": "d", "a_mean": 1, "a_std": 1})),
            RecordError::MissingField("window_end".into())
        );
        assert_eq!(
            case(json!({"device_id": "d", "window_end": "soon", "a_mean": 1, "a_std": 1})).field(),
            Some("window_end")
        );
        assert_eq!(case(json!({"device_id": "", "window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": 1})).field(), Some("device_id"));
        // The limit is in UTF-16 code units, as nvarchar(128) counts: 64 characters outside the
        // BMP fit, 65 do not, though 65 is far under 128 characters.
        let wide = "𝔭".repeat(MAX_NAME_UNITS / 2);
        let ok = extract(json!({"device_id": wide, "window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": 1}).as_object().unwrap(), &names());
        assert_eq!(ok.unwrap().device_id, wide);
        let wider = format!("{wide}𝔭");
        assert_eq!(case(json!({"device_id": wider, "window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": 1})).field(), Some("device_id"));
        let long = "d".repeat(MAX_NAME_UNITS + 1);
        assert_eq!(case(json!({"device_id": long, "window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": 1})).field(), Some("device_id"));
        assert_eq!(
            case(json!({"device_id": "d", "window_end": "2026-01-01T00:01:00Z", "a_mean": 1})),
            RecordError::MissingFeature("a_std".into())
        );
        for bad in [
            json!(null),
            json!("NaN"),
            json!("Infinity"),
            json!("1.5"),
            json!(true),
            json!([1]),
            json!(1e300),
        ] {
            let err = case(
                json!({"device_id": "d", "window_end": "2026-01-01T00:01:00Z", "a_mean": 1, "a_std": bad}),
            );
            assert_eq!(err.field(), Some("a_std"), "{err}");
        }
    }
}
