//! The Functions host's custom-handler protocol.
//!
//! For a non-HTTP trigger the host POSTs `/{FunctionName}` with `{"Data":{...},"Metadata":{...}}`
//! and expects `{"Outputs":{...},"Logs":[...],"ReturnValue":...}` back. The host serializes every
//! value that is not a JSON object as a JSON *string* (`JsonConvert.SerializeObject`), so arrays,
//! numbers and strings arrive encoded, and an event body that is itself JSON text is encoded
//! twice; `dataType: binary` bodies arrive as base64. This module undoes all of that and pairs
//! each event with its Event Hubs coordinates.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use domain::time as timefmt;
use domain::lineage::MAX_LINEAGE_TEXT;
use domain::Lineage;

/// Output binding names of `ScoreWindows` in its `function.json`.
pub const ALERTS_OUTPUT: &str = "alerts";
pub const INCIDENTS_OUTPUT: &str = "incidents";
pub const DEAD_LETTER_OUTPUT: &str = "deadletter";

/// How many string-encoding layers are peeled from a metadata value.
const MAX_UNWRAP: usize = 4;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvocationRequest {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("invocation has no `Data.{0}` (the trigger binding's name in function.json)")]
    MissingTrigger(String),
}

/// One Event Hubs event as the handler received it: its body (still encoded) and coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerEvent {
    pub body: Value,
    pub lineage: Lineage,
}

/// The request with `Data`'s entries still raw JSON text, in document order.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(rename = "Data", default, borrow)]
    data: RawEntries<'a>,
    #[serde(rename = "Metadata", default)]
    metadata: Map<String, Value>,
}

#[derive(Default)]
struct RawEntries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Entries<'a> {
            type Value = RawEntries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Parses the host's request. It gives what `serde_json` gives for [`InvocationRequest`], except
/// that for a `many` trigger a `Data` entry holding a JSON-encoded array of bodies (the host's
/// `dataType: string` form) is decoded in one scan ([`decode_encoded_bodies`]) into the array
/// it encodes, which [`trigger_events`] reads as it reads the string. Anything else is parsed
/// as a `Value`, and entries go into the map in document order, as `serde_json` puts them.
///
/// The host writes `Data` first, so its first entry's string is usually decoded where it lies:
/// the scan that undoes its escaping also finds where it ends, and `serde_json` reads the rest
/// of the request with that string cut out (a scan of the string less). Whenever that does not
/// apply or does not parse, the request is read the general way, which gives every refusal.
pub fn parse_request(bytes: &[u8]) -> Result<InvocationRequest, serde_json::Error> {
    if let Some(request) = parse_leading_bodies(bytes) {
        return Ok(request);
    }
    let raw: RawRequest = serde_json::from_slice(bytes)?;
    build_request(raw, None)
}

/// The request with its `Data` entries parsed; `first` is the first entry's value when it was
/// decoded already (its raw text is then a placeholder).
fn build_request(raw: RawRequest, mut first: Option<Vec<String>>) -> Result<InvocationRequest, serde_json::Error> {
    let many = is_many(&raw.metadata);
    let mut data = Map::new();
    for (index, (key, value)) in raw.data.0.into_iter().enumerate() {
        let text = value.get();
        let decoded = match first.take().filter(|_| index == 0) {
            Some(bodies) => Some(bodies),
            None => many
                .then(|| text.strip_prefix('"')?.strip_suffix('"'))
                .flatten()
                .and_then(decode_encoded_bodies),
        };
        let value = match decoded {
            Some(bodies) => Value::Array(bodies.into_iter().map(Value::String).collect()),
            None => serde_json::from_str(text)?,
        };
        data.insert(key, value);
    }
    Ok(InvocationRequest {
        data,
        metadata: raw.metadata,
    })
}

