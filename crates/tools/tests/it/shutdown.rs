//! Graceful shutdown: an invocation in flight when the stop signal arrives completes, its write
//! commits and its response is sent before the server stops (the Functions host scales in with
//! SIGTERM; a batch answered 2xx is checkpointed, so it must be stored).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    encoded, free_port, invocation, many_metadata, serve_command, spawn_app_with, texts,
    wait_ready, windows, Scratch,
};

fn stored_rows(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn the_shutdown_signal_lets_the_invocation_in_flight_commit() {
    let mut app = spawn_app_with(|s| s.store_timeout = Duration::from_secs(10)).await;
    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 1));
    // Hold the write lock so the invocation is provably in flight (waiting on the store).
    let blocker = rusqlite::Connection::open(&app.db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let in_flight = {
        let (client, url) = (app.client.clone(), format!("{}/ScoreWindows", app.base));
        tokio::spawn(async move { client.post(url).json(&body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the invocation waits on the store"
    );

    let base = app.base.clone();
    let stopping = tokio::spawn(async move {
        let result = app.shutdown().await;
        result.map(|_| app)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the server waits for the invocation in flight"
    );
    // No new connections are taken once stopping.
    assert!(reqwest::get(format!("{base}/")).await.is_err());

    blocker.execute_batch("ROLLBACK").unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("response sent before the server stopped");
    assert_eq!(response.status().as_u16(), 200);
    let app = tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("server stops once the invocation is done")
        .unwrap()
        .expect("clean stop");
    assert_eq!(stored_rows(&app.db_path), 2);
}

#[tokio::test]
async fn sigterm_lets_the_invocation_in_flight_commit_before_the_process_exits() {
    let scratch = Scratch::new("sigterm");
    let db = scratch.path("anomalies.sqlite");
    let port = free_port();
    let mut child = serve_command(&[
        ("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string()),
        ("ANOMALY_SQLITE_PATH", db.display().to_string()),
        ("ANOMALY_STORE_TIMEOUT_MS", "10000".into()),
    ])
    .spawn()
    .expect("serve starts");
    wait_ready(port, Duration::from_secs(20)).await;

    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 1));
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/ScoreWindows"))
            .json(&body)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still finishing the invocation"
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    let response = in_flight.await.unwrap().expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "exits after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert_eq!(stored_rows(&db), 2);
}
