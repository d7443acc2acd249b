//! The deployed binary, `sensor-anomaly-handler`, started as the Functions host starts it (from
//! the app root, settings in the environment): it listens, scores, refuses bad arguments, and on
//! SIGTERM finishes the invocation in flight before it exits. Every wait is for an event (a log
//! line, a response), never a fixed sleep. And killed with SIGKILL mid-batch, again and again,
//! it loses and duplicates nothing once the unanswered batches are re-delivered.

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

/// The served model's feature names and training means (`/api/model`).
async fn model_means(base: &str) -> Vec<(String, f64)> {
    let model: Value = reqwest::get(format!("{base}/api/model")).await.unwrap().json().await.unwrap();
    let names = model["feature_names"].as_array().unwrap();
    let means = model["feature_mean"].as_array().unwrap();
    names
        .iter()
        .zip(means)
        .map(|(n, m)| (n.as_str().unwrap().to_string(), m.as_f64().unwrap()))
        .collect()
}

/// One window at the training means as JSON text, with vibration far off when `shifted`.
fn window(means: &[(String, f64)], device: &str, window_end: &str, shifted: bool) -> String {
    let mut w = Map::new();
    w.insert("device_id".into(), json!(device));
    w.insert("window_end".into(), json!(window_end));
    for (name, mean) in means {
        let off = if shifted && name.starts_with("vibration") { 60.0 } else { 0.0 };
        w.insert(name.clone(), json!(mean + off));
    }
    Value::Object(w).to_string()
}

/// `n` windows at the training means, every `every`-th with vibration far off.
async fn windows(base: &str, n: usize, every: usize) -> Vec<String> {
    let means = model_means(base).await;
    (0..n)
        .map(|i| window(&means, &format!("pump-{i}"), "2026-01-01T00:01:00Z", i % every == 0))
        .collect()
}

/// POSTs `body` and reads the JSON answer.
async fn post_json(url: &str, body: &Value) -> Value {
    let response = reqwest::Client::new().post(url).json(body).send().await.unwrap();
    response.json().await.unwrap()
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
    let reply = post_json(
        &format!("{base}/ScoreWindows"),
        &invocation(encoded(json!(bodies)), many_metadata(4, 1)),
    )
    .await;
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

/// `batches` host invocations of `events` windows each, every window its own (device, minute);
/// every third one far off on vibration.
async fn distinct_batches(base: &str, batches: usize, events: usize) -> Vec<Value> {
    let means = model_means(base).await;
    (0..batches)
        .map(|b| {
            let end = format!("2026-01-01T{:02}:{:02}:00Z", b / 60, b % 60);
            let bodies: Vec<String> = (0..events)
                .map(|e| window(&means, &format!("pump-{e:03}"), &end, (b * events + e) % 3 == 0))
                .collect();
            let first_sequence = (b * events) as i64;
            invocation(encoded(json!(bodies)), many_metadata(events, first_sequence))
        })
        .collect()
}

/// What must be stored: every anomalous window of `batches`, scored without storing anything.
async fn expected_anomalies(base: &str, batches: &[Value]) -> Vec<(String, String)> {
    let windows: Vec<Value> = batches
        .iter()
        .flat_map(|inv| {
            let bodies: Vec<String> =
                serde_json::from_str(inv["Data"]["events"].as_str().unwrap()).unwrap();
            bodies.into_iter().map(|b| serde_json::from_str::<Value>(&b).unwrap())
        })
        .collect();
    let mut expected: Vec<(String, String)> = Vec::new();
    for chunk in windows.chunks(500) {
        let scored = post_json(&format!("{base}/api/score/batch"), &json!({"windows": chunk})).await;
        expected.extend(
            scored["results"]
                .as_array()
                .unwrap_or_else(|| panic!("scored: {scored}"))
                .iter()
                .filter(|r| r["is_anomaly"] == true)
                .map(|r| {
                    let text = |k: &str| r[k].as_str().unwrap().to_string();
                    (text("device_id"), text("window_end"))
                }),
        );
    }
    expected.sort();
    expected
}

/// The stored (device, window end) keys, sorted, after checking the file's integrity.
fn stored_keys(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let mut stored: Vec<(String, String)> = conn
        .prepare("SELECT device_id, window_end FROM anomalies")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    stored.sort();
    stored
}

/// Sends `batches` (4 in flight), SIGKILLs the handler once `kill_after` of them are answered
/// (`None`: never), and returns the indexes answered 200.
async fn deliver(
    child: &mut ChildGuard,
    port: u16,
    batches: &[(usize, Value)],
    kill_after: Option<usize>,
) -> Vec<usize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let answered = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(4));
    let progress = Arc::new(tokio::sync::Notify::new());
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (index, body) in batches.iter().cloned() {
        let (gate, answered, finished, progress, client) = (
            gate.clone(),
            answered.clone(),
            finished.clone(),
            progress.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.unwrap();
            let outcome = match client
                .post(format!("http://127.0.0.1:{port}/ScoreWindows"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.bytes().await {
                        Ok(_) if status == 200 => Ok(()),
                        Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if outcome.is_ok() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            outcome.map(|()| index)
        }));
    }
    if let Some(n) = kill_after {
        while answered.load(Ordering::SeqCst) < n && finished.load(Ordering::SeqCst) < batches.len()
        {
            progress.notified().await;
        }
        child.kill();
    }
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(index) => ok.push(index),
            Err(e) => failures.push(e),
        }
    }
    // Before the kill every answer is a 200: anything else is a failure of the handler.
    if kill_after.is_none() || ok.len() < kill_after.unwrap_or(0) {
        assert!(failures.is_empty(), "{failures:?}\n{}", child.stderr());
    }
    ok
}