/// The host's usual request, `{"Data":{"<binding>":"<encoded array of bodies>",...},...}`:
/// the bodies decoded in the scan that finds the string's end, and the rest of the request,
/// with `0` where the string was, read by `serde_json` (so every other entry, duplicate key,
/// nesting limit and trailing byte is judged as the general way judges it). `None` sends the
/// request the general way: another shape, a string that is not the plain form, a request
/// that does not parse, or a trigger that is not `many` (its string is then one body).
fn parse_leading_bodies(bytes: &[u8]) -> Option<InvocationRequest> {
    let mut at = 0;
    for token in [b"{".as_slice(), b"\"Data\"", b":", b"{", b"\""] {
        at = after_token(bytes, at, token)?;
    }
    // The entry's name: plain text (an escape sends the request the general way).
    at += bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    for token in [b"\"".as_slice(), b":", b"\""] {
        at = after_token(bytes, at, token)?;
    }
    let opening = at - 1;
    let (bodies, end) = scan_encoded_bodies(bytes, at)?;
    // The array ends where the string does, at its closing quote.
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    let closing = end + 1;
    let mut rest = Vec::with_capacity(opening + 1 + bytes.len() - closing);
    rest.extend_from_slice(&bytes[..opening]);
    rest.push(b'0');
    rest.extend_from_slice(&bytes[closing..]);
    let raw: RawRequest = serde_json::from_slice(&rest).ok()?;
    if !is_many(&raw.metadata) || raw.data.0.first().map(|(_, v)| v.get()) != Some("0") {
        return None;
    }
    build_request(raw, Some(bodies)).ok()
}

/// The index past `token` when only JSON whitespace comes before it from `at`.
fn after_token(bytes: &[u8], mut at: usize, token: &[u8]) -> Option<usize> {
    while bytes.get(at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    bytes.get(at..at + token.len()).filter(|t| *t == token)?;
    Some(at + token.len())
}

/// The bodies of a JSON array of strings that is itself the content of a JSON string (the raw
/// text between its quotes): both levels of escaping undone in one scan. `None` for anything
/// but the plain form (`\u` escapes, control characters, other values, other whitespace), which
/// the caller parses the general way; when it answers, it answers what two `serde_json` passes
/// would (the fuzz target `invocation` checks it).
pub fn decode_encoded_bodies(raw: &str) -> Option<Vec<String>> {
    let (bodies, end) = scan_encoded_bodies(raw.as_bytes(), 0)?;
    (end == raw.len()).then_some(bodies)
}

/// [`decode_encoded_bodies`] of the string content that starts at `raw[start]`, also giving the
/// index just past the array and the spaces after it (where the content must end). A quote
/// inside a body's text ends the string early: `None`.
fn scan_encoded_bodies(raw: &[u8], start: usize) -> Option<(Vec<String>, usize)> {
    let n = raw.len();
    let mut i = start;
    let skip_space = |i: &mut usize| {
        while *i < n && raw[*i] == b' ' {
            *i += 1;
        }
    };
    let mut out = Vec::new();
    skip_space(&mut i);
    if raw.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    skip_space(&mut i);
    let close = |mut i: usize, out: Vec<String>| {
        i += 1;
        skip_space(&mut i);
        Some((out, i))
    };
    if raw.get(i) == Some(&b']') {
        return close(i, out);
    }
    // Bodies of one invocation are alike in size: each starts with room for the largest so far.
    let mut room = 0;
    loop {
        // A body starts with a quote, which the outer string writes as `\"`.
        if raw.get(i..i + 2) != Some(b"\\\"".as_slice()) {
            return None;
        }
        i += 2;
        let body_start = i;
        let mut body = Vec::with_capacity(room);
        loop {
            // Bytes up to the next backslash are the body's own, at both levels; a quote there
            // would end the outer string early. (Control characters, which are not JSON, are
            // looked for once the body is whole.)
            let at = memchr::memchr2(b'\\', b'"', &raw[i..])?;
            body.extend_from_slice(&raw[i..i + at]);
            i += at;
            if raw[i] != b'\\' {
                return None;
            }
            i += 1;
            match *raw.get(i)? {
                // `\"`: the body's closing quote.
                b'"' => {
                    i += 1;
                    break;
                }
                b'/' => {
                    body.push(b'/');
                    i += 1;
                }
                // `\\`: an escape of the body's own; the next outer character (itself escaped
                // when it is a quote or a backslash) says which.
                b'\\' => {
                    i += 1;
                    let (byte, width) = match *raw.get(i)? {
                        b'\\' => match *raw.get(i + 1)? {
                            quote_or_backslash @ (b'"' | b'\\') => (quote_or_backslash, 2),
                            _ => return None,
                        },
                        b'n' => (b'\n', 1),
                        b'r' => (b'\r', 1),
                        b't' => (b'\t', 1),
                        b'/' => (b'/', 1),
                        _ => return None,
                    };
                    body.push(byte);
                    i += width;
                }
                _ => return None,
            }
        }
        // A control character in the text is not JSON (escaped ones were undone above). Every
        // byte is looked at, not up to the first found: this loop compiles to vector code.
        if raw[body_start..i].iter().fold(false, |found, &b| found | (b < 0x20)) {
            return None;
        }
        room = room.max(body.len());
        out.push(String::from_utf8(body).ok()?);
        skip_space(&mut i);
        match *raw.get(i)? {
            b',' => {
                i += 1;
                skip_space(&mut i);
            }
            b']' => return close(i, out),
            _ => return None,
        }
    }
}

fn is_many(metadata: &Map<String, Value>) -> bool {
    meta(metadata, "SequenceNumberArray").is_some() || meta(metadata, "EnqueuedTimeUtcArray").is_some()
}

/// Peels JSON-in-a-string layers: `"[1,2]"` → `[1,2]`, `"\"x\""` → `"x"`. Text that is not JSON
/// (a plain partition key) is kept as it is.
pub fn unwrap_value(value: &Value) -> Value {
    let mut current = value.clone();
    for _ in 0..MAX_UNWRAP {
        let Value::String(text) = &current else { break };
        match serde_json::from_str::<Value>(text) {
            Ok(inner) => current = inner,
            Err(_) => break,
        }
    }
    current
}

fn meta<'a>(metadata: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    metadata.get(key).or_else(|| {
        metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A lineage text, when it is one Event Hubs could have written ([`MAX_LINEAGE_TEXT`]).
fn as_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (text.len() <= MAX_LINEAGE_TEXT).then_some(text)
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_time(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => timefmt::canonical(s).or_else(|| as_text(value)),
        _ => None,
    }
}

