//! `ScoreWindows` over real HTTP with every request shape the Functions host produces for an
//! Event Hubs trigger (see notes in `crates/ingress/src/host.rs`), bad events, re-delivery and a store outage.

use serde_json::{json, Value};

use crate::helpers::{
    alerts, b64, dead_letters, encoded, invocation, invoke, many_metadata, one_metadata, spawn_app,
    texts, windows, with_retry,
};

#[tokio::test]
async fn every_host_shape_decodes_into_windows() {
    let app = spawn_app().await;
    let w = windows(12, 3); // 4 anomalous windows: 0, 3, 6, 9
    let t = texts(&w);
    let line_separated = format!("{}\n{}\n{}", t[0], t[1], t[2]);
    let array_format = json!([w[3], w[4], w[5]]).to_string();

    let cases: Vec<(&str, Value, usize)> = vec![
        // many + dataType string: a JSON-encoded array of body strings.
        (
            "many/string",
            invocation(encoded(json!([t[0], t[1], t[2]])), many_metadata(3, 100)),
            3,
        ),
        // many + string, Stream Analytics LineSeparated and Array formats inside events.
        (
            "many/string line-separated + array",
            invocation(
                encoded(json!([line_separated, array_format])),
                many_metadata(2, 200),
            ),
            6,
        ),
        // many + binary: a JSON-encoded array of base64 bodies.
        (
            "many/binary",
            invocation(
                encoded(json!([b64(&t[6]), b64(&line_separated)])),
                many_metadata(2, 300),
            ),
            4,
        ),
        // many + dataType unset: the host re-serializes parsed bodies into one JSON array.
        (
            "many/unset",
            invocation(encoded(json!([w[6], w[7]])), many_metadata(2, 400)),
            2,
        ),
        // one + string (or unset): the body JSON-encoded once more.
        (
            "one/string",
            invocation(encoded(json!(t[9])), one_metadata(500)),
            1,
        ),
        (
            "one/string array format",
            invocation(encoded(json!(array_format)), one_metadata(501)),
            3,
        ),
        // one + binary: plain base64.
        (
            "one/binary",
            invocation(Value::String(b64(&t[10])), one_metadata(502)),
            1,
        ),
        // A body encoded several times over, and one the host never encoded (already an object).
        (
            "one/thrice-encoded",
            invocation(encoded(encoded(json!(t[11]))), one_metadata(503)),
            1,
        ),
        (
            "one/object",
            invocation(Value::Object(w[11].clone()), one_metadata(504)),
            1,
        ),
    ];
    for (name, body, expected) in cases {
        let (status, reply) = invoke(&app, &body).await;
        assert_eq!(status, 200, "{name}: {reply}");
        assert_eq!(dead_letters(&reply), Vec::<Value>::new(), "{name}");
        let summary = reply["Logs"][0].as_str().unwrap();
        assert!(
            summary.contains(&format!("{expected} windows scored")),
            "{name}: {summary}"
        );
        assert_eq!(reply["ReturnValue"], Value::Null);
    }

    // Lineage from the metadata is on every stored row.
    let history: Value = app
        .get("/api/history?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let rows = history["anomalies"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{history}");
    let first = rows
        .iter()
        .find(|r| r["lineage"]["sequence_number"] == 100)
        .expect("window 0 stored with its sequence number");
    assert_eq!(first["lineage"]["partition_id"], "3");
    assert_eq!(first["lineage"]["offset"], "100000");
    assert_eq!(first["lineage"]["enqueued_time"], "2026-01-01T00:00:00Z");
    assert_eq!(first["top_channel"], "vibration");
    let single = rows
        .iter()
        .find(|r| r["lineage"]["sequence_number"] == 500)
        .expect("window 9 from the cardinality-one event");
    assert_eq!(single["lineage"]["partition_id"], "1");
    assert_eq!(single["lineage"]["enqueued_time"], "2026-01-01T00:07:00Z");
}

