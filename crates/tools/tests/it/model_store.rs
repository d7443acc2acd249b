//! The model store against Azurite (npm 3.35.0, the version compose.yaml pins), for real:
//! uploads, the pointer, promotions, rollback, racing operators and corrupt files. Azurite takes
//! an account key, not Entra ID, so every test here that talks to it says `shared_key`; the
//! identity path is tested up to the credential (the last test). Without Azurite installed each
//! test says it was skipped (scripts/azurite-setup.sh installs it; scripts/test.sh requires it).

use std::process::Command;
use std::sync::Arc;

use crate::helpers::*;
use model_store::{Caller, ModelStore, Pointer, StoreError, StoreSettings};
use sensor_anomaly::model_ops::{self, ModelOpError};
use test_support::azurite::Azurite;

macro_rules! azurite_or_skip {
    () => {
        match Azurite::start().await {
            Ok(azurite) => azurite,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        }
    };
}

fn settings(azurite: &Azurite, container: &str) -> StoreSettings {
    let connection = azurite.connection_string();
    StoreSettings::from_lookup(|name| match name {
        "ANOMALY_MODEL_STORE" => Some(connection.clone()),
        "ANOMALY_MODEL_CONTAINER" => Some(container.to_string()),
        _ => None,
    })
    .expect("valid settings")
    .expect("a store")
}

fn store(azurite: &Azurite, container: &str) -> ModelStore {
    ModelStore::new(settings(azurite, container), Caller::Operator).expect("client")
}

fn checked(version: &str) -> model_ops::Checked {
    model_ops::check(model_variant(version, None), version).expect("a valid model")
}

/// `sensor-anomaly model …` against `azurite`'s `container`.
fn cli(azurite: &Azurite, container: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("model")
        .args(args)
        .env("ANOMALY_MODEL_STORE", azurite.connection_string())
        .env("ANOMALY_MODEL_CONTAINER", container)
        .env_remove("ANOMALY_MODEL_STORE__blobServiceUri")
        .output()
        .expect("the CLI runs")
}

#[tokio::test]
async fn shared_key_promote_challenge_rollback_through_the_pointer() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "lifecycle");
    store.ensure_container().await.unwrap();
    assert!(store.pointer().await.unwrap().is_none(), "no pointer before the first promotion");

    let first = model_ops::promote(&store, Some(&checked("ae-test-first-1")), "op").await.unwrap();
    assert!(first.before.is_none());
    let second = model_ops::promote(&store, Some(&checked("ae-test-second2")), "op").await.unwrap();
    assert_eq!(second.after.history, vec![first.after.champion.clone()]);
    let challenger = model_ops::challenge(&store, Some(&checked("ae-test-chall-3")), "op").await.unwrap();
    assert_eq!(challenger.after.challenger.as_ref().unwrap().model_version, "ae-test-chall-3");

    // What is stored is what the pointer says: each model downloads, verifies and loads.
    let stored = store.pointer().await.unwrap().unwrap().pointer;
    assert_eq!(stored, challenger.after);
    for m in [&stored.champion, stored.challenger.as_ref().unwrap(), &stored.history[0]] {
        let model = model_ops::fetch(&store, m).await.unwrap();
        assert_eq!(model.info.model_version, m.model_version);
    }

    // The challenger is promoted without naming a file; then rolled back twice.
    let promoted = model_ops::promote(&store, None, "op").await.unwrap();
    assert_eq!(promoted.after.champion.model_version, "ae-test-chall-3");
    assert_eq!(promoted.after.challenger, None);
    let back = model_ops::rollback(&store, "op").await.unwrap();
    assert_eq!(back.after.champion.model_version, "ae-test-second2");
    let back = model_ops::rollback(&store, "op").await.unwrap();
    assert_eq!(back.after.champion.model_version, "ae-test-first-1");
    assert!(matches!(model_ops::rollback(&store, "op").await, Err(ModelOpError::Pointer(_))));

    // Uploading the same file again is the same blob: the content-addressed name already holds it.
    let again = store.upload_model("ae-test-first-1", &model_variant("ae-test-first-1", None)).await.unwrap();
    assert_eq!(again, back.after.champion);

    // A file stored under another model's name (a hand-made pointer, another tool) verifies
    // by its SHA-256 but is not that model: the CLI refuses to promote it, as the handler
    // refuses to serve it, and the pointer stays as it was.
    let mislabelled = store.upload_model("ae-test-named-4", &model_variant("ae-test-other-5", None)).await.unwrap();
    let refused = model_ops::fetch(&store, &mislabelled).await;
    assert!(
        matches!(&refused, Err(ModelOpError::VersionMismatch(m)) if m.found == "ae-test-other-5" && m.expected == "ae-test-named-4"),
        "{:?}",
        refused.err()
    );
    let current = store.pointer().await.unwrap().unwrap();
    let mut planted = current.pointer.clone();
    planted.challenger = Some(mislabelled);
    store.put_pointer(&planted, Some(&current.etag)).await.unwrap();
    let promoted = model_ops::promote(&store, None, "op").await;
    assert!(matches!(promoted, Err(ModelOpError::VersionMismatch(_))), "{:?}", promoted.err());
    assert_eq!(store.pointer().await.unwrap().unwrap().pointer, planted, "nothing was written");
}

