//! The plain case of an event body, decoded straight into window records.
//!
//! Almost every body is Stream Analytics output with nothing wrong in it: one JSON object, or
//! objects one per line, or an array of objects (as text, or base64 of it), each with a device, a window end and every
//! feature as a number. [`PlainReader::records`] reads exactly that shape with a streaming parser that
//! writes each feature into its slot and skips every other field, so no `Value` tree, map or key
//! string is built. Anything else (a base64 body, a nested encoding, a field of the wrong type, a
//! missing feature, a bad device id or timestamp, broken JSON) gives `None`, and the caller takes
//! the general path ([`crate::events::decode_event_items`] and [`crate::events::extract`]), which
//! owns every refusal and its message. The plain path therefore never refuses anything itself:
//! when it answers, it answers exactly what the general path would (a property the fuzz target
//! `event_body` and the tests below check).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use domain::time as timefmt;
use domain::WindowRecord;

use crate::events::{decode_base64_text, trim_body, DEVICE_FIELDS, WINDOW_END_FIELDS};

/// What a field of a record is to the plain path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The model's feature at this position.
    Feature(usize),
    /// One of [`DEVICE_FIELDS`], by position (the first present wins).
    Device(usize),
    /// One of [`WINDOW_END_FIELDS`], by position.
    WindowEnd(usize),
    Other,
}

/// Reads plain bodies against one model's feature names. It learns the field order of the
/// records it reads: a producer writes every record's fields in the same order, so a field's
/// name is usually checked with one comparison instead of a search.
#[derive(Debug, Clone)]
pub struct PlainReader<'a> {
    /// (name, position in the model's order), sorted by name.
    sorted: Vec<(&'a str, usize)>,
    features: usize,
    /// A feature named like the device or window-end field: such a model takes the general path.
    usable: bool,
    /// The fields of the last record read, in its order.
    order: Vec<(Box<str>, Field)>,
}

impl<'a> PlainReader<'a> {
    pub fn new(feature_names: &'a [String]) -> Self {
        let mut sorted: Vec<(&str, usize)> = feature_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        sorted.sort_unstable();
        let distinct = sorted.windows(2).all(|w| w[0].0 != w[1].0);
        let reserved = sorted
            .iter()
            .any(|(n, _)| DEVICE_FIELDS.contains(n) || WINDOW_END_FIELDS.contains(n));
        PlainReader {
            sorted,
            features: feature_names.len(),
            usable: distinct && !reserved,
            order: Vec::new(),
        }
    }

    /// The records of a body in the plain shape, in order; `None` when the body is anything
    /// else.
    pub fn records(&mut self, text: &str) -> Option<Vec<WindowRecord>> {
        if !self.usable {
            return None;
        }
        let trimmed = trim_body(text);
        let mut out = Vec::new();
        match trimmed.as_bytes().first()? {
            b'{' => {
                // One object, or objects one per line (LineSeparated). A line that is not one
                // whole object (a pretty-printed record, say) sends the body to the general path,
                // which reads any layout.
                for line in trimmed.split('\n') {
                    let line = line.trim_matches(is_json_space);
                    if !line.is_empty() {
                        out.push(self.one(line)?);
                    }
                }
            }
            b'[' => {
                let mut parser = serde_json::Deserializer::from_str(trimmed);
                out = parser.deserialize_seq(ArraySeed { reader: self }).ok()?;
                parser.end().ok()?;
            }
            // `dataType: binary`: base64 of a body.
            _ => return self.base64(trimmed),
        }
        (!out.is_empty()).then_some(out)
    }

    /// A base64 body, read as the general path reads it: text that is a JSON value (a number,
    /// say) is that value, not base64; decoded text must itself be a plain body.
    fn base64(&mut self, trimmed: &str) -> Option<Vec<WindowRecord>> {
        // Stricter than the general path's check (it parses a `Value`), never looser: a text
        // that fails here fails there too.
        if serde_json::from_str::<IgnoredAny>(trimmed).is_ok() {
            return None;
        }
        // Decoded text that is a JSON string, not an object or array, is no plain body:
        // `records` declines it.
        let decoded = decode_base64_text(trimmed)?;
        self.records(&decoded)
    }