fn partition_id(metadata: &Map<String, Value>) -> Option<String> {
    let context = unwrap_value(meta(metadata, "PartitionContext")?);
    let object = context.as_object()?;
    ["PartitionId", "partitionId"]
        .iter()
        .find_map(|k| object.get(*k))
        .and_then(as_text)
}

/// The per-event list for an `...Array` metadata key (cardinality many); each element is
/// peeled when it is read ([`element_i64`], [`element_text`], [`element_time`]).
fn array_meta(metadata: &Map<String, Value>, key: &str) -> Vec<Value> {
    match meta(metadata, key).map(unwrap_value) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

// The forms the host writes (a number, a string of digits, a timestamp) are read as they are;
// only anything else is peeled with `unwrap_value`, which would give the same answer for them
// at the cost of a parse per event.

fn element_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        other => as_i64(&unwrap_value(other)),
    }
}

fn element_text(value: &Value) -> Option<String> {
    match value {
        // Digits that fit a u64 parse to a number that prints as the same digits.
        Value::String(s) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        other => as_text(&unwrap_value(other)),
    }
}

fn element_time(value: &Value) -> Option<String> {
    // An RFC 3339 timestamp is not JSON, so peeling would leave it as it is.
    if let Value::String(s) = value {
        if let Some(canonical) = timefmt::canonical(s) {
            return Some(canonical);
        }
    }
    as_time(&unwrap_value(value))
}

/// The host's retry state for this invocation (`Metadata.RetryContext`), sent when the function
/// has a retry policy: the attempt (0 first) and the policy's maximum (-1: for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryContext {
    pub retry_count: i64,
    pub max_retry_count: i64,
}

/// Reads `Metadata.RetryContext` (an object, or a JSON string holding one; either casing).
pub fn retry_context(metadata: &Map<String, Value>) -> Option<RetryContext> {
    let context = unwrap_value(meta(metadata, "RetryContext")?);
    let object = context.as_object()?;
    let field = |key: &str| meta(object, key).and_then(as_i64);
    Some(RetryContext {
        retry_count: field("RetryCount")?,
        max_retry_count: field("MaxRetryCount")?,
    })
}

/// The per-event coordinates of a cardinality-`many` invocation, index by index.
struct ManyLineage {
    partition: Option<String>,
    sequence: Vec<Value>,
    offsets: Vec<Value>,
    enqueued: Vec<Value>,
}

