//! `simulate --event-hub` and `alerts --event-hub`: the real binary and the real
//! azure_messaging_eventhubs SDK over real AMQP 1.0 (plain TCP, as with the emulator) against an
//! in-process peer that stands in for Event Hubs (`eventhubs_peer`: `$cbs` put-token and
//! `$management` responders, partition logs). What cannot run here is the Event Hubs service
//! and its emulator themselves.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use sensor_anomaly::eventhubs::{self, Connection, Pacing};
use serde_json::{Map, Value};

use test_support::eventhubs_peer::{Peer, PeerConfig, PeerHandle};
use crate::helpers::{repo_path, BIN};

fn emulator_style_connection(peer: &PeerHandle) -> String {
    let port = peer.endpoint().rsplit(':').next().unwrap().to_string();
    format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
}

async fn peer(hub: &str, partitions: usize) -> PeerHandle {
    Peer::start_with(PeerConfig {
        hub: hub.into(),
        partition_count: partitions,
        ..PeerConfig::default()
    })
    .await
    .1
}

/// Runs the binary to its end off the runtime (the peer keeps serving meanwhile), reading its
/// output as it comes; a client stuck past 60 s is killed and fails the test with its output.
async fn run(args: &[&str], connection: Option<String>) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("EventHubConnection")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(c) = connection {
        cmd.env("EventHubConnection", c);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    let mut waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    match tokio::time::timeout(std::time::Duration::from_secs(60), &mut waiting).await {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            let out = waiting.await.unwrap();
            panic!(
                "{args:?} did not finish in 60 s\nstdout: {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_window_records_batched_per_device() {
    let hub = peer("windows", 2).await;
    let out = run(
        &[
            "simulate",
            "--event-hub",
            "windows",
            "--windows",
            "--devices",
            "3",
            "--hours",
            "0.5",
            "--seed",
            "5",
            "--max-batch-bytes",
            "8192",
        ],
        Some(emulator_style_connection(&hub)),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let received = hub.received();
    // 3 devices x 30 tumbling 60 s windows.
    assert_eq!(received.len(), 90, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("published 90 events in "),
        "summary: {stdout}"
    );
    let mut per_transfer: BTreeMap<usize, Vec<&test_support::eventhubs_peer::RecordedEvent>> =
        BTreeMap::new();
    let mut per_device: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &received {
        assert!(event.batched, "sent as a batch");
        let record: Map<String, Value> = serde_json::from_slice(&event.body).unwrap();
        let device = record["device_id"].as_str().unwrap().to_string();
        // Partition key = device id, so a device's windows stay in order on one partition.
        assert_eq!(event.partition_key.as_deref(), Some(device.as_str()));
        // Stream Analytics' columns, and no simulator labels.
        for column in [
            "window_start",
            "window_end",
            "sample_count",
            "vibration_std",
        ] {
            assert!(record.contains_key(column), "{column} in {record:?}");
        }
        assert!(!record.contains_key("label"));
        per_device
            .entry(device)
            .or_default()
            .push(record["window_end"].as_str().unwrap().to_string());
        per_transfer.entry(event.transfer).or_default().push(event);
    }
    // A device's partition key always lands on the same partition; the link is the hub's.
    let mut partition_of: BTreeMap<&str, &str> = BTreeMap::new();
    for event in &received {
        assert!(event.target.ends_with("/windows"), "{}", event.target);
        let key = event.partition_key.as_deref().unwrap();
        let first = partition_of
            .entry(key)
            .or_insert(event.partition_id.as_str());
        assert_eq!(*first, event.partition_id, "{key} moved partitions");
    }
    for (device, ends) in &per_device {
        let mut sorted = ends.clone();
        sorted.sort();
        assert_eq!(ends, &sorted, "{device}'s windows arrive in time order");
        assert_eq!(ends.len(), 30);
    }
    // Batch boundaries: one key per batch, each under the size cap, and more than one batch
    // per device because 30 records do not fit in 8 KiB.
    for (transfer, events) in &per_transfer {
        let keys: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.partition_key.clone()).collect();
        assert_eq!(keys.len(), 1, "transfer {transfer} mixes devices");
        let bytes: usize = events.iter().map(|e| e.body.len()).sum();
        assert!(bytes <= 8192, "transfer {transfer}: {bytes} bytes");
    }
    assert!(per_transfer.len() > 3, "{} batches", per_transfer.len());
    assert!(
        stdout.contains(&format!("in {} batches", per_transfer.len())),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_raw_samples_to_the_telemetry_hub_at_a_rate() {
    let hub = peer("telemetry", 4).await;
    let started = std::time::Instant::now();
    let out = run(
        &[
            "simulate",
            "--event-hub",
            "telemetry",
            "--devices",
            "2",
            "--hours",
            "0.05",
            "--interval-secs",
            "1",
            "--seed",
            "9",
            "--rate",
            "400",
        ],
        Some(emulator_style_connection(&hub)),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let received = hub.received();
    assert_eq!(received.len(), 2 * 180);
    let first: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert!(first["timestamp"].is_string() && first["temperature"].is_number());
    // 360 events at 400/s cannot take less than about 0.9 s.
    assert!(elapsed.as_secs_f64() > 0.85, "{elapsed:?}");
    assert!(text(&out.stderr).contains("publishing samples to telemetry"));
}

/// Alerts and dead letters as documented (docs/wire-formats.md), plus something else.
fn documented_examples() -> Vec<Vec<u8>> {
    let doc = std::fs::read_to_string(repo_path("docs/wire-formats.md")).unwrap();
    let mut out: Vec<Vec<u8>> = doc
        .split("```json")
        .skip(1)
        .map(|block| {
            block
                .split("```")
                .next()
                .unwrap()
                .trim()
                .as_bytes()
                .to_vec()
        })
        .collect();
    assert_eq!(out.len(), 3, "one alert, one incident and one dead letter example");
    out.push(b"not json at all".to_vec());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_prints_each_alert_and_dead_letter_in_one_line() {
    let hub = peer("alerts", 2).await;
    let bodies = documented_examples();
    hub.queue_for_partition("0", bodies[..2].to_vec());
    hub.queue_for_partition("1", bodies[2..].to_vec());
    // The alert and the incident message are on partition 0, the dead letter and the stray on 1.
    let out = run(
        &[
            "alerts",
            "--event-hub",
            "alerts",
            "--from-start",
            "--count",
            "4",
            "--idle-secs",
            "20",
        ],
        Some(emulator_style_connection(&hub)),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let alert = lines
        .iter()
        .find(|l| l.contains("pump-003") && !l.contains("INCIDENT"))
        .expect("the alert");
    let incident = lines.iter().find(|l| l.contains("INCIDENT")).expect("the incident");
    assert!(
        incident.starts_with("2026-01-01T00:31:00Z  pump-003")
            && incident.contains("INCIDENT RESOLVED")
            && incident.contains("since 2026-01-01T00:15:00Z, 12 anomalous of 17 windows")
            && incident.contains("vibration 100%"),
        "{incident}"
    );
    assert!(
        alert.starts_with("2026-01-01T00:15:00Z  pump-003")
            && alert.contains("CRITICAL")
            && alert.contains("score 129.35 (threshold 0.10)")
            && alert.contains("vibration std is 50.7 sd above normal"),
        "{alert}"
    );
    let dead = lines.iter().find(|l| l.starts_with("dead letter")).unwrap();
    assert!(
        dead.contains("missing_feature [pressure_max]: missing feature `pressure_max`")
            && dead.contains("windows partition 3, sequence 1001"),
        "{dead}"
    );
    let other = lines.iter().find(|l| l.contains("not an alert")).unwrap();
    assert_eq!(
        *other,
        "partition 1 sequence 1: not an alert, incident message or dead letter (15 bytes)"
    );
    assert!(text(&out.stderr).contains("4 event(s) read"));

    // Without --from-start only new events count: the four above are skipped.
    let out = run(
        &["alerts", "--event-hub", "alerts", "--idle-secs", "2"],
        Some(emulator_style_connection(&hub)),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_one_clear_line() {
    let hub = peer("windows", 1).await;
    let conn = emulator_style_connection(&hub);
    let sim = [
        "simulate",
        "--event-hub",
        "nope",
        "--windows",
        "--devices",
        "1",
        "--hours",
        "0.1",
    ];
    let out = run(&sim, Some(conn.clone())).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: no event hub named \"nope\" in 127.0.0.1"),
        "{stderr}"
    );

    let out = run(&sim, None).await;
    assert_eq!(
        text(&out.stderr).lines().next().unwrap(),
        "error: EventHubConnection is not set: give --namespace for Entra ID, or set \
         EventHubConnection to a connection string (local.settings.json.example has the emulator's)"
    );

    let closed = crate::helpers::ClosedPort::new();
    let unreachable = format!(
        "Endpoint=sb://127.0.0.1:{};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        closed.port()
    );
    let out = run(
        &["alerts", "--event-hub", "alerts", "--count", "1"],
        Some(unreachable),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("error: cannot reach amqp://127.0.0.1:{}", closed.port()))),
        "{stderr}"
    );

    let refusing = Peer::start_with(PeerConfig {
        hub: "windows".into(),
        partition_count: 1,
        cbs_status: 401,
    })
    .await
    .1;
    let out = run(
        &[
            "simulate",
            "--event-hub",
            "windows",
            "--windows",
            "--devices",
            "1",
            "--hours",
            "0.1",
        ],
        Some(emulator_style_connection(&refusing)),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: not authorized on amqp://127.0.0.1:"),
        "{stderr}"
    );
    assert!(!stderr.contains("SAS_KEY_VALUE"), "{stderr}");
    assert!(refusing.received().is_empty());
}

/// Entra ID cannot be reached from here: a fixed test token stands in for the Azure CLI or
/// managed identity credential, at the SDK's credential boundary.
#[derive(Debug)]
struct FixedTestToken;

#[async_trait::async_trait]
impl TokenCredential for FixedTestToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "entra-test-token",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_path_with_a_fixed_test_token_sends_a_jwt_and_publishes() {
    let hub = peer("windows", 2).await;
    let conn = Connection::Entra {
        namespace: "example.servicebus.windows.net".into(),
        credential: Arc::new(FixedTestToken),
        endpoint: Some(hub.endpoint()),
    };
    let (producer, partitions) =
        eventhubs::open_producer(&conn, "windows", eventhubs::retry_options())
            .await
            .unwrap();
    assert_eq!(partitions, ["0", "1"]);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for i in 0..5 {
        tx.send(eventhubs::OutgoingEvent {
            partition_key: format!("d{}", i % 2),
            body: format!("{{\"n\":{i}}}").into_bytes(),
            at_ms: None,
        })
        .await
        .unwrap();
    }
    drop(tx);
    let mut seen = Vec::new();
    let stats = eventhubs::publish(
        &conn,
        &producer,
        "windows",
        rx,
        Pacing::default(),
        None,
        |s| seen.push(s.events),
    )
    .await
    .unwrap();
    assert_eq!((stats.events, stats.batches), (5, 2));
    assert_eq!(seen, [3, 5], "progress after every batch");
    let tokens = hub.put_tokens();
    assert!(
        tokens.iter().any(|t| t.token == "entra-test-token"
            && t.token_type == "jwt"
            && t.name.ends_with("/windows")),
        "{tokens:?}"
    );
    let keys: Vec<_> = hub
        .received()
        .iter()
        .map(|e| (e.transfer, e.partition_key.clone().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            (0, "d0".into()),
            (0, "d0".into()),
            (0, "d0".into()),
            (1, "d1".into()),
            (1, "d1".into())
        ]
    );
    producer.close().await.unwrap();
}

/// Five fresh connections with the emulator's connection string, in process: each publish
/// completes (a disposition race in the peer once left every fifth send waiting forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_string_path_publishes_on_every_connection() {
    for _ in 0..5 {
        let hub = peer("windows", 2).await;
        let conn = Connection::from_connection_string(
            "EventHubConnection",
            &emulator_style_connection(&hub),
        )
        .unwrap();
        let (producer, _) = eventhubs::open_producer(&conn, "windows", eventhubs::retry_options())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(eventhubs::OutgoingEvent {
            partition_key: "d".into(),
            body: b"{}".to_vec(),
            at_ms: None,
        })
        .await
        .unwrap();
        drop(tx);
        let stats = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            eventhubs::publish(
                &conn,
                &producer,
                "windows",
                rx,
                Pacing::default(),
                None,
                |_| {},
            ),
        )
        .await
        .expect("publish hung")
        .unwrap();
        assert_eq!(stats.events, 1);
    }
}

/// `replay --from-event-hub`: dead letters read from the dead-letter hub, the windows published
/// to the windows hub with the device as partition key. One in-process peer plays both hubs
/// (its partition logs are what consumers read, its received list what producers sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_dead_letters_from_the_hub_and_publishes_their_windows() {
    use domain::{DeadLetter, Excerpt, Lineage, RecordError};
    let hub = peer("hub", 2).await;
    let window = |device: &str| {
        serde_json::json!({"device_id": device, "window_end": "2026-01-01T00:01:00Z", "vibration_mean": 1.5})
            .to_string()
    };
    let letter = |error: RecordError, body: &str| {
        serde_json::to_vec(&DeadLetter::new(&error, 0, None, &Lineage::default(), &Excerpt::of(body)))
            .unwrap()
    };
    hub.queue_for_partition(
        "0",
        vec![
            letter(RecordError::StoreUnavailable("down".into()), &window("pump-1")),
            letter(RecordError::NotJson("x".into()), "temperature=21.5"),
        ],
    );
    hub.queue_for_partition(
        "1",
        vec![letter(RecordError::StoreRejected("no".into()), &window("pump-2"))],
    );
    let out = run(
        &[
            "replay",
            "--from-event-hub",
            "hub",
            "--idle-secs",
            "3",
            "--event-hub",
            "hub",
        ],
        Some(emulator_style_connection(&hub)),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("3 dead letters read: 2 windows replayed, 1 of other kinds"),
        "{}",
        text(&out.stderr)
    );
    let mut sent: Vec<(Option<String>, String)> = hub
        .received()
        .iter()
        .map(|e| (e.partition_key.clone(), text(&e.body)))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            (Some("pump-1".to_string()), window("pump-1")),
            (Some("pump-2".to_string()), window("pump-2")),
        ]
    );
}
