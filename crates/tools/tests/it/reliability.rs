//! Nothing lost, nothing amplified: one hostile event, an invocation over the size limit, a
//! store outage past the host's last retry and its replay, a health-check flood, windows from
//! the future, and start-up settings that would lose data. The real binary where memory or
//! logs are measured; the in-process app elsewhere.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    alerts, dead_letters, encoded, invocation, invoke, many_metadata, repo_path,
    serve_command, spawn_app, spawn_app_with, spawn_serve, texts, windows, with_retry, Scratch,
    BIN,
};

fn dead_letter_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_path("schemas/dead-letter.v2.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test]
async fn one_event_of_30000_numbers_is_a_few_small_dead_letters_with_flat_memory_and_logs() {
    let scratch = Scratch::new("amplify");
    let (child, port) = spawn_serve(&[(
        "ANOMALY_SQLITE_PATH",
        scratch.path("a.sqlite").display().to_string(),
    )])
    .await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/ScoreWindows");
    let post = |body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // Warm up on an ordinary batch, then take the baseline.
    let good = texts(&windows(8, 4));
    let (status, _) = post(invocation(encoded(json!(good)), many_metadata(8, 1))).await;
    assert_eq!(status, 200);
    let baseline = peak_rss_kib(child.id());
    // The batch's summary is its last log line: awaited, so every earlier line is counted.
    child.wait_for_line("ScoreWindows: 8 events", Duration::from_secs(10)).await;
    let lines_before = child.stderr().lines().count();

    // One event: a JSON array of 30,000 numbers (about 150 KB), beside four good windows.
    let numbers: Vec<f64> = (0..30_000).map(|i| f64::from(i) * 1.5).collect();
    let hostile = serde_json::to_string(&numbers).unwrap();
    let mut bodies = vec![hostile.clone()];
    bodies.extend(texts(&windows(4, 2)));
    let (status, reply) = post(invocation(encoded(json!(bodies)), many_metadata(5, 100))).await;
    assert_eq!(status, 200, "{}", &reply[..reply.len().min(500)]);
    assert!(
        reply.len() < 32 * 1024,
        "a response of {} bytes for a {}-byte event",
        reply.len(),
        hostile.len()
    );
    let reply: Value = serde_json::from_str(&reply).unwrap();
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), pipeline::MAX_DEAD_LETTERS_PER_EVENT);
    let schema = dead_letter_schema();
    for letter in &dead {
        assert!(schema.is_valid(letter), "{letter}");
        assert_eq!(letter["kind"], "not_object");
        assert!(letter["body"].as_str().unwrap().len() < 32, "each carries its own item");
    }
    // Every refusal is one dead letter or counted on the last one.
    let omitted: u64 = dead.iter().map(|d| d["omitted"].as_u64().unwrap()).sum();
    assert_eq!(dead.len() as u64 + omitted, 30_000);
    assert_eq!(alerts(&reply).len(), 2, "the good windows of the batch still count");

    let growth_mib = (peak_rss_kib(child.id()) - baseline) / 1024;
    assert!(growth_mib < 64, "peak RSS grew by {growth_mib} MiB");
    child.wait_for_line("ScoreWindows: 5 events", Duration::from_secs(10)).await;
    let lines = child.stderr().lines().count() - lines_before;
    assert!(lines <= 20, "{lines} log lines for one invocation");
}

#[tokio::test]
async fn an_invocation_over_the_limit_is_dead_lettered_with_where_its_events_are_not_refused() {
    let app = spawn_app_with(|s| s.max_invocation_bytes = 64 * 1024).await;
    let bodies: Vec<String> = (0..40)
        .map(|i| json!({"device_id": format!("pump-{i}"), "pad": "x".repeat(4000)}).to_string())
        .collect();
    let request = invocation(encoded(json!(bodies)), many_metadata(40, 700));
    let text = request.to_string();
    assert!(text.len() > 64 * 1024);
    let response = app
        .post_raw("/ScoreWindows", "application/json", text.clone().into_bytes())
        .await;
    assert_eq!(response.status().as_u16(), 200, "a 413 would be retried, then lost");
    let reply: Value = response.json().await.unwrap();
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), 1, "{reply}");
    let letter = &dead[0];
    assert!(dead_letter_schema().is_valid(letter), "{letter}");
    assert_eq!(letter["kind"], "invocation_too_large");
    assert_eq!(letter["lineage"]["partition_id"], "3");
    assert_eq!(letter["lineage"]["sequence_number"], 700);
    assert_eq!(letter["last_sequence_number"], 739);
    assert_eq!(letter["body_bytes"], text.len());
    let whole = domain::Excerpt::of(&text);
    assert_eq!(letter["body_sha256"], whole.sha256.as_str());
    assert_eq!(letter["body_truncated"], true);
    assert!(reply["Logs"][0].as_str().unwrap().contains("40 events from sequence number 700"));
    app.assert_metrics(&[
        "sensor_anomaly_refused_total{kind=\"invocation_too_large\"} 1",
        "sensor_anomaly_invocations_total{function=\"ScoreWindows\",outcome=\"too_large\"} 1",
    ])
    .await;
}

