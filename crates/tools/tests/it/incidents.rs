//! Incidents through the running handler: one per fault episode, not one per window; the same
//! messages (and no second incident) when the host re-delivers a batch; `/api/incidents`; and the
//! published messages against their schema.

use serde_json::{json, Map, Value};

use crate::helpers::{
    alerts, encoded, healthy_windows, incidents, invocation, invoke, many_metadata, repo_path,
    shift_channel, spawn_app, spawn_app_with, texts,
};

/// One device's windows in time order, the minutes in `faulty` with vibration shifted.
fn one_device(minutes: usize, faulty: std::ops::Range<usize>) -> Vec<Map<String, Value>> {
    let all = healthy_windows(1, 6.0, 5);
    let mut out: Vec<Map<String, Value>> = all.into_iter().take(minutes).collect();
    for w in &mut out[faulty] {
        shift_channel(w, "vibration", 60.0);
    }
    out
}

fn kinds(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["transition"].as_str().unwrap().to_string()).collect()
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_fault_is_one_incident_and_a_redelivered_batch_is_not_a_second() {
    let app = spawn_app().await;
    let w = one_device(30, 5..15);
    // Two batches, as Event Hubs would deliver the partition: in order.
    let first = invocation(encoded(json!(texts(&w[..10]))), many_metadata(10, 100));
    let second = invocation(encoded(json!(texts(&w[10..]))), many_metadata(20, 110));
    let (status, reply) = invoke(&app, &first).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alerts(&reply).len(), 5, "per-window alerts are still published by default");
    let opened = incidents(&reply);
    assert_eq!(kinds(&opened), ["opened"], "{reply}");
    let (status, reply) = invoke(&app, &second).await;
    assert_eq!(status, 200, "{reply}");
    let resolved = incidents(&reply);
    assert_eq!(kinds(&resolved), ["resolved"], "{reply}");
    let incident = &resolved[0]["incident"];
    assert_eq!(incident["incident_id"], opened[0]["incident"]["incident_id"]);
    assert_eq!(incident["anomalous_windows"], 10);
    assert_eq!(incident["opened_at"], w[5]["window_end"]);
    assert_eq!(incident["last_anomalous_at"], w[14]["window_end"]);
    assert_eq!(incident["resolution"], "quiet_windows");
    assert_eq!(incident["channels"][0]["channel"], "vibration");
    assert_eq!(incident["first_lineage"]["sequence_number"], 105);
    assert_eq!(incident["last_lineage"]["sequence_number"], 114);

    // The host retries the first batch (say its answer was lost): the same message again.
    let (status, reply) = invoke(&app, &first).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(ids(&incidents(&reply)), ids(&opened), "the same message_id, no new incident");
    let listed: Value = app.get("/api/incidents").await.json().await.unwrap();
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["open"], 0);
    assert_eq!(listed["incidents"][0], *incident, "the stored incident is the one published");

    // Windows out of order and late (before the watermark) reopen nothing.
    let late = invocation(encoded(json!(texts(&w[5..8]))), many_metadata(3, 105));
    let (_, reply) = invoke(&app, &late).await;
    assert_eq!(kinds(&incidents(&reply)), ["opened"], "only the stored message of minute 7 again");
    let listed: Value = app.get("/api/incidents").await.json().await.unwrap();
    assert_eq!(listed["count"], 1);
}

/// Two instances on one SQLite file while a partition moves between them: each reads what the
/// other wrote (its own cached trackers are stale once the other commits), so the fault is one
/// incident and a batch re-delivered to the other instance gets the same messages.
#[tokio::test]
async fn two_instances_sharing_a_file_make_one_incident_and_the_same_messages() {
    let a = spawn_app().await;
    let b = spawn_app_with(|s| s.sqlite_path = a.db_path.clone()).await;
    let w = one_device(40, 5..15);
    let batch = |from: usize, to: usize| {
        invocation(encoded(json!(texts(&w[from..to]))), many_metadata(to - from, 100 + from as i64))
    };
    let (first, second, third) = (batch(0, 10), batch(10, 20), batch(20, 40));
    // a opens it (and caches the tracker it wrote); b takes the next batch and resolves it.
    let (_, reply) = invoke(&a, &first).await;
    let opened = incidents(&reply);
    assert_eq!(kinds(&opened), ["opened"], "{reply}");
    let (_, reply) = invoke(&b, &second).await;
    let resolved = incidents(&reply);
    assert_eq!(kinds(&resolved), ["resolved"], "{reply}");
    // The second batch re-delivered to a: a must see b's tracker, not its own copy, and answer
    // with b's message.
    let (status, reply) = invoke(&a, &second).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(ids(&incidents(&reply)), ids(&resolved), "{reply}");
    // And the first re-delivered to b: a's message.
    let (_, reply) = invoke(&b, &first).await;
    assert_eq!(ids(&incidents(&reply)), ids(&opened), "{reply}");
    // a goes on with the partition: quiet windows, nothing new.
    let (_, reply) = invoke(&a, &third).await;
    assert!(incidents(&reply).is_empty(), "{reply}");
    for app in [&a, &b] {
        let listed: Value = app.get("/api/incidents").await.json().await.unwrap();
        assert_eq!(listed["count"], 1, "{listed}");
        assert_eq!(listed["incidents"][0]["status"], "resolved", "{listed}");
    }
}

