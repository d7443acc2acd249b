//! Host-shaped invocations, as the Functions host writes them (`crates/ingress/src/host.rs`
//! says what the host sends), and readers of the handler's outputs.

use base64::Engine;
use serde_json::{json, Value};

pub fn encoded(v: Value) -> Value {
    Value::String(v.to_string())
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn partition_context(id: &str) -> Value {
    json!({"IsCheckpointingAfterInvocation": true, "FullyQualifiedNamespace": "ns.servicebus.windows.net",
           "EventHubName": "windows", "ConsumerGroup": "$Default", "PartitionId": id})
}

/// Metadata for cardinality `many`, as the host writes it (arrays JSON-encoded, times without Z).
pub fn many_metadata(n: usize, first_sequence: i64) -> Value {
    let seq: Vec<i64> = (0..n as i64).map(|i| first_sequence + i).collect();
    let offsets: Vec<String> = seq.iter().map(|s| (s * 1000).to_string()).collect();
    let times: Vec<String> = (0..n)
        .map(|i| format!("2026-01-01T00:{:02}:00.{:03}", i % 60, i))
        .collect();
    json!({
        "PartitionContext": partition_context("3"),
        "PartitionKeyArray": encoded(json!(vec![Value::Null; n])),
        "OffsetArray": encoded(json!(offsets)),
        "OffsetStringArray": encoded(json!(offsets)),
        "SequenceNumberArray": encoded(json!(seq)),
        "EnqueuedTimeUtcArray": encoded(json!(times)),
        "PropertiesArray": encoded(json!(vec![json!({}); n])),
        "SystemPropertiesArray": encoded(json!(vec![json!({"x-opt-sequence-number": 1}); n])),
        "sys": {"MethodName": "ScoreWindows", "UtcNow": "2026-01-01T00:05:00.1234567Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        // function.json's retry policy: the host sends this on every attempt, 0 on the first.
        "RetryContext": first_attempt()
    })
}

/// The `RetryContext` of a first attempt under function.json's policy (5 retries), as the host
/// writes it (a nested object; `Instance` is not copied, `Exception` is null until a failure).
pub fn first_attempt() -> Value {
    json!({"RetryCount": 0, "MaxRetryCount": 5, "Exception": null, "Instance": null, "State": {}})
}

/// Metadata for cardinality `one`.
pub fn one_metadata(sequence: i64) -> Value {
    json!({
        "PartitionContext": partition_context("1"),
        "Offset": encoded(json!((sequence * 1000).to_string())),
        "OffsetString": encoded(json!((sequence * 1000).to_string())),
        "SequenceNumber": sequence.to_string(),
        "EnqueuedTimeUtc": "2026-01-01T00:07:00",
        "Properties": {},
        "SystemProperties": {"SequenceNumber": sequence},
        "sys": {"MethodName": "ScoreWindows", "UtcNow": "2026-01-01T00:07:00.5Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        "RetryContext": first_attempt(),
        // With cardinality one the host also copies the body's top-level scalars into Metadata.
        "device_id": "\"pump-001\"",
        "window_end": "\"2026-01-01T00:01:00Z\"",
        "sample_count": "60"
    })
}

/// `invocation` as the host sends it on retry `count` of a policy of `max` retries (the
/// exception of the last failure rides along, as Newtonsoft writes one).
pub fn with_retry(invocation: &Value, count: i64, max: i64) -> Value {
    let mut retried = invocation.clone();
    retried["Metadata"]["RetryContext"] = json!({
        "RetryCount": count, "MaxRetryCount": max, "Instance": null, "State": {},
        "Exception": {"ClassName": "Microsoft.Azure.WebJobs.Host.FunctionInvocationException", "Message": "Exception while executing function: Functions.ScoreWindows", "InnerException": {"ClassName": "System.Net.Http.HttpRequestException", "Message": "Response status code does not indicate success: 503 (Service Unavailable)."}}
    });
    retried
}

pub fn invocation(data: Value, metadata: Value) -> Value {
    json!({"Data": {"events": data}, "Metadata": metadata})
}

/// The messages of an output binding: an array of JSON strings.
pub fn output(reply: &Value, binding: &str) -> Vec<Value> {
    reply["Outputs"][binding]
        .as_array()
        .unwrap_or_else(|| panic!("{binding} array in {reply}"))
        .iter()
        .map(|a| serde_json::from_str(a.as_str().expect("message is a string")).expect("JSON"))
        .collect()
}

pub fn alerts(reply: &Value) -> Vec<Value> {
    output(reply, "alerts")
}

pub fn incidents(reply: &Value) -> Vec<Value> {
    output(reply, "incidents")
}

pub fn dead_letters(reply: &Value) -> Vec<Value> {
    output(reply, "deadletter")
}

