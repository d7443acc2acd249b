//! The deployed binary, `sensor-anomaly-handler`, started as the Functions host starts it (from
//! the app root, settings in the environment): it listens, scores, refuses bad arguments, and on
//! SIGTERM finishes the invocation in flight before it exits. Every wait is for an event (a log
//! line, a response), never a fixed sleep.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Map, Value};

use test_support::host::{encoded, invocation, many_metadata};
use test_support::process::ChildGuard;
use test_support::Scratch;

const HANDLER: &str = env!("CARGO_BIN_EXE_sensor-anomaly-handler");

fn repo() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// The handler on port 0 (it logs the port it holds), debug logs from the service.
async fn start(db: &Path, settings: &[(&str, &str)]) -> (ChildGuard, u16) {
    let mut command = Command::new(HANDLER);
    command
        .current_dir(repo())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env("ANOMALY_SQLITE_PATH", db)
        .env("RUST_LOG", "info,sensor_anomaly_service=debug")
        .stdout(std::process::Stdio::null());
    for (name, value) in settings {
        command.env(name, value);
    }
    let child = ChildGuard::spawn(command).expect("the handler starts");
    let port = child.ready_port(Duration::from_secs(30)).await;
    (child, port)
}

/// `n` windows at the training means, every `every`-th with vibration far off.
async fn windows(base: &str, n: usize, every: usize) -> Vec<String> {
    let model: Value = reqwest::get(format!("{base}/api/model")).await.unwrap().json().await.unwrap();
    let names = model["feature_names"].as_array().unwrap();
    let means = model["feature_mean"].as_array().unwrap();
    (0..n)
        .map(|i| {
            let mut w = Map::new();
            w.insert("device_id".into(), json!(format!("pump-{i}")));
            w.insert("window_end".into(), json!("2026-01-01T00:01:00Z"));
            for (name, mean) in names.iter().zip(means) {
                let name = name.as_str().unwrap();
                let mut v = mean.as_f64().unwrap();
                if i % every == 0 && name.starts_with("vibration") {
                    v += 60.0;
                }
                w.insert(name.into(), json!(v));
            }
            Value::Object(w).to_string()
        })
        .collect()
}

fn stored_rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn it_listens_where_the_host_says_and_scores() {
    let scratch = Scratch::new("scores");
    let (_child, port) = start(&scratch.path("a.sqlite"), &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(reqwest::get(format!("{base}/")).await.unwrap().status(), 200);
    let bodies = windows(&base, 4, 2).await;
    let reply: Value = reqwest::Client::new()
        .post(format!("{base}/ScoreWindows"))
        .json(&invocation(encoded(json!(bodies)), many_metadata(4, 1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["Outputs"]["alerts"].as_array().unwrap().len(), 2, "{reply}");
}

#[test]
fn it_takes_no_arguments_but_serve_and_names_its_version() {
    let version = Command::new(HANDLER).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sensor-anomaly-handler "));
    let bad = Command::new(HANDLER).arg("simulate").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage: sensor-anomaly-handler"));
}

#[tokio::test]
async fn sigterm_lets_the_invocation_in_flight_commit_before_the_process_exits() {
    let scratch = Scratch::new("sigterm");
    let db = scratch.path("anomalies.sqlite");
    let (mut child, port) = start(&db, &[("ANOMALY_STORE_TIMEOUT_MS", "30000")]).await;
    let base = format!("http://127.0.0.1:{port}");
    let body = invocation(encoded(json!(windows(&base, 10, 5).await)), many_metadata(10, 1));

    // The test holds the write lock: the invocation cannot finish until it lets go.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/ScoreWindows"))
            .json(&body)
            .send()
            .await
    });
    // In flight: the handler has read the batch (and now waits on the store).
    child
        .wait_for_line("ScoreWindows invocation received", Duration::from_secs(30))
        .await;
    child.terminate();
    child
        .wait_for_line("shutting down: finishing the requests in flight", Duration::from_secs(30))
        .await;
    assert!(child.exited().is_none(), "it waits for the invocation");

    blocker.execute_batch("ROLLBACK").unwrap();
    let response = in_flight.await.unwrap().expect("answered before the process exited");
    assert_eq!(response.status().as_u16(), 200);
    let exit = child.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(stored_rows(&db), 2);
}