#[tokio::test]
async fn per_window_alerts_can_be_switched_off_and_incidents_stay() {
    let app = spawn_app_with(|s| s.publish_window_alerts = false).await;
    let w = one_device(6, 2..4);
    let (status, reply) = invoke(&app, &invocation(encoded(json!(texts(&w))), many_metadata(6, 1))).await;
    assert_eq!(status, 200, "{reply}");
    assert!(alerts(&reply).is_empty());
    assert_eq!(kinds(&incidents(&reply)), ["opened"]);
    let history: Value = app.get("/api/history").await.json().await.unwrap();
    assert_eq!(history["count"], 2, "anomalies are still stored");
}

#[tokio::test]
async fn api_incidents_filters_and_refuses_what_it_does_not_know() {
    let app = spawn_app().await;
    let mut w = one_device(12, 2..4);
    let mut other = one_device(12, 8..10);
    for window in &mut other {
        window.insert("device_id".into(), json!("pump-other"));
    }
    w.extend(other);
    let (status, _) = invoke(&app, &invocation(encoded(json!(texts(&w))), many_metadata(24, 1))).await;
    assert_eq!(status, 200);
    let get = |path: String| {
        let app = &app;
        async move {
            let response = app.get(&path).await;
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (_, all) = get("/api/incidents".into()).await;
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(all["incidents"][0]["status"], "open", "open first: {all}");
    assert_eq!(all["incidents"][0]["device_id"], "pump-other");
    let (_, open) = get("/api/incidents?status=open".into()).await;
    assert_eq!(open["count"], 1);
    let (_, resolved) = get("/api/incidents?status=resolved&device=".into()).await;
    assert_eq!(resolved["incidents"][0]["resolved_at"].as_str().is_some(), true, "{resolved}");
    let device = w[0]["device_id"].as_str().unwrap();
    let (_, mine) = get(format!("/api/incidents?device={device}&limit=5")).await;
    assert_eq!(mine["count"], 1);
    let (_, one) = get("/api/incidents?limit=1".into()).await;
    assert_eq!(one["count"], 1);
    for (query, field) in [("status=closed", "status"), ("since=yesterday", "since"), ("limit=0", "limit"), ("sort=asc", "sort")] {
        let (status, body) = get(format!("/api/incidents?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(repo_path(file)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[tokio::test]
async fn published_incident_messages_follow_their_schema_as_does_the_documented_example() {
    let schema = validator("schemas/incident.v1.schema.json");
    let app = spawn_app().await;
    let w = one_device(20, 3..8);
    let (_, reply) = invoke(&app, &invocation(encoded(json!(texts(&w))), many_metadata(20, 1))).await;
    let messages = incidents(&reply);
    assert_eq!(kinds(&messages), ["opened", "resolved"]);
    for message in &messages {
        let errors: Vec<String> = schema.iter_errors(message).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{message}: {errors:#?}");
    }
    let page = std::fs::read_to_string(repo_path("docs/wire-formats.md")).unwrap();
    let start = page.find("### Example incident message").expect("documented");
    let rest = &page[start..];
    let open = rest.find("```json\n").unwrap() + "```json\n".len();
    let close = rest[open..].find("```").unwrap();
    let example: Value = serde_json::from_str(&rest[open..open + close]).unwrap();
    assert!(schema.is_valid(&example), "the documented example");
    let mut unknown = example.clone();
    unknown["incident"]["extra"] = json!(1);
    assert!(!schema.is_valid(&unknown), "the schema is closed");
}

#[test]
fn the_api_and_the_message_describe_an_incident_alike() {
    let message: Value = serde_json::from_str(&std::fs::read_to_string(repo_path("schemas/incident.v1.schema.json")).unwrap()).unwrap();
    let openapi: Value = serde_json::from_str(service::http::OPENAPI).unwrap();
    let mut in_message = message["$defs"]["incident"].clone();
    let mut in_api = openapi["components"]["schemas"]["Incident"].clone();
    // They differ only in where the shared parts are defined.
    for (schema, lineage) in [(&mut in_message, "#/$defs/lineage"), (&mut in_api, "#/components/schemas/Lineage")] {
        let props = schema["properties"].as_object_mut().unwrap();
        for field in ["first_lineage", "last_lineage"] {
            assert_eq!(props[field]["$ref"], lineage);
            props.remove(field);
        }
        props.remove("peak_severity");
    }
    assert_eq!(in_message, in_api);
}