    fn one(&mut self, text: &str) -> Option<WindowRecord> {
        let mut parser = serde_json::Deserializer::from_str(text);
        let record = RecordSeed { reader: self }.deserialize(&mut parser).ok()?;
        parser.end().ok()?;
        Some(record)
    }

    /// What the `k`-th field of a record, named `key`, is.
    fn field(&mut self, k: usize, key: &str) -> Field {
        if let Some((name, field)) = self.order.get(k) {
            if **name == *key {
                return *field;
            }
        }
        let field = self.look_up(key);
        let learned = (key.into(), field);
        match k.cmp(&self.order.len()) {
            std::cmp::Ordering::Less => self.order[k] = learned,
            std::cmp::Ordering::Equal => self.order.push(learned),
            // A record longer than any seen, read past a mismatch: not worth learning.
            std::cmp::Ordering::Greater => {}
        }
        field
    }

    fn look_up(&self, key: &str) -> Field {
        if let Ok(at) = self.sorted.binary_search_by(|(n, _)| (*n).cmp(key)) {
            Field::Feature(self.sorted[at].1)
        } else if let Some(at) = DEVICE_FIELDS.iter().position(|n| *n == key) {
            Field::Device(at)
        } else if let Some(at) = WINDOW_END_FIELDS.iter().position(|n| *n == key) {
            Field::WindowEnd(at)
        } else {
            Field::Other
        }
    }
}

fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Reading stops at the first thing the plain path does not take; the message is never shown.
fn not_plain<E: de::Error>() -> E {
    E::custom("not the plain shape")
}

struct ArraySeed<'r, 'a> {
    reader: &'r mut PlainReader<'a>,
}

impl<'de> Visitor<'de> for ArraySeed<'_, '_> {
    type Value = Vec<WindowRecord>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of window records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element_seed(RecordSeed {
            reader: &mut *self.reader,
        })? {
            out.push(record);
        }
        Ok(out)
    }
}