#[tokio::test]
async fn shared_key_racing_operators_one_wins_and_none_is_lost() {
    let azurite = azurite_or_skip!();
    let store = Arc::new(store(&azurite, "race"));
    model_ops::promote(&store, Some(&checked("ae-race-base-00")), "op").await.unwrap();

    // Two changes computed from the same read: the second is refused, the first stays.
    let read = store.pointer().await.unwrap().unwrap();
    let a = store.upload_model("ae-race-a-00001", &model_variant("ae-race-a-00001", None)).await.unwrap();
    let b = store.upload_model("ae-race-b-00001", &model_variant("ae-race-b-00001", None)).await.unwrap();
    store.put_pointer(&Pointer::promote(Some(&read.pointer), a.clone(), "alice", "t"), Some(&read.etag)).await.unwrap();
    let lost = store.put_pointer(&Pointer::promote(Some(&read.pointer), b, "bob", "t"), Some(&read.etag)).await;
    assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
    assert_eq!(store.pointer().await.unwrap().unwrap().pointer.champion, a);

    // Eight operators at once: each either lands or is told it raced; every one that landed is
    // in the final pointer's champion or history (no lost update).
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let version = format!("ae-race-many-{i:02}");
            model_ops::promote(&store, Some(&checked(&version)), &format!("op{i}")).await.map(|_| version)
        }));
    }
    let mut landed = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(version) => landed.push(version),
            Err(ModelOpError::Raced { .. }) => {}
            Err(other) => panic!("a racing promotion failed otherwise: {other}"),
        }
    }
    assert!(!landed.is_empty());
    let last = store.pointer().await.unwrap().unwrap().pointer;
    let known: Vec<String> = std::iter::once(&last.champion).chain(&last.history).map(|m| m.model_version.clone()).collect();
    for version in &landed {
        assert!(known.contains(version), "{version} landed but is not in {known:?}");
    }
    // What a losing operator is told.
    let message = ModelOpError::Raced { change: "promote" }.to_string();
    assert!(message.contains("someone else changed it") && message.contains("model status"), "{message}");
}