impl ManyLineage {
    fn read(metadata: &Map<String, Value>) -> Self {
        // Extension 6.5.2+ sends the offset as text too; on geo-replicated namespaces the numeric
        // `Offset` is -1 and only the text form identifies the event.
        let mut offsets = array_meta(metadata, "OffsetStringArray");
        if offsets.is_empty() {
            offsets = array_meta(metadata, "OffsetArray");
        }
        ManyLineage {
            partition: partition_id(metadata),
            sequence: array_meta(metadata, "SequenceNumberArray"),
            offsets,
            enqueued: array_meta(metadata, "EnqueuedTimeUtcArray"),
        }
    }

    fn of(&self, i: usize) -> Lineage {
        Lineage {
            partition_id: self.partition.clone(),
            sequence_number: self.sequence.get(i).and_then(element_i64),
            offset: self.offsets.get(i).and_then(element_text),
            enqueued_time: self.enqueued.get(i).and_then(element_time),
        }
    }
}

/// The coordinates of a cardinality-`one` invocation's event.
fn one_lineage(metadata: &Map<String, Value>) -> Lineage {
    let single = |key: &str| meta(metadata, key).map(unwrap_value);
    Lineage {
        partition_id: partition_id(metadata),
        sequence_number: single("SequenceNumber").as_ref().and_then(as_i64),
        offset: single("OffsetString")
            .or_else(|| single("Offset"))
            .as_ref()
            .and_then(as_text),
        enqueued_time: single("EnqueuedTimeUtc").as_ref().and_then(as_time),
    }
}

/// Splits the trigger input into events with their lineage.
///
/// Cardinality `many` (the host sends `SequenceNumberArray`) gives a JSON array of bodies;
/// cardinality `one` gives a single body, which may itself be a Stream Analytics array of records.
pub fn trigger_events(
    request: &InvocationRequest,
    binding: &str,
) -> Result<Vec<TriggerEvent>, ProtocolError> {
    let key = trigger_key(request, binding)?;
    Ok(events_of(Cow::Borrowed(&request.data[key]), &request.metadata))
}

/// [`trigger_events`], moving the bodies out of the request instead of copying them (its
/// trigger entry is left `null`).
pub fn take_trigger_events(
    request: &mut InvocationRequest,
    binding: &str,
) -> Result<Vec<TriggerEvent>, ProtocolError> {
    let key = trigger_key(request, binding)?.to_string();
    let raw = request.data.get_mut(&key).map(Value::take).unwrap_or(Value::Null);
    Ok(events_of(Cow::Owned(raw), &request.metadata))
}

/// The `Data` key of the trigger binding: its name exactly, else the first match ignoring case.
fn trigger_key<'r>(request: &'r InvocationRequest, binding: &str) -> Result<&'r str, ProtocolError> {
    request
        .data
        .keys()
        .find(|k| *k == binding)
        .or_else(|| request.data.keys().find(|k| k.eq_ignore_ascii_case(binding)))
        .map(String::as_str)
        .ok_or_else(|| ProtocolError::MissingTrigger(binding.to_string()))
}

/// The events of the trigger's value; an encoded array is parsed from a borrowed value without
/// copying its text first.
fn events_of(raw: Cow<'_, Value>, metadata: &Map<String, Value>) -> Vec<TriggerEvent> {
    if is_many(metadata) {
        let bodies = match unwrap_outer_array(&raw) {
            Some(items) => items,
            // A `many` trigger whose data is not an array: treat it as one body rather than lose it.
            None => match raw.into_owned() {
                Value::Array(items) => items,
                other => vec![other],
            },
        };
        let lineage = ManyLineage::read(metadata);
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| TriggerEvent {
                body,
                lineage: lineage.of(i),
            })
            .collect()
    } else {
        vec![TriggerEvent {
            body: raw.into_owned(),
            lineage: one_lineage(metadata),
        }]
    }
}

/// Where a batch's events are in their hub: what an oversized invocation's dead letter names so
/// that its events can be read again from the source hub.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchCoordinates {
    /// The first event's lineage.
    pub first: Lineage,
    pub last_sequence_number: Option<i64>,
    pub events: Option<usize>,
}