struct RecordSeed<'r, 'a> {
    reader: &'r mut PlainReader<'a>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = WindowRecord;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WindowRecord, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = WindowRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a window record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WindowRecord, A::Error> {
        // One slot per accepted spelling: a repeated key keeps its last value, as a JSON map
        // does, and the first spelling present wins, as the general path's lookup does.
        let mut device: [Option<Text<'de>>; 3] = [None, None, None];
        let mut window_end: [Option<Text<'de>>; 3] = [None, None, None];
        let n = self.reader.features;
        let mut features = vec![f64::NAN; n];
        let mut seen = vec![false; n];
        let mut k = 0;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match self.reader.field(k, key.as_str()) {
                // Numbers only: anything else is the general path's to refuse.
                Field::Feature(at) => {
                    features[at] = map.next_value::<Number>()?.0;
                    seen[at] = true;
                }
                Field::Device(at) => device[at] = Some(map.next_value::<Text<'de>>()?),
                Field::WindowEnd(at) => window_end[at] = Some(map.next_value::<Text<'de>>()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            k += 1;
        }
        let device = device.iter().flatten().next().ok_or_else(not_plain)?;
        let device_id = domain::device_id(device.as_str()).map_err(|_| not_plain())?;
        let end = window_end.iter().flatten().next().ok_or_else(not_plain)?;
        let (window_end, window_end_ms) =
            timefmt::canonical_with_ms(end.as_str()).ok_or_else(not_plain)?;
        if !seen.iter().all(|s| *s) {
            return Err(not_plain());
        }
        let mut narrowed = Vec::with_capacity(features.len());
        for value in features {
            let v = value as f32;
            if !(value.is_finite() && v.is_finite()) {
                return Err(not_plain());
            }
            narrowed.push(v);
        }
        Ok(WindowRecord {
            device_id: device_id.to_string(),
            window_end,
            window_end_ms,
            features: narrowed,
        })
    }
}

/// A JSON string, borrowed from the body when it holds no escape.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON number as `f64`, the conversion `serde_json::Number::as_f64` makes.
struct Number(f64);

impl<'de> serde::Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
        }
        d.deserialize_f64(V)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::{json, Value};

    use super::*;
    use crate::events::{decode_event_items, extract};

    fn names() -> Vec<String> {
        vec!["a_mean".into(), "a_std".into()]
    }

    /// What the general path makes of a body when every part of it is a window.
    fn general(body: &str, names: &[String]) -> Option<Vec<WindowRecord>> {
        decode_event_items(&Value::String(body.to_string()))
            .into_iter()
            .map(|item| extract(&item.record.ok()?, names).ok())
            .collect()
    }

    #[test]
    fn every_plain_layout_reads_as_the_general_path_does() {
        let a = json!({"device_id": "d1", "window_end": "2026-01-01T00:01:00.0000000Z", "a_mean": 1.5, "a_std": 2, "x": {"nested": [1, "two"]}});
        let b = json!({"deviceId": " d2 ", "WindowEnd": "2026-01-01T00:02:00+01:00", "a_std": -0.25, "a_mean": 1e-3});
        let escaped = r#"{"device\u005fid":"d\"3","window_end":"2026-01-01T00:03:00Z","a_mean":3,"a_std":4}"#;
        let bodies = [
            a.to_string(),
            format!("{a}\n{b}\r\n\n{escaped}\n"),
            format!("\u{feff} [{a}, {b}, {escaped}] "),
            format!("{a}"),
            base64::engine::general_purpose::STANDARD.encode(format!("{a}\n{b}")),
            format!(" {} ", base64::engine::general_purpose::STANDARD.encode(format!("[{a}]"))),
            // Duplicate keys: the last value counts; the first spelling present names the device.
            r#"{"device_id":"d1","DeviceId":"other","a_mean":1,"a_mean":2,"a_std":3,"window_end":"2026-01-01T00:01:00Z"}"#.into(),
        ];
        // One reader for every body: what it learns of one record's field order must not
        // change how the next, in another order, is read.
        let names = names();
        let mut reader = PlainReader::new(&names);
        for body in bodies.iter().chain(bodies.iter().rev()) {
            let plain = reader.records(body);
            assert!(plain.is_some(), "{body}");
            assert_eq!(plain, general(body, &names), "{body}");
        }
    }

    #[test]
    fn anything_else_goes_to_the_general_path() {
        let names = names();
        let mut reader = PlainReader::new(&names);
        for body in [
            "",
            "[]",
            "{}",
            "not json",
            r#"{"device_id":"d1","window_end":"2026-01-01T00:01:00Z","a_mean":1}"#,
            r#"{"device_id":"d1","window_end":"2026-01-01T00:01:00Z","a_mean":1,"a_std":"2"}"#,
            r#"{"device_id":"d1","window_end":"2026-01-01T00:01:00Z","a_mean":1,"a_std":null}"#,
            r#"{"device_id":"d1","window_end":"2026-01-01T00:01:00Z","a_mean":1,"a_std":1e300}"#,
            r#"{"device_id":7,"window_end":"2026-01-01T00:01:00Z","a_mean":1,"a_std":2}"#,
            r#"{"device_id":" ","window_end":"2026-01-01T00:01:00Z","a_mean":1,"a_std":2}"#,
            r#"{"device_id":"d","window_end":"soon","a_mean":1,"a_std":2}"#,
            // A pretty-printed record, and a broken second line.
            "{\"device_id\":\"d1\",\n\"window_end\":\"2026-01-01T00:01:00Z\",\"a_mean\":1,\"a_std\":2}",
            "{\"device_id\":\"d1\",\"window_end\":\"2026-01-01T00:01:00Z\",\"a_mean\":1,\"a_std\":2}\n{oops",
            "[{\"device_id\":\"d1\",\"window_end\":\"2026-01-01T00:01:00Z\",\"a_mean\":1,\"a_std\":2}, 3]",
            "\"{\\\"device_id\\\":\\\"d1\\\"}\"",
            "eyJkZXZpY2VfaWQiOiJkMSJ9",
            // base64 of a JSON-encoded body, and digits that are base64 but also a JSON number.
            "IntcImRldmljZV9pZFwiOjF9Ig==",
            "12345678",
        ] {
            assert_eq!(reader.records(body), None, "{body}");
        }
        // A feature named like a key field: that model always takes the general path.
        let odd = vec!["device_id".to_string()];
        assert_eq!(
            PlainReader::new(&odd).records(r#"{"device_id":1,"window_end":"2026-01-01T00:01:00Z"}"#),
            None
        );
    }
}
