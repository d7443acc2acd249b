//! The HTTP functions (`/api/*`) over real HTTP.

use crate::helpers::{
    default_model, healthy_windows, shift_channel, spawn_app, spawn_app_with, Scratch,
};
use sensor_anomaly::schema;
use serde_json::{json, Value};

#[tokio::test]
async fn readiness_health_and_model() {
    let app = spawn_app().await;
    let ready = app.get("/").await;
    assert_eq!(ready.status().as_u16(), 200);

    let health = app.get("/api/health").await;
    assert_eq!(health.status().as_u16(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model"]["loaded"], true);
    assert!(health["model"]["version"]
        .as_str()
        .unwrap()
        .starts_with("ae-"));
    // Anonymous liveness answers from memory: no probe yet, no path, no error text.
    assert_eq!(health["store"], json!({"kind": "sqlite", "reachable": null}));
    assert!(health["model"].get("source").is_none(), "{health}");
    assert!(health["uptime_seconds"].as_f64().unwrap() >= 0.0);
    // The keyed probe (authLevel function) has the details, and the anonymous one then the result.
    let store = app.get("/api/health/store").await;
    assert_eq!(store.status().as_u16(), 200);
    let store: Value = store.json().await.unwrap();
    assert_eq!(store["store"]["reachable"], true);
    assert_eq!(store["store"]["error"], Value::Null);
    assert!(store["model"]["source"].as_str().unwrap().ends_with("default.onnx"));
    let health: Value = app.get("/api/health").await.json().await.unwrap();
    assert_eq!(health["store"]["reachable"], true);

    let model: Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(model["feature_names"], json!(schema::feature_names()));
    assert_eq!(model["channels"], json!(schema::CHANNELS));
    assert!(model["threshold"].as_f64().unwrap() > 0.0);
    assert_eq!(model["model_version"], health["model"]["version"]);
    assert!(model["training_summary"]["rows_train"].as_u64().unwrap() > 1000);
}

#[tokio::test]
async fn score_one_window_and_explain_it() {
    let app = spawn_app().await;
    let windows = healthy_windows(1, 1.0, 3);
    let response = app
        .post_json("/api/score", &Value::Object(windows[10].clone()))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let healthy: Value = response.json().await.unwrap();
    assert_eq!(healthy["is_anomaly"], false);
    assert_eq!(healthy["severity"], "normal");
    assert!(
        healthy["explanation"]
            .as_str()
            .unwrap()
            .starts_with("within normal range"),
        "{healthy}"
    );

    let mut faulty = windows[10].clone();
    shift_channel(&mut faulty, "pressure", 2.5);
    let scored: Value = app
        .post_json("/api/score", &Value::Object(faulty))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(scored["is_anomaly"], true);
    assert_eq!(scored["top_channel"], "pressure");
    assert!(
        scored["explanation"]
            .as_str()
            .unwrap()
            .contains("pressure explains"),
        "{scored}"
    );
    assert!(scored["processing_time_us"].as_f64().unwrap() > 0.0);
    // Scoring over HTTP stores nothing.
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn invalid_score_requests_name_the_field() {
    let app = spawn_app().await;
    let window = healthy_windows(1, 0.5, 3).remove(0);

    let response = app
        .post_raw(
            "/api/score",
            "application/json",
            b"{\"device_id\":".to_vec(),
        )
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );

    // A window with one field changed (None: removed) is refused, naming that field.
    let refused = async |field: &str, value: Option<Value>| {
        let mut changed = window.clone();
        match value {
            Some(v) => changed.insert(field.into(), v),
            None => changed.remove(field),
        };
        let response = app.post_json("/api/score", &Value::Object(changed)).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["field"].clone(), body["kind"].clone())
    };
    // Each with the kind a dead letter of it would have, for clients to branch on.
    let (status, field, kind) = refused("vibration_max", None).await;
    assert_eq!((status, field, kind), (422, json!("vibration_max"), json!("missing_feature")));
    let (_, field, kind) = refused("sound_mean", Some(json!("loud"))).await;
    assert_eq!((field, kind), (json!("sound_mean"), json!("invalid_feature")));
    let (_, field, kind) = refused("window_end", Some(json!("last tuesday"))).await;
    assert_eq!((field, kind), (json!("window_end"), json!("invalid_field")));

    let response = app.post_json("/api/score", &json!([1, 2])).await;
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!((&body["field"], &body["kind"]), (&Value::Null, &Value::Null), "{body}");

    let huge = vec![b' '; 2 << 20];
    let response = app.post_raw("/api/score", "application/json", huge).await;
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
}

#[tokio::test]
async fn score_a_batch_within_the_limit() {
    let app = spawn_app_with(|s| s.max_batch = 50).await;
    let windows: Vec<Value> = healthy_windows(1, 1.0, 8)
        .into_iter()
        .map(Value::Object)
        .collect();
    let response = app
        .post_json("/api/score/batch", &json!({"windows": windows[..40]}))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["count"], 40);
    assert_eq!(body["results"].as_array().unwrap().len(), 40);
    assert_eq!(body["results"][3]["window_end"], windows[3]["window_end"]);

    let response = app
        .post_json("/api/score/batch", &json!({"windows": windows[..51]}))
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "windows");
    assert!(
        body["error"].as_str().unwrap().contains("limit of 50"),
        "{body}"
    );

    let mut bad = windows[..3].to_vec();
    bad[1].as_object_mut().unwrap().remove("humidity_std");
    let body: Value = app
        .post_json("/api/score/batch", &json!({"windows": bad}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["field"], "windows[1].humidity_std");

    let response = app
        .post_json("/api/score/batch", &json!({"rows": []}))
        .await;
    assert_eq!(response.status().as_u16(), 422);
}