/// The coordinates in an invocation's `Metadata` (cardinality many or one).
pub fn batch_coordinates(metadata: &Map<String, Value>) -> BatchCoordinates {
    let many = ManyLineage::read(metadata);
    if many.sequence.is_empty() {
        let first = one_lineage(metadata);
        return BatchCoordinates {
            last_sequence_number: first.sequence_number,
            events: first.sequence_number.map(|_| 1),
            first,
        };
    }
    BatchCoordinates {
        first: many.of(0),
        last_sequence_number: many.sequence.last().and_then(element_i64),
        events: Some(many.sequence.len()),
    }
}

/// The invocation's `Metadata` object from the last bytes of a body too large to parse whole:
/// the host writes `{"Data":{...},"Metadata":{...}}`, so the last top-level `"Metadata":` is
/// followed by one object and the body's closing brace. Inside JSON strings quotes are escaped,
/// so the key cannot be forged by event bodies; a candidate that does not end the body is not it.
pub fn metadata_from_tail(tail: &[u8]) -> Option<Map<String, Value>> {
    const KEY: &[u8] = b"\"Metadata\"";
    let mut end = tail.len();
    while let Some(at) = find_last(&tail[..end], KEY) {
        end = at;
        let rest = &tail[at + KEY.len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<Map<String, Value>>();
        if let Some(Ok(object)) = values.next() {
            let after = &rest[colon + 1 + values.byte_offset()..];
            let closing: Vec<u8> = after.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            if closing == b"}" {
                return Some(object);
            }
        }
    }
    None
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The batch of a `many` trigger held in a string (`"[\"{...}\",...]"`); `None` for anything
/// else (an array is taken as it is by the caller).
fn unwrap_outer_array(raw: &Value) -> Option<Vec<Value>> {
    match raw {
        Value::String(text) if text.trim_start().starts_with('[') => {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => Some(items),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Builds the request the host sends for an Event Hubs trigger with `cardinality: many` and
/// `dataType: string`: the bodies as one JSON-encoded array of strings, the per-event metadata as
/// JSON-encoded arrays, and the `RetryContext` of the first attempt of a policy that retries
/// for ever (`MaxRetryCount` -1): the caller (the demo, `replay`) retries itself, so the handler
/// answers a store outage with 503 instead of dead-lettering into a response nobody publishes.
pub fn many_string_invocation(
    binding: &str,
    bodies: &[String],
    partition_id: &str,
    first_sequence: i64,
    enqueued_time: &str,
) -> Value {
    let n = bodies.len() as i64;
    let sequence: Vec<i64> = (first_sequence..first_sequence + n).collect();
    let offsets: Vec<String> = sequence.iter().map(|s| (s * 512).to_string()).collect();
    let enqueued: Vec<&str> = bodies.iter().map(|_| enqueued_time).collect();
    let encode = |v: Value| Value::String(v.to_string());
    serde_json::json!({
        "Data": { binding: encode(serde_json::json!(bodies)) },
        "Metadata": {
            "PartitionContext": {
                "FullyQualifiedNamespace": "local.servicebus.windows.net",
                "EventHubName": "windows",
                "ConsumerGroup": "$Default",
                "PartitionId": partition_id
            },
            "SequenceNumberArray": encode(serde_json::json!(sequence)),
            "OffsetArray": encode(serde_json::json!(offsets)),
            "EnqueuedTimeUtcArray": encode(serde_json::json!(enqueued)),
            "sys": {"MethodName": "ScoreWindows", "UtcNow": enqueued_time, "RandGuid": "00000000-0000-0000-0000-000000000000"},
            "RetryContext": {"RetryCount": 0, "MaxRetryCount": -1, "Exception": null, "Instance": null, "State": {}}
        }
    })
}

/// Where a batch came from: its partition, sequence-number range and the host's retry attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchInfo {
    pub partition: Option<String>,
    pub sequence_range: Option<(i64, i64)>,
    /// `Metadata.RetryContext.RetryCount`: 0 on the first attempt.
    pub retry_count: Option<i64>,
    /// `Metadata.RetryContext.MaxRetryCount`: the policy's retries (-1: retry for ever).
    pub max_retry_count: Option<i64>,
}

impl BatchInfo {
    pub fn of(events: &[TriggerEvent], request: &InvocationRequest) -> Self {
        let sequence_numbers = events.iter().filter_map(|e| e.lineage.sequence_number);
        let sequence_range = sequence_numbers.clone().min().zip(sequence_numbers.max());
        let retry = retry_context(&request.metadata);
        BatchInfo {
            partition: events.first().and_then(|e| e.lineage.partition_id.clone()),
            sequence_range,
            retry_count: retry.map(|r| r.retry_count),
            max_retry_count: retry.map(|r| r.max_retry_count),
        }
    }

    /// Whether a failure now is final: the host will not retry this batch again, and its
    /// listener checkpoints past it. With a retry policy in `function.json` the host sends
    /// `RetryContext` on every attempt (the WebJobs executor creates it before the first, with
    /// `RetryCount` 0, and counts up to `MaxRetryCount`; -1 retries for ever). Without one there
    /// is no `RetryContext` and no retry: every attempt is the last.
    pub fn is_last_attempt(&self) -> bool {
        match (self.retry_count, self.max_retry_count) {
            (Some(count), Some(max)) => max >= 0 && count >= max,
            _ => true,
        }
    }

    pub fn partition_text(&self) -> &str {
        self.partition.as_deref().unwrap_or("?")
    }

    pub fn sequence_text(&self) -> String {
        self.sequence_range
            .map_or_else(|| "?".to_string(), |(lo, hi)| format!("{lo}..={hi}"))
    }
}

/// An output message that cannot be serialized (cannot happen for the types sent, but is not
/// assumed).
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize the {what} output: {source}")]
pub struct OutputError {
    pub what: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Each message as a JSON string: the Event Hubs output binding sends a string as the body.
fn messages<T: Serialize>(items: &[T], what: &'static str) -> Result<Value, OutputError> {
    items
        .iter()
        .map(|item| {
            serde_json::to_string(item)
                .map(Value::String)
                .map_err(|source| OutputError { what, source })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The host's response to a `ScoreWindows` invocation: the alerts, incident messages and dead
/// letters on their output bindings, and `logs` for the host's invocation log.
pub fn response(
    alerts: &[domain::Alert],
    incidents: &[domain::IncidentMessage],
    dead_letters: &[domain::DeadLetter],
    logs: Vec<String>,
) -> Result<InvocationResponse, OutputError> {
    let mut outputs = Map::new();
    outputs.insert(ALERTS_OUTPUT.into(), messages(alerts, "alerts")?);
    outputs.insert(INCIDENTS_OUTPUT.into(), messages(incidents, "incidents")?);
    outputs.insert(
        DEAD_LETTER_OUTPUT.into(),
        messages(dead_letters, "dead-letter")?,
    );
    Ok(InvocationResponse {
        outputs,
        logs,
        return_value: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_coordinate_longer_than_event_hubs_writes_is_dropped_not_copied_into_every_output() {
        // Found by the `invocation` fuzz target: a 20 KB OffsetString rode along in every alert.
        let long = "x".repeat(MAX_LINEAGE_TEXT + 1);
        let metadata: Map<String, Value> = serde_json::from_value(json!({
            "PartitionContext": {"PartitionId": long},
            "OffsetString": long, "SequenceNumber": 7, "EnqueuedTimeUtc": long
        }))
        .unwrap();
        let lineage = one_lineage(&metadata);
        assert_eq!((lineage.partition_id, lineage.offset, lineage.enqueued_time), (None, None, None));
        assert_eq!(lineage.sequence_number, Some(7));
        let short: Map<String, Value> =
            serde_json::from_value(json!({"OffsetString": "x".repeat(MAX_LINEAGE_TEXT)})).unwrap();
        assert_eq!(one_lineage(&short).offset.map(|o| o.len()), Some(MAX_LINEAGE_TEXT));
    }

    /// What two serde_json passes make of the content of an encoded array of bodies.
    fn two_passes(raw: &str) -> Option<Vec<String>> {
        let text: String = serde_json::from_str(&format!("\"{raw}\"")).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[test]
    fn encoded_bodies_decode_in_one_scan_as_in_two_passes() {
        let tricky = [
            "{\"device_id\":\"d1\",\"a\":1.5}",
            "{\"a\":1}\n{\"a\":2}\r\n",
            "quote \" backslash \\ slash / tab \t end",
            "ünïcödé ✓ 𝔭",
            "",
            "\\\"",
        ];
        let bodies: Vec<String> = tricky.iter().map(|b| b.to_string()).collect();
        for subset in [&bodies[..], &bodies[..1], &bodies[2..3], &[][..]] {
            // The host's form: the array encoded, then encoded again as a string.
            let array = serde_json::to_string(subset).unwrap();
            let outer = serde_json::to_string(&array).unwrap();
            let raw = &outer[1..outer.len() - 1];
            assert_eq!(decode_encoded_bodies(raw), Some(subset.to_vec()), "{raw}");
            assert_eq!(decode_encoded_bodies(raw), two_passes(raw));
        }
        // Anything but the plain form is left to the general path.
        for raw in [
            "",
            "[1]",
            "{}",
            "[\\\"a\\\"] x",
            "[\\\"a\\u0041\\\"]",
            "[\\\"\\\\u0041\\\"]",
            "[\\n\\\"a\\\"]",
            "[\\\"a\\\",]",
            "[\\\"unterminated",
        ] {
            assert_eq!(decode_encoded_bodies(raw), None, "{raw}");
        }
    }

    #[test]
    fn parse_request_reads_what_serde_json_reads() {
        let bodies = vec!["{\"device_id\":\"d\\\"1\"}".to_string(), "{}\n{}".to_string()];
        let many = many_string_invocation("events", &bodies, "3", 10, "2026-01-01T00:00:00Z").to_string();
        let one = json!({"Data": {"events": serde_json::to_string(&bodies).unwrap()}, "Metadata": {"SequenceNumber": 4}}).to_string();
        let odd = json!({"Data": {"Events": "[\"x\"] trailing", "events": [1, 2]}, "Metadata": {"SequenceNumberArray": "[1,2]"}}).to_string();
        for text in [many, one, odd] {
            let fast = parse_request(text.as_bytes()).unwrap();
            let general: InvocationRequest = serde_json::from_str(&text).unwrap();
            assert_eq!(trigger_events(&fast, "events"), trigger_events(&general, "events"), "{text}");
            let mut taken = fast.clone();
            assert_eq!(take_trigger_events(&mut taken, "events"), trigger_events(&general, "events"));
        }
        assert!(parse_request(b"{\"Data\": 3}").is_err());
        assert!(parse_request(b"not json").is_err());
    }

    #[test]
    fn the_leading_encoded_string_is_decoded_where_it_lies_and_the_rest_judged_by_serde_json() {
        let bodies = vec!["{\"device_id\":\"d\\\"1\",\"x\":1}".to_string(), "{}\n{}".to_string()];
        let host = many_string_invocation("events", &bodies, "3", 10, "2026-01-01T00:00:00Z").to_string();
        assert!(parse_leading_bodies(host.as_bytes()).is_some(), "the host's shape takes the one scan: {host}");
        let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        let too_deep = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        let many = r#""SequenceNumberArray":"[1,2]""#;
        let cases = [
            host.clone(),
            // Spaces wherever JSON allows them.
            format!(" {{ \"Data\" : {{ \"events\" : \"[ \\\"a\\\" , \\\"b\\\" ]\" }} , \"Metadata\" : {{ {many} }} }} "),
            // A later entry of the same name wins, as in serde_json's map.
            format!(r#"{{"Data":{{"events":"[\"a\"]","events":"[\"b\"]"}},"Metadata":{{{many}}}}}"#),
            format!(r#"{{"Data":{{"events":"[\"a\"]","Events":[1]}},"Metadata":{{{many}}},"Other":{{"x":[true]}}}}"#),
            // Not many: the string is one body.
            r#"{"Data":{"events":"[\"a\"]"},"Metadata":{"SequenceNumber":4}}"#.to_string(),
            // Refusals: trailing text, a repeated Data, too deep, a control character, bad UTF-8
            // after the string, a string that never closes.
            format!(r#"{{"Data":{{"events":"[\"a\"]"}},"Metadata":{{{many}}}}} x"#),
            format!(r#"{{"Data":{{"events":"[\"a\"]"}},"Data":{{}},"Metadata":{{{many}}}}}"#),
            format!(r#"{{"Data":{{"events":"[\"a\"]"}},"Metadata":{{{many},"d":{deep}}}}}"#),
            format!(r#"{{"Data":{{"events":"[\"a\"]"}},"Metadata":{{{many},"d":{too_deep}}}}}"#),
            format!("{{\"Data\":{{\"events\":\"[\\\"a\tb\\\"]\"}},\"Metadata\":{{{many}}}}}"),
            format!(r#"{{"Data":{{"events":"[\"a\"]"}},"Metadata":{{{many}}}"#),
            r#"{"Data":{"events":"[\"a\"]"#.to_string(),
        ];
        for text in cases {
            let general = serde_json::from_str::<InvocationRequest>(&text);
            match parse_request(text.as_bytes()) {
                Ok(fast) => {
                    let general = general.unwrap_or_else(|e| panic!("serde_json refuses {text}: {e}"));
                    assert_eq!(trigger_events(&fast, "events"), trigger_events(&general, "events"), "{text}");
                    assert_eq!(fast.metadata, general.metadata, "{text}");
                }
                Err(_) => assert!(general.is_err(), "refused what serde_json reads: {text}"),
            }
        }
        let invalid_utf8 = [&host.as_bytes()[..host.len() - 2], b"\xff}}"].concat();
        assert!(parse_request(&invalid_utf8).is_err());
    }

    #[test]
    fn array_elements_read_as_they_are_agree_with_peeling_them() {
        for element in [
            json!(7), json!(-3), json!("42"), json!("0512"), json!("18446744073709551615"),
            json!("99999999999999999999"), json!("1e3"), json!("\"77\""), json!(""), json!(null),
            json!("2026-01-01T00:00:00.1234567Z"), json!("2026-01-01T01:00:00+01:00"),
            json!("\"2026-01-01T00:00:00Z\""), json!("12/01/2026 10:00:00"), json!(12.5),
        ] {
            let peeled = unwrap_value(&element);
            assert_eq!(element_i64(&element), as_i64(&peeled), "{element}");
            assert_eq!(element_text(&element), as_text(&peeled), "{element}");
            assert_eq!(element_time(&element), as_time(&peeled), "{element}");
        }
    }

    #[test]
    fn unwrap_peels_encoded_layers_but_keeps_plain_text() {
        assert_eq!(unwrap_value(&json!("[1,2]")), json!([1, 2]));
        assert_eq!(
            unwrap_value(&json!("\"2026-01-01T00:00:00Z\"")),
            json!("2026-01-01T00:00:00Z")
        );
        assert_eq!(unwrap_value(&json!("pump-7")), json!("pump-7"));
        assert_eq!(unwrap_value(&json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn metadata_is_found_at_the_end_of_a_truncated_body_and_not_forged_by_event_text() {
        let padding = "x".repeat(5000);
        let bodies: Vec<String> = (0..3)
            .map(|i| format!("{{\"pad\":\"{padding}\"}}") + &format!("{{\"device_id\":\"d{i}\",\"note\":\"\\\"Metadata\\\":{{}}}}\"}}"))
            .collect();
        let request = many_string_invocation("events", &bodies, "7", 100, "2026-01-01T00:00:00Z");
        let text = request.to_string();
        assert!(text.starts_with("{\"Data\""), "the host's order: Data, then Metadata");
        let tail = &text.as_bytes()[text.len() / 2..];
        let metadata = metadata_from_tail(tail).expect("found");
        let at = batch_coordinates(&metadata);
        assert_eq!(at.first.partition_id.as_deref(), Some("7"));
        assert_eq!(at.first.sequence_number, Some(100));
        assert_eq!(at.last_sequence_number, Some(102));
        assert_eq!(at.events, Some(3));
        assert_eq!(at.first.offset.as_deref(), Some("51200"));
        // Only the start of the body: no Metadata to be had.
        assert_eq!(metadata_from_tail(&text.as_bytes()[..40]), None);
        assert_eq!(metadata_from_tail(b"\"Metadata\": {\"a\": 1}, \"more\": 2}"), None);
    }

    #[test]
    fn missing_trigger_binding_is_a_protocol_error() {
        let request = InvocationRequest::default();
        assert_eq!(
            trigger_events(&request, "events"),
            Err(ProtocolError::MissingTrigger("events".into()))
        );
    }
}