#[tokio::test]
async fn alerts_carry_the_explanation_and_are_forwardable_strings() {
    let app = spawn_app().await;
    let w = windows(4, 4);
    let (status, reply) = invoke(
        &app,
        &invocation(encoded(json!(texts(&w))), many_metadata(4, 10)),
    )
    .await;
    assert_eq!(status, 200);
    let alerts = alerts(&reply);
    assert_eq!(alerts.len(), 1, "{reply}");
    let a = &alerts[0];
    assert_eq!(a["device_id"], w[0]["device_id"]);
    assert_eq!(a["window_end"], w[0]["window_end"]);
    assert!(a["score"].as_f64().unwrap() > a["threshold"].as_f64().unwrap());
    // Version 1 of the alert wire format: every alert is an anomaly, internal timings stay home.
    assert_eq!(a["schema_version"], 1);
    assert!(
        a.get("is_anomaly").is_none() && a.get("processing_time_us").is_none(),
        "{a}"
    );
    assert!(["low", "medium", "high", "critical"].contains(&a["severity"].as_str().unwrap()));
    assert_eq!(a["top_channel"], "vibration");
    assert!(
        a["explanation"].as_str().unwrap().starts_with("vibration "),
        "{a}"
    );
    let sum: f64 = a["contributions"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - a["score"].as_f64().unwrap()).abs() < 1e-9 * sum.max(1.0));
    assert!(a["model_version"].as_str().unwrap().starts_with("ae-"));
    assert_eq!(a["lineage"]["sequence_number"], 10);
    assert_eq!(
        a["alert_id"],
        format!(
            "{}/{}",
            a["device_id"].as_str().unwrap(),
            a["window_end"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn bad_events_are_dead_lettered_and_the_rest_of_the_batch_is_scored() {
    let app = spawn_app().await;
    let w = windows(6, 2); // anomalies at 0, 2, 4
    let mut t = texts(&w);
    let mut missing = w[1].clone();
    missing.remove("pressure_max");
    let mut nan = w[3].clone();
    nan.insert("sound_std".into(), json!("NaN"));
    let mut null = w[5].clone();
    null.insert("humidity_mean".into(), Value::Null);
    t[1] = Value::Object(missing).to_string();
    t[3] = Value::Object(nan).to_string();
    t[5] = Value::Object(null).to_string();
    t.push("temperature=21.5;humidity=40".into()); // not JSON
    t.push("{\"device_id\": \"pump-001\", \"window_end\": ".into()); // truncated
    t.push("42".into()); // JSON, not a window
    let n = t.len();
    let (status, reply) =
        invoke(&app, &invocation(encoded(json!(t)), many_metadata(n, 1000))).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alerts(&reply).len(), 3);
    let dead = dead_letters(&reply);
    let kinds: Vec<&str> = dead.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "missing_feature",
            "invalid_feature",
            "invalid_feature",
            "not_json",
            "not_json",
            "not_object"
        ]
    );
    let summary: Vec<(i64, String, Value)> = dead
        .iter()
        .map(|d| {
            (
                d["lineage"]["sequence_number"].as_i64().unwrap(),
                d["reason"].as_str().unwrap().to_string(),
                d["field"].clone(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 6, "{summary:?}");
    assert_eq!(summary[0].0, 1001);
    assert_eq!(summary[0].1, "missing feature `pressure_max`");
    assert_eq!(summary[0].2, "pressure_max");
    assert_eq!(summary[1].0, 1003);
    assert!(
        summary[1].1.contains("sound_std") && summary[1].1.contains("not finite"),
        "{}",
        summary[1].1
    );
    assert_eq!(
        (summary[2].0, summary[2].2.clone()),
        (1005, json!("humidity_mean"))
    );
    assert!(
        summary[3].1.starts_with("event body is not JSON"),
        "{}",
        summary[3].1
    );
    assert!(
        summary[4].1.starts_with("event body is not JSON"),
        "{}",
        summary[4].1
    );
    assert_eq!(
        summary[5].1,
        "event body is a JSON number, not a window object"
    );
    // The original body travels with the reason, and the partition with it.
    assert_eq!(dead[3]["body"], "temperature=21.5;humidity=40");
    assert_eq!(dead[3]["lineage"]["partition_id"], "3");
    let logs = reply["Logs"].as_array().unwrap();
    assert!(logs[0].as_str().unwrap().contains("6 refused"), "{logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().contains("sequence number 1003")),
        "{logs:?}"
    );
    assert_eq!(app.stored_count().await, 3);
    app.assert_metrics(&[
        "sensor_anomaly_refused_total{kind=\"not_json\"} 2",
        "sensor_anomaly_refused_total{kind=\"missing_feature\"} 1",
    ])
    .await;
}

#[tokio::test]
async fn a_redelivered_batch_stores_nothing_twice() {
    let app = spawn_app().await;
    let w = windows(20, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(20, 7));
    let (first_status, first) = invoke(&app, &body).await;
    assert_eq!(first_status, 200);
    assert_eq!(app.stored_count().await, 4);
    let mut retry = body.clone();
    retry["Metadata"]["RetryContext"] = json!({"RetryCount": 1, "MaxRetryCount": 5});
    let (second_status, second) = invoke(&app, &retry).await;
    assert_eq!(second_status, 200);
    assert_eq!(app.stored_count().await, 4);
    // Alerts are re-sent (at least once) with the same ids, so consumers can drop repeats.
    let ids = |r: &Value| {
        alerts(r)
            .iter()
            .map(|a| a["alert_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
    assert!(
        second["Logs"][0]
            .as_str()
            .unwrap()
            .contains("4 anomalies (0 new)"),
        "{}",
        second["Logs"][0]
    );
}

#[tokio::test]
async fn a_store_outage_fails_the_invocation_and_the_retry_stores_once() {
    let app = spawn_app().await;
    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 50));
    // Another writer holds the database's write lock longer than the handler's busy timeout.
    let blocker = rusqlite::Connection::open(&app.db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The first attempt (RetryCount 0) and a retry that is not the last: 503, the host retries.
    for attempt in [body.clone(), with_retry(&body, 2, 5)] {
        let (status, reply) = invoke(&app, &attempt).await;
        assert_eq!(status, 503, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().contains("store unavailable"),
            "{reply}"
        );
    }
    let health = app.get("/api/health/store").await;
    assert_eq!(health.status().as_u16(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["store"]["reachable"], false);
    assert!(health["store"]["error"].as_str().unwrap().contains("store unavailable"), "{health}");
    // Anonymous liveness still answers, without the error.
    let live: Value = app.get("/api/health").await.json().await.unwrap();
    assert_eq!(live["store"], json!({"kind": "sqlite", "reachable": false}));

    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    let (status, _) = invoke(&app, &with_retry(&body, 3, 5)).await;
    assert_eq!(status, 200);
    let (status, _) = invoke(&app, &body).await;
    assert_eq!(status, 200);
    assert_eq!(app.stored_count().await, 2);
    assert_eq!(app.get("/api/health").await.status().as_u16(), 200);
}

#[tokio::test]
async fn on_the_hosts_last_attempt_an_outage_dead_letters_whole_windows_and_answers_200() {
    let app = spawn_app().await;
    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 50));
    let blocker = rusqlite::Connection::open(&app.db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, reply) = invoke(&app, &with_retry(&body, 5, 5)).await;
    assert_eq!(status, 200, "{reply}");
    let dead = dead_letters(&reply);
    let kinds: Vec<&str> = dead.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["store_unavailable", "store_unavailable"], "{reply}");
    // The alerts still go out: the anomalies are real, only their rows are late.
    assert_eq!(alerts(&reply).len(), 2);
    for (letter, alert) in dead.iter().zip(alerts(&reply)) {
        let window: Value = serde_json::from_str(letter["body"].as_str().unwrap()).unwrap();
        assert_eq!(window["device_id"], alert["device_id"]);
        assert_eq!(window["window_end"], alert["window_end"]);
        assert_eq!(letter["body_truncated"], false);
        assert_eq!(letter["lineage"], alert["lineage"]);
    }
    assert!(
        reply["Logs"][0].as_str().unwrap().contains("2 anomalies dead-lettered for the store, host retry 5 of 5"),
        "{}",
        reply["Logs"][0]
    );
    drop(blocker);
    assert_eq!(app.stored_count().await, 0);
    app.assert_metrics(&[
        "sensor_anomaly_refused_total{kind=\"store_unavailable\"} 2",
        "sensor_anomaly_invocations_total{function=\"ScoreWindows\",outcome=\"ok\"} 1",
    ])
    .await;
}

#[tokio::test]
async fn rows_the_store_refuses_are_dead_lettered_whole_and_the_invocation_answers_200() {
    let app = spawn_app().await;
    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 50));
    // A broken schema: no retry can help; retrying would only lose the batch at the end.
    let other = rusqlite::Connection::open(&app.db_path).unwrap();
    other.execute_batch("DROP TABLE anomalies").unwrap();
    let (status, reply) = invoke(&app, &body).await;
    assert_eq!(status, 200, "{reply}");
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), 2, "{reply}");
    assert!(dead.iter().all(|d| d["kind"] == "store_rejected"), "{reply}");
    app.assert_metrics(&[
        "sensor_anomaly_invocations_total{function=\"ScoreWindows\",outcome=\"ok\"} 1",
        // The batch, then each row on its own to find which ones the store refuses.
        "sensor_anomaly_store_write_failures_total{store=\"sqlite\",class=\"permanent\"} 3",
        "sensor_anomaly_refused_total{kind=\"store_rejected\"} 2",
    ])
    .await;
}