#[tokio::test]
async fn shared_key_corrupt_and_invalid_models_are_refused() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "corrupt");
    store.ensure_container().await.unwrap();
    let scratch = Scratch::new("model-cli");

    // The CLI refuses a file that is not a model before anything is uploaded.
    std::fs::write(scratch.path("broken.onnx"), b"not a model").unwrap();
    let out = cli(&azurite, "corrupt", &["promote", "--file", scratch.path("broken.onnx").to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the model file was refused"), "{stderr}");
    assert!(store.pointer().await.unwrap().is_none());

    // Promote through the CLI, then replace the champion's blob behind the pointer's back: a
    // download is refused by its SHA-256.
    std::fs::write(scratch.path("m.onnx"), model_variant("ae-corrupt-0001", None)).unwrap();
    let out = cli(&azurite, "corrupt", &["promote", "--file", scratch.path("m.onnx").to_str().unwrap(), "--by", "ci"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("promote: champion ae-corrupt-0001 (was the packaged model)"), "{stdout}");
    let status = cli(&azurite, "corrupt", &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("by ci"), "{status:?}");

    // A challenger may read the champion's features in another order (windows are decoded for
    // the champion and reordered for it), but not a feature the champion's windows lack.
    let mut reordered = model_variant("ae-corrupt-0004", None);
    replace_once(&mut reordered, br#""temperature_min", "temperature_max""#, br#""temperature_max", "temperature_min""#);
    std::fs::write(scratch.path("reordered.onnx"), reordered).unwrap();
    let out = cli(&azurite, "corrupt", &["challenge", "--file", scratch.path("reordered.onnx").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut foreign = model_variant("ae-corrupt-0006", None);
    replace_once(&mut foreign, br#""temperature_min""#, br#""temperature_mid""#);
    std::fs::write(scratch.path("foreign.onnx"), foreign).unwrap();
    let out = cli(&azurite, "corrupt", &["challenge", "--file", scratch.path("foreign.onnx").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("do not carry (temperature_mid)"), "{stderr}");
    let pointer = store.pointer().await.unwrap().unwrap().pointer;
    let container = azure_storage_blob::BlobContainerClient::new(
        format!("{}/corrupt?{}", azurite.endpoint(), model_store::sas::account_sas(test_support::azurite::ACCOUNT, test_support::azurite::KEY, domain::time::now() + time::Duration::hours(1)).unwrap()).parse().unwrap(),
        None,
        None,
    )
    .unwrap();
    let tampered = model_variant("ae-corrupt-0002", None);
    container
        .blob_client(&pointer.champion.blob)
        .upload(azure_core::Bytes::from(tampered).into(), None)
        .await
        .unwrap();
    let refused = store.download_model(&pointer.champion).await;
    assert!(matches!(&refused, Err(StoreError::Corrupt { problem, .. }) if problem.contains("SHA-256")), "{refused:?}");

    // The champion's own blob is corrupt now, so even a matching challenger is refused: the
    // check reads the champion through the same verification.
    std::fs::write(scratch.path("same.onnx"), model_variant("ae-corrupt-0005", None)).unwrap();
    let out = cli(&azurite, "corrupt", &["challenge", "--file", scratch.path("same.onnx").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256"), "{out:?}");
}

#[tokio::test]
async fn shared_key_a_missing_container_is_not_an_empty_store_and_a_write_answered_twice_is_not_a_race() {
    let azurite = azurite_or_skip!();
    // No container: an error, never "no pointer" (which would send the fleet back to its
    // packaged model).
    let store = store(&azurite, "repeat");
    assert!(matches!(store.pointer().await, Err(StoreError::ContainerMissing { .. })), "{:?}", store.pointer().await);
    assert!(matches!(store.pointer_etag().await, Err(StoreError::ContainerMissing { .. })));
    let out = cli(&azurite, "repeat", &["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the container is missing"), "{}", String::from_utf8_lossy(&out.stderr));
    store.ensure_container().await.unwrap();
    assert!(store.pointer().await.unwrap().is_none());
    assert!(store.pointer_etag().await.unwrap().is_none());

    model_ops::promote(&store, Some(&checked("ae-repeat-00001")), "op").await.unwrap();
    let read = store.pointer().await.unwrap().unwrap();
    let second = store.upload_model("ae-repeat-00002", &model_variant("ae-repeat-00002", None)).await.unwrap();
    let after = Pointer::promote(Some(&read.pointer), second, "op", "t");
    // The write lands but its answer is lost; the retry finds the ETag moved. Reading the
    // pointer back shows it is this very change: done, not raced (a second rollback would
    // otherwise go back two models).
    store.put_pointer(&after, Some(&read.etag)).await.unwrap();
    let again = model_ops::write(&store, Some(read.clone()), after.clone()).await.unwrap();
    assert_eq!(again.after, after);
    // Any other change computed from the same read is still a race.
    let other = Pointer::challenge(Some(&read.pointer), None, "someone-else", "t").unwrap();
    assert!(matches!(model_ops::write(&store, Some(read), other).await, Err(ModelOpError::Raced { .. })));
    assert_eq!(store.pointer().await.unwrap().unwrap().pointer, after);

    // Uploading bytes already stored is read back, checked and taken as done.
    let planted = checked("ae-repeat-00003");
    let first = store.upload_model("ae-repeat-00003", &planted.bytes).await.unwrap();
    assert_eq!(store.upload_model("ae-repeat-00003", &planted.bytes).await.unwrap(), first);
}

#[tokio::test]
async fn shared_key_a_promotion_clears_a_challenger_the_new_champion_cannot_feed() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "refit");
    model_ops::promote(&store, Some(&checked("ae-refit-chmp01")), "op").await.unwrap();
    model_ops::challenge(&store, Some(&checked("ae-refit-chal01")), "op").await.unwrap();
    // A champion whose vibration channel has another name: its windows carry no vibration_*
    // feature, which the challenger reads.
    let mut renamed = model_variant("ae-refit-other1", None);
    let mut at = 0;
    while let Some(found) = renamed[at..].windows(9).position(|w| w == b"vibration") {
        renamed[at + found..at + found + 9].copy_from_slice(b"vibratiox");
        at += found + 9;
    }
    let renamed = model_ops::check(renamed, "renamed").expect("the renamed model loads");
    let changed = model_ops::promote(&store, Some(&renamed), "op").await.unwrap();
    let (cleared, missing) = changed.challenger_cleared.expect("the challenger is cleared");
    assert_eq!(cleared.model_version, "ae-refit-chal01");
    assert!(!missing.is_empty() && missing.iter().all(|f| f.starts_with("vibration_")), "{missing:?}");
    let stored = store.pointer().await.unwrap().unwrap().pointer;
    assert_eq!((stored.champion.model_version.as_str(), stored.challenger), ("ae-refit-other1", None));
    // Naming it again is refused against this champion; after a rollback it fits again.
    let again = model_ops::challenge(&store, Some(&checked("ae-refit-chal01")), "op").await;
    assert!(matches!(again, Err(ModelOpError::FeatureMismatch { .. })), "{:?}", again.err());
    model_ops::rollback(&store, "op").await.unwrap();
    model_ops::challenge(&store, Some(&checked("ae-refit-chal01")), "op").await.unwrap();
    // Rolling back to the renamed champion is not possible (it left the history), but promoting
    // it again clears the challenger again, and the CLI says so.
    let scratch = Scratch::new("refit");
    std::fs::write(scratch.path("renamed.onnx"), &renamed.bytes).unwrap();
    let out = cli(&azurite, "refit", &["promote", "--file", scratch.path("renamed.onnx").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("challenger ae-refit-chal01 cleared"), "{stdout}");
}

#[tokio::test]
async fn identity_path_reaches_the_credential_and_says_what_to_check() {
    // No Azurite: the identity form needs Entra ID, which nothing here provides. The CLI takes
    // the developer tools' login (`az login`), finds none, and says so in one line, naming the
    // role; it never falls back to anything else.
    let closed = ClosedPort::new();
    let out = Command::new(BIN)
        .args(["model", "status"])
        .env_remove("ANOMALY_MODEL_STORE")
        .env("ANOMALY_MODEL_STORE__blobServiceUri", format!("https://127.0.0.1:{}", closed.port()))
        .env("PATH", "/nonexistent")
        .output()
        .expect("the CLI runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not authorized on https://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("Storage Blob Data Reader"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = Command::new(BIN).args(["model", "status"]).env_remove("ANOMALY_MODEL_STORE").env_remove("ANOMALY_MODEL_STORE__blobServiceUri").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model store is configured"));
}

/// `body` is what the OpenAPI document says `schema` is.
fn assert_matches_openapi(body: &serde_json::Value, schema: &str) {
    let openapi: serde_json::Value = serde_json::from_str(service::http::OPENAPI).unwrap();
    let document = serde_json::json!({"$ref": format!("#/components/schemas/{schema}"), "components": openapi["components"]});
    let validator = jsonschema::validator_for(&document).expect("the OpenAPI schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{body}");
}

/// Polls `GET /api/model` until `done` holds; returns the body and how long it took.
async fn wait_model(app: &TestApp, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> (serde_json::Value, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
        if done(&body) {
            return (body, started.elapsed());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{what} not seen within 30 s: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shared_key_handler_follows_the_pointer_and_never_serves_an_unverified_model() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "follow");
    let app = spawn_app_with(|s| {
        s.model_store = Some(settings(&azurite, "follow"));
        s.model_poll = std::time::Duration::from_millis(100);
    })
    .await;

    // No pointer yet: the packaged model, and the store it follows.
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(body["origin"]["kind"], "packaged");
    assert_eq!(body["origin"]["sha256"], model_store::sha256_hex(&std::fs::read(default_model()).unwrap()));
    assert_eq!(body["model_store"]["container"], format!("{}/follow", azurite.endpoint()));
    assert_eq!(body["challenger"], serde_json::Value::Null);
    assert_matches_openapi(&body, "ModelInfo");

    // A promotion reaches the handler within a poll or two; so does a challenger.
    let promoted = model_ops::promote(&store, Some(&checked("ae-follow-00001")), "op").await.unwrap();
    let (body, took) = wait_model(&app, "the promotion", |b| b["model_version"] == "ae-follow-00001").await;
    assert_eq!(body["origin"], serde_json::json!({"kind": "store", "blob": promoted.after.champion.blob, "sha256": promoted.after.champion.sha256}));
    eprintln!("promotion seen after {took:?} (poll interval 100 ms)");
    model_ops::challenge(&store, Some(&checked("ae-follow-chal1")), "op").await.unwrap();
    let (body, _) = wait_model(&app, "the challenger", |b| b["challenger"]["model_version"] == "ae-follow-chal1").await;
    assert_eq!(body["challenger"]["origin"]["kind"], "store");

    // A pointer naming bytes that are not the file: refused once, the champion stays.
    let read = store.pointer().await.unwrap().unwrap();
    let good = store.upload_model("ae-follow-00002", &model_variant("ae-follow-00002", None)).await.unwrap();
    let lying = model_store::ModelRef { sha256: "0".repeat(64), ..good.clone() };
    store.put_pointer(&Pointer::promote(Some(&read.pointer), lying, "mallory", "t"), Some(&read.etag)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(body["model_version"], "ae-follow-00001", "an unverified file never serves");
    app.assert_metrics(&["sensor_anomaly_model_follow_total{role=\"champion\",outcome=\"refused\"} 1"]).await;

    // A file that is not a model, with its true hash: refused by the load checks.
    let read = store.pointer().await.unwrap().unwrap();
    let junk = store.upload_model("ae-follow-junk01", b"not an onnx file").await.unwrap();
    store.put_pointer(&Pointer::promote(Some(&read.pointer), junk, "op", "t"), Some(&read.etag)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(body["model_version"], "ae-follow-00001");
    app.assert_metrics(&["sensor_anomaly_model_follow_total{role=\"champion\",outcome=\"refused\"} 2"]).await;

    // A file named before it is uploaded: refused (not found). Once it is there and the pointer
    // is written again it serves: a refusal lasts only as long as the pointer that named it.
    let bytes = model_variant("ae-follow-00003", None);
    let sha256 = model_store::sha256_hex(&bytes);
    let early = model_store::ModelRef {
        model_version: "ae-follow-00003".into(),
        blob: model_store::ModelRef::blob_name("ae-follow-00003", &sha256),
        sha256,
        bytes: bytes.len() as u64,
    };
    let read = store.pointer().await.unwrap().unwrap();
    store.put_pointer(&Pointer::promote(Some(&read.pointer), early.clone(), "op", "t"), Some(&read.etag)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(body["model_version"], "ae-follow-00001");
    app.assert_metrics(&["sensor_anomaly_model_follow_total{role=\"champion\",outcome=\"refused\"} 3"]).await;
    store.upload_model("ae-follow-00003", &bytes).await.unwrap();
    let read = store.pointer().await.unwrap().unwrap();
    store.put_pointer(&Pointer::promote(Some(&read.pointer), early, "op", "t2"), Some(&read.etag)).await.unwrap();
    wait_model(&app, "the file once uploaded", |b| b["model_version"] == "ae-follow-00003").await;

    // Back to a good file; rollback and clearing the challenger follow too.
    let read = store.pointer().await.unwrap().unwrap();
    store.put_pointer(&Pointer::promote(Some(&read.pointer), good, "op", "t"), Some(&read.etag)).await.unwrap();
    wait_model(&app, "the good promotion", |b| b["model_version"] == "ae-follow-00002").await;
    model_ops::challenge(&store, None, "op").await.unwrap();
    wait_model(&app, "the cleared challenger", |b| b["challenger"].is_null()).await;

    // Reload is refused: it would change this instance only.
    let response = app.post_json("/api/reload", &serde_json::json!({})).await;
    assert_eq!(response.status().as_u16(), 409);
    let error: serde_json::Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("sensor-anomaly model promote"), "{error}");
    app.assert_metrics(&[
        "sensor_anomaly_model_follow_total{role=\"champion\",outcome=\"switched\"} 3",
        "sensor_anomaly_model_follow_total{role=\"champion\",outcome=\"refused\"} 3",
        "sensor_anomaly_model_follow_total{role=\"challenger\",outcome=\"set\"} 1",
        "sensor_anomaly_model_follow_total{role=\"challenger\",outcome=\"cleared\"} 1",
    ])
    .await;
}

/// `n` windows of two devices from the `skip`-th on, every third one shifted far off (anomalous
/// for the default model and its variants), as the host delivers them.
fn batch(skip: usize, n: usize) -> serde_json::Value {
    let mut w: Vec<_> = healthy_windows(2, 6.0, 77).into_iter().skip(skip).take(n).collect();
    for window in w.iter_mut().step_by(3) {
        shift_channel(window, "vibration", 60.0);
    }
    invocation(encoded(serde_json::json!(texts(&w))), many_metadata(n, skip as i64 + 1))
}

#[tokio::test]
async fn shared_key_a_challenger_is_scored_in_shadow_and_never_stored_or_alerted() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "shadow");
    model_ops::promote(&store, Some(&checked("ae-shadow-champ")), "op").await.unwrap();
    // A trigger-happy challenger: its threshold is a hundredth of the champion's.
    let eager = model_ops::check(model_variant("ae-shadow-eager", Some("0.00095652007255163")), "eager").unwrap();
    model_ops::challenge(&store, Some(&eager), "op").await.unwrap();
    let app = spawn_app_with(|s| {
        s.model_store = Some(settings(&azurite, "shadow"));
        s.model_poll = std::time::Duration::from_millis(200);
    })
    .await;
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    assert_eq!(body["challenger"]["model_version"], "ae-shadow-eager", "set before the first invocation");
    assert_eq!(body["challenger"]["shadow"], serde_json::Value::Null, "nothing scored yet");

    let (status, reply) = invoke(&app, &batch(0, 30)).await;
    assert_eq!(status, 200);
    let champion_alerts = alerts(&reply);
    assert_eq!(champion_alerts.len(), 10, "the champion's alerts only");
    assert!(champion_alerts.iter().all(|a| a["model_version"] == "ae-shadow-champ"));
    assert_eq!(app.stored_count().await, 10, "the challenger's verdicts are not stored");

    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    let hour = &body["challenger"]["shadow"]["hours"][0];
    assert_eq!(hour["windows"], 30);
    assert_eq!(hour["both"], 10);
    assert_eq!(hour["champion_only"], 0);
    assert!(hour["challenger_only"].as_u64().unwrap() > 0, "{hour}");
    assert!(hour["challenger_anomaly_rate"].as_f64().unwrap() > hour["champion_anomaly_rate"].as_f64().unwrap());
    assert_matches_openapi(&body, "ModelInfo");
    let dashboard: serde_json::Value = app.get("/api/dashboard/data").await.json().await.unwrap();
    assert_eq!(dashboard["challenger"]["version"], "ae-shadow-eager");
    assert_eq!(dashboard["challenger"]["shadow"]["both"], 10);
    assert_eq!(dashboard["challenger"]["shadow"]["windows"], 30);
    assert_matches_openapi(&dashboard, "DashboardData");
    let ratios: u64 = hour["challenger_score_ratio"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(ratios, 30);
    app.assert_metrics(&["sensor_anomaly_shadow_windows_total{agreement=\"both\",challenger_version=\"ae-shadow-eager\"} 10"]).await;

    // A challenger that reads the champion's features in another order is scored on the same
    // windows, reordered for it (the reordering itself is unit-tested in `service::shadow`).
    let mut swapped = model_variant("ae-shadow-swap1", None);
    replace_once(&mut swapped, br#""temperature_min", "temperature_max""#, br#""temperature_max", "temperature_min""#);
    let swapped = model_ops::check(swapped, "swapped").unwrap();
    model_ops::challenge(&store, Some(&swapped), "op").await.unwrap();
    wait_model(&app, "the swapped challenger", |b| b["challenger"]["model_version"] == "ae-shadow-swap1").await;
    invoke(&app, &batch(30, 30)).await;
    let body: serde_json::Value = app.get("/api/model").await.json().await.unwrap();
    let hour = &body["challenger"]["shadow"]["hours"][0];
    assert_eq!((hour["windows"].as_u64(), hour["failures"].as_u64()), (Some(30), Some(0)), "{hour}");
}

/// Two instances, one store: both switch within the poll interval; a batch re-delivered to an
/// instance on the other model (the fleet mid-switch) is stored once, its alerts and incident
/// messages keep their ids.
#[tokio::test]
async fn shared_key_two_instances_switch_together_and_a_redelivery_across_models_is_stored_once() {
    let azurite = azurite_or_skip!();
    let store = store(&azurite, "fleet");
    model_ops::promote(&store, Some(&checked("ae-fleet-old-01")), "op").await.unwrap();
    let shared = Scratch::new("fleet-store");
    let db = shared.path("anomalies.sqlite");
    let instance = |poll_ms: u64| {
        let (settings, db) = (settings(&azurite, "fleet"), db.clone());
        spawn_app_with(move |s| {
            s.model_store = Some(settings);
            s.model_poll = std::time::Duration::from_millis(poll_ms);
            s.sqlite_path = db;
        })
    };
    let (a, b) = (instance(250).await, instance(250).await);
    // A third instance that polls hourly: it stays on the old model after the promotion.
    let laggard = instance(3_600_000).await;

    let (status, first) = invoke(&a, &batch(0, 30)).await;
    assert_eq!(status, 200);
    assert_eq!(a.stored_count().await, 10);

    let started = std::time::Instant::now();
    model_ops::promote(&store, Some(&checked("ae-fleet-new-01")), "op").await.unwrap();
    let (_, took_a) = wait_model(&a, "instance a", |m| m["model_version"] == "ae-fleet-new-01").await;
    let (_, took_b) = wait_model(&b, "instance b", |m| m["model_version"] == "ae-fleet-new-01").await;
    let fleet = started.elapsed();
    eprintln!("fleet switched in {fleet:?} (a {took_a:?}, b {took_b:?}; poll 250 ms)");
    assert!(fleet < std::time::Duration::from_secs(5), "{fleet:?}");

    // The first batch re-delivered to b (now on the new model): nothing stored again, the same
    // alert ids and incident message ids.
    let (status, again) = invoke(&b, &batch(0, 30)).await;
    assert_eq!(status, 200);
    assert_eq!(b.stored_count().await, 10);
    let ids = |reply: &serde_json::Value, binding: &str| -> Vec<String> {
        let mut ids: Vec<String> = output(reply, binding)
            .iter()
            .map(|m| m.get("alert_id").or_else(|| m.get("message_id")).unwrap().as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again, "alerts"), ids(&first, "alerts"));
    assert_eq!(ids(&again, "incidents"), ids(&first, "incidents"));
    assert!(!ids(&first, "incidents").is_empty());

    // A new batch reaches b (new model) and then the laggard (old model): stored once, alerted
    // under one id per window.
    let (_, on_new) = invoke(&b, &batch(100, 30)).await;
    let stored = b.stored_count().await;
    assert_eq!(stored, 20);
    let laggard_model: serde_json::Value = laggard.get("/api/model").await.json().await.unwrap();
    assert_eq!(laggard_model["model_version"], "ae-fleet-old-01");
    let (_, on_old) = invoke(&laggard, &batch(100, 30)).await;
    assert_eq!(laggard.stored_count().await, stored, "the window is stored once, whichever champion scored it");
    assert_eq!(ids(&on_old, "alerts"), ids(&on_new, "alerts"));
}