#[tokio::test]
async fn history_filters_and_validates() {
    let app = spawn_app().await;
    let mut windows = healthy_windows(2, 1.0, 21);
    // Windows alternate between the two devices; every fifth one, of either device, is faulty.
    for w in windows.iter_mut().step_by(5) {
        shift_channel(w, "temperature", 30.0);
    }
    let bodies: Vec<String> = windows
        .iter()
        .map(|w| Value::Object(w.clone()).to_string())
        .collect();
    let invocation = ingress::host::many_string_invocation(
        "events",
        &bodies,
        "0",
        1,
        "2026-01-01T01:00:00Z",
    );
    assert_eq!(
        app.post_json("/ScoreWindows", &invocation)
            .await
            .status()
            .as_u16(),
        200
    );

    let all: Value = app.get("/api/history").await.json().await.unwrap();
    let rows = all["anomalies"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    let ends: Vec<&str> = rows
        .iter()
        .map(|r| r["window_end"].as_str().unwrap())
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {ends:?}"
    );
    assert_eq!(rows[0]["features"].as_object().unwrap().len(), 20);
    assert!(rows[0]["inserted_at"].is_string());

    let device: Value = app
        .get("/api/history?device=pump-002")
        .await
        .json()
        .await
        .unwrap();
    assert!(device["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["device_id"] == "pump-002"));
    assert_eq!(device["count"], 12);
    let limited: Value = app.get("/api/history?limit=3").await.json().await.unwrap();
    assert_eq!(limited["count"], 3);
    let since = ends[4];
    let recent: Value = app
        .get(&format!("/api/history?since={since}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(recent["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["window_end"].as_str().unwrap() >= since));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=5000", "limit"),
        ("since=yesterday", "since"),
        ("colour=red", "colour"),
    ] {
        let response = app.get(&format!("/api/history?{query}")).await;
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}");
    }
}

#[tokio::test]
async fn reload_swaps_models_and_refuses_broken_files() {
    let scratch = Scratch::new("reload");
    let models_dir = scratch.0.clone();
    let app = spawn_app_with(|s| s.models_dir = models_dir).await;
    let before: Value = app.get("/api/model").await.json().await.unwrap();
    let version = before["model_version"].as_str().unwrap().to_string();

    let broken = scratch.path("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    let response = app.post_json("/api/reload", &json!({"path": "broken.onnx"})).await;
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("still serving {version}")),
        "{body}"
    );
    let health: Value = app.get("/api/health").await.json().await.unwrap();
    assert_eq!(health["model"]["version"], version.as_str());

    // Outside the models folder, missing, not a regular file, or a path out of it: the same
    // refusal, which does not say whether the file exists.
    let mut refusals = Vec::new();
    for path in [
        scratch.path("none.onnx").display().to_string(),
        default_model().display().to_string(),
        "/dev/zero".to_string(),
        "../../../../../../etc/passwd".to_string(),
    ] {
        let response = app.post_json("/api/reload", &json!({"path": path})).await;
        assert_eq!(response.status().as_u16(), 422, "{path}");
        let body: Value = response.json().await.unwrap();
        refusals.push(body["error"].as_str().unwrap().to_string());
    }
    assert!(refusals.iter().all(|r| r == &refusals[0]), "{refusals:#?}");
    assert!(refusals[0].contains("inside the models folder"), "{}", refusals[0]);
    let no_path = app.post_json("/api/reload", &json!({})).await;
    assert_eq!(no_path.status().as_u16(), 422);

    let copy = scratch.path("copy.onnx");
    std::fs::copy(default_model(), &copy).unwrap();
    let copy = std::fs::canonicalize(copy).unwrap();
    let response = app.post_json("/api/reload", &json!({"path": "copy.onnx"})).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["previous_version"], version.as_str());
    let model: Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(model["source"], copy.display().to_string());

    let bytes = std::fs::read(default_model()).unwrap();
    let response = app
        .post_raw("/api/reload", "application/octet-stream", bytes)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let model: Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(model["source"], "uploaded");

    app.assert_metrics(&[
        "sensor_anomaly_model_reloads_total{outcome=\"ok\"} 2",
        "sensor_anomaly_model_reloads_total{outcome=\"refused\"} 5",
    ])
    .await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    let windows: Vec<Value> = healthy_windows(1, 0.5, 2)
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_eq!(
        app.post_json("/api/score/batch", &json!({"windows": windows}))
            .await
            .status()
            .as_u16(),
        200
    );
    // A refused call counts too, by its outcome.
    let refused = app.post_json("/api/score", &json!({"device_id": "x"})).await;
    assert_eq!(refused.status().as_u16(), 422);
    let response = app.get("/api/metrics").await;
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics, as the content type says");
    assert!(
        text.contains(&format!(
            "sensor_anomaly_windows_scored_total {}",
            windows.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("sensor_anomaly_model_info{model_version=\"ae-"),
        "{text}"
    );
    for line in [
        "sensor_anomaly_invocations_total{function=\"ScoreBatch\",outcome=\"ok\"} 1",
        "sensor_anomaly_invocations_total{function=\"Score\",outcome=\"bad_request\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(
        text.contains("# TYPE sensor_anomaly_batch_duration_seconds histogram"),
        "{text}"
    );
}