#[tokio::test]
async fn malformed_invocations_get_400() {
    let app = spawn_app().await;
    let response = app
        .post_raw("/ScoreWindows", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let (status, reply) = invoke(&app, &json!({"Data": {"other": "[]"}, "Metadata": {}})).await;
    assert_eq!(status, 400);
    assert!(
        reply["error"].as_str().unwrap().contains("Data.events"),
        "{reply}"
    );
    // An empty batch is fine and answers with empty outputs.
    let (status, reply) = invoke(&app, &invocation(encoded(json!([])), many_metadata(0, 0))).await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["alerts"], json!([]));
}

#[tokio::test]
async fn unrepresentable_times_and_runaway_scores_are_refused_per_window() {
    let app = spawn_app().await;
    let w = windows(4, 2); // anomalies at 0 and 2
    let mut year_zero = w[1].clone();
    year_zero.insert("window_end".into(), json!("0000-01-01T00:00:00+01:00"));
    let mut huge = w[3].clone();
    for stat in ["mean", "std", "min", "max"] {
        huge.insert(format!("vibration_{stat}"), json!(3.0e38));
    }
    // One LineSeparated event: a good record, the year-zero record, and the runaway one.
    let event = format!(
        "{}\n{}\n{}",
        Value::Object(w[0].clone()),
        Value::Object(year_zero),
        Value::Object(huge)
    );
    let bodies = json!([event, Value::Object(w[2].clone()).to_string()]);
    let (status, reply) = invoke(&app, &invocation(encoded(bodies), many_metadata(2, 70))).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alerts(&reply).len(), 2);
    assert_eq!(app.stored_count().await, 2);
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["field"], "window_end");
    assert_eq!(dead[0]["record_index"], 1);
    // The refused record travels alone, not the whole event.
    let refused: Value = serde_json::from_str(dead[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(refused["window_end"], "0000-01-01T00:00:00+01:00");
    assert!(
        dead[1]["reason"].as_str().unwrap().contains("not finite"),
        "{}",
        dead[1]
    );
    assert_eq!(dead[1]["lineage"]["sequence_number"], 70);
    assert_eq!(dead[1]["kind"], "non_finite_score");

    let mut huge_one = w[3].clone();
    huge_one.insert("sound_max".into(), json!(3.0e38));
    huge_one.insert("sound_mean".into(), json!(-3.0e38));
    let response = app.post_json("/api/score", &Value::Object(huge_one)).await;
    assert_eq!(response.status().as_u16(), 422);
}

#[tokio::test]
async fn offset_string_is_preferred_for_lineage_on_geo_replicated_namespaces() {
    let app = spawn_app().await;
    let w = windows(3, 1); // every window anomalous
                           // Extension 6.5.2+ on a geo-replicated namespace: numeric offsets are -1, text ones are real.
    let mut many = many_metadata(2, 40);
    many["OffsetArray"] = encoded(json!([-1, -1]));
    many["OffsetStringArray"] = encoded(json!(["g1:400", "g1:401"]));
    let (status, reply) = invoke(&app, &invocation(encoded(json!(texts(&w[..2]))), many)).await;
    assert_eq!(status, 200, "{reply}");
    let offsets: Vec<Value> = alerts(&reply)
        .iter()
        .map(|a| a["lineage"]["offset"].clone())
        .collect();
    assert_eq!(offsets, [json!("g1:400"), json!("g1:401")]);

    let mut one = one_metadata(77);
    one["Offset"] = json!("-1");
    one["OffsetString"] = json!("g1:777");
    let body =
        json!({"Data": {"events": Value::Object(w[2].clone()).to_string()}, "Metadata": one});
    let (status, reply) = invoke(&app, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alerts(&reply)[0]["lineage"]["offset"], "g1:777");

    // Older extensions send only the numeric offset: it is used.
    let mut old = many_metadata(1, 90);
    old.as_object_mut().unwrap().remove("OffsetStringArray");
    let later = {
        let mut x = w[0].clone();
        x.insert("window_end".into(), json!("2026-01-02T00:00:00Z"));
        x
    };
    let (status, reply) = invoke(&app, &invocation(encoded(json!(texts(&[later]))), old)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(alerts(&reply)[0]["lineage"]["offset"], "90000");
}