/// Replays dead letters from a file through the real binary into a handler.
async fn replay_file(file: &std::path::Path, base: &str) -> std::process::Output {
    let args = [
        "replay".to_string(),
        "--input".into(),
        file.display().to_string(),
        "--url".into(),
        base.to_string(),
    ];
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(args)
            .output()
            .expect("replay runs")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_outage_past_the_last_retry_loses_nothing_and_its_replay_stores_each_window_once() {
    let app = spawn_app().await;
    let w = windows(12, 4);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(12, 40));
    let blocker = rusqlite::Connection::open(&app.db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, reply) = invoke(&app, &with_retry(&body, 5, 5)).await;
    assert_eq!(status, 200, "{reply}");
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d["kind"] == "store_unavailable"));
    // Saved as `alerts --raw` would print them, with a letter that is not replayed by default.
    let scratch = Scratch::new("replay");
    let file = scratch.path("dead-letters.jsonl");
    let mut lines: Vec<String> = reply["Outputs"]["deadletter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let (_, refused) = invoke(
        &app,
        &invocation(encoded(json!(["temperature=21.5"])), many_metadata(1, 90)),
    )
    .await;
    lines.push(refused["Outputs"]["deadletter"][0].as_str().unwrap().to_string());
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    // Still down: the replay stops at the handler's 503 and says so.
    let out = replay_file(&file, &app.base).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"), "{out:?}");
    assert_eq!(app.stored_count().await, 0);

    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    for _ in 0..2 {
        let out = replay_file(&file, &app.base).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("replayed 3 windows"), "{stdout}");
        assert!(stderr.contains("4 dead letters read: 3 windows replayed, 1 of other kinds"), "{stderr}");
        assert_eq!(app.stored_count().await, 3, "stored once however often it is replayed");
    }
    // The host's own re-delivery of the original batch stores nothing twice either.
    let (status, _) = invoke(&app, &body).await;
    assert_eq!(status, 200);
    assert_eq!(app.stored_count().await, 3);
}

#[tokio::test]
async fn a_health_flood_probes_the_store_at_most_once_per_interval() {
    let app = spawn_app().await;
    // The store is slow to answer: another writer holds the lock (each probe waits it out).
    let blocker = rusqlite::Connection::open(&app.db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let requests = (0..200).map(|i| {
        let path = if i % 2 == 0 { "/api/health" } else { "/api/health/store" };
        app.get(path)
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().step_by(2).all(|s| *s == 200), "liveness never waits on the store");
    assert!(statuses.iter().skip(1).step_by(2).all(|s| *s == 503));
    let probes = app.state.store_probe.probes();
    assert!(probes <= 2, "{probes} probes for 100 keyed health checks");
    drop(blocker);
}

#[tokio::test]
async fn a_window_from_the_future_is_dead_lettered_and_does_not_blind_drift() {
    let app = spawn_app().await;
    let mut w = windows(13, 100);
    w[0].insert("window_end".into(), json!("9999-01-01T00:00:00Z"));
    let (status, reply) = invoke(&app, &invocation(encoded(json!(texts(&w))), many_metadata(13, 1))).await;
    assert_eq!(status, 200);
    let dead = dead_letters(&reply);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["kind"], "future_window");
    assert_eq!(dead[0]["field"], "window_end");
    let drift: Value = app.get("/api/drift").await.json().await.unwrap();
    assert_eq!(drift["windows"], 12, "the later windows still count: {drift}");
}

#[tokio::test]
async fn start_up_refuses_settings_that_would_lose_stored_anomalies() {
    let empty = serve_command(&[("ANOMALY_SQL_CONNECTION_STRING", String::new())])
    .output()
    .unwrap();
    assert!(!empty.status.success());
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(stderr.contains("ANOMALY_SQL_CONNECTION_STRING") && stderr.contains("empty"), "{stderr}");

    // In Azure (the platform sets WEBSITE_INSTANCE_ID), SQLite on local disk is refused...
    let scratch = Scratch::new("ephemeral");
    let db = scratch.path("a.sqlite").display().to_string();
    let in_azure = serve_command(&[
        ("WEBSITE_INSTANCE_ID", "0123abcd".into()),
        ("ANOMALY_SQLITE_PATH", db.clone()),
    ])
    .output()
    .unwrap();
    assert!(!in_azure.status.success());
    let stderr = String::from_utf8_lossy(&in_azure.stderr);
    assert!(
        stderr.contains("ANOMALY_SQLITE_PATH") && stderr.contains("ANOMALY_ALLOW_EPHEMERAL_SQLITE"),
        "{stderr}"
    );
    // ...unless allowed in so many words.
    // (ready_port panics with the handler's stderr if it exits instead of listening)
    let (_allowed, port) = spawn_serve(&[
        ("WEBSITE_INSTANCE_ID", "0123abcd".into()),
        ("ANOMALY_SQLITE_PATH", db),
        ("ANOMALY_ALLOW_EPHEMERAL_SQLITE", "true".into()),
    ])
    .await;
    assert!(port > 0, "starts when ephemeral storage is allowed");
}