/// The kills of the crash test: `ANOMALY_CRASH_KILLS` (default 3; the README's figure is a longer
/// run of this test).
fn crash_kills() -> usize {
    std::env::var("ANOMALY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[tokio::test]
async fn sigkill_mid_batch_loses_and_duplicates_nothing_once_unanswered_batches_are_redelivered() {
    let scratch = Scratch::new("crash");
    let db = scratch.path("anomalies.sqlite");
    let kills = crash_kills();
    let (mut child, mut port) = start(&db, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    let all = distinct_batches(&base, 20 + 10 * kills, 16).await;
    let expected = expected_anomalies(&base, &all).await;
    assert!(expected.len() > 100, "{} anomalies", expected.len());
    let mut pending: Vec<(usize, Value)> = all.into_iter().enumerate().collect();
    let mut seed: u64 = 0x5eed;
    let mut cut_off = 0;
    for kill in 0..=kills {
        let last = kill == kills;
        // A pseudo-random point in the stream: after 1 to half of the pending batches answered.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = 1 + (seed >> 33) as usize % (pending.len() / 2).max(1);
        let answered = deliver(&mut child, port, &pending, (!last).then_some(at)).await;
        pending.retain(|(i, _)| !answered.contains(i));
        cut_off += if last { 0 } else { pending.len() };
        if last {
            assert!(pending.is_empty(), "{} batches never answered", pending.len());
            break;
        }
        // The host re-delivers what was not answered 200 to a new instance.
        (child, port) = start(&db, &[]).await;
    }

    let stored = stored_keys(&db);
    eprintln!(
        "crash test: {kills} SIGKILLs mid-batch survived ({cut_off} batches cut off and re-delivered), {} rows stored, {} expected",
        stored.len(),
        expected.len()
    );
    assert!(kills == 0 || cut_off > 0, "the kills cut no batch off: the test proved nothing");
    assert_eq!(stored, expected, "every anomaly stored exactly once");
}

/// A tmpfs of `size`, unmounted on drop: a disk that can really fill up.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `Err` says why there is none (mounting needs root, as CI and this project's machines
    /// have; elsewhere the test says it was skipped).
    fn mount(at: PathBuf, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk(at))
    }

    /// Writes a filler file until the disk says it is full (ENOSPC).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "stopped by {e}, not ENOSPC");
                return path;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends each batch once, in order; the status of each.
async fn send_each(port: u16, batches: &[(usize, Value)]) -> Vec<(usize, u16)> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for (index, body) in batches {
        let response = client
            .post(format!("http://127.0.0.1:{port}/ScoreWindows"))
            .json(body)
            .send()
            .await
            .expect("the handler answers");
        statuses.push((*index, response.status().as_u16()));
    }
    statuses
}

#[tokio::test]
async fn a_disk_that_fills_mid_stream_answers_503_and_the_redelivery_stores_everything_once() {
    let scratch = Scratch::new("disk-full");
    let disk = match SmallDisk::mount(scratch.path("small"), "16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: no small filesystem to fill ({why}); the held-lock variant of this test runs everywhere (tests/it/score_windows.rs)");
            return;
        }
    };
    let db = disk.0.join("anomalies.sqlite");
    let (mut child, port) = start(&db, &[("ANOMALY_STORE_TIMEOUT_MS", "2000")]).await;
    let base = format!("http://127.0.0.1:{port}");
    let all = distinct_batches(&base, 60, 16).await;
    let expected = expected_anomalies(&base, &all).await;
    let batches: Vec<(usize, Value)> = all.into_iter().enumerate().collect();
    let (before, rest) = batches.split_at(20);
    let (while_full, after) = rest.split_at(20);

    assert!(send_each(port, before).await.iter().all(|(_, s)| *s == 200));
    let filler = disk.fill();
    let full = send_each(port, while_full).await;
    let refused: Vec<usize> = full.iter().filter(|(_, s)| *s != 200).map(|(i, _)| *i).collect();
    assert!(!refused.is_empty(), "the full disk refused nothing: the test proved nothing");
    assert!(
        full.iter().all(|(_, s)| matches!(s, 200 | 503)),
        "a full disk is transient (503, the host retries): {full:?}"
    );
    assert!(child.exited().is_none(), "the handler survives a full disk");

    // Space comes back; the host retries what was refused, then the stream goes on.
    std::fs::remove_file(filler).unwrap();
    let retried: Vec<(usize, Value)> = batches
        .iter()
        .filter(|(i, _)| refused.contains(i))
        .cloned()
        .chain(after.iter().cloned())
        .collect();
    let statuses = send_each(port, &retried).await;
    assert!(statuses.iter().all(|(_, s)| *s == 200), "{statuses:?}\n{}", child.stderr());
    child.terminate();
    assert!(child.wait_exit(Duration::from_secs(30)).await.success());
    let stored = stored_keys(&db);
    eprintln!(
        "disk-full test: {} of {} batches refused with 503 while the disk was full, {} rows stored, {} expected",
        refused.len(),
        while_full.len(),
        stored.len(),
        expected.len()
    );
    assert_eq!(stored, expected, "every anomaly stored exactly once");
}
