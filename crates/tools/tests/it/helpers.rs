//! Test helpers: spawn the real handler (real ONNX Runtime, real SQLite, real HTTP) on a free
//! port, and build realistic windows with the simulator and the windowing the demo uses.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use service::configuration::Settings;
use service::http::AppState;
use service::startup::Application;
use sensor_anomaly::simulate::{self, SimConfig};
use sensor_anomaly::windowing::{WindowSpec, Windower};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(relative)
}

pub fn default_model() -> PathBuf {
    repo_path("models/default.onnx")
}

/// A scratch folder removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sensor-anomaly-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub db_path: PathBuf,
    pub scratch: Scratch,
    /// Dropping it (or [`TestApp::shutdown`]) is the app's shutdown signal.
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let scratch = Scratch::new("app");
    let mut settings = Settings {
        port: 0,
        model_path: default_model(),
        sqlite_path: scratch.path("anomalies.sqlite"),
        store_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    adjust(&mut settings);
    let db_path = settings.sqlite_path.clone();
    let app = Application::build(settings)
        .await
        .expect("application starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        state,
        db_path,
        scratch,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Sends the shutdown signal and returns once the server has stopped (requests in flight
    /// finish first).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn stored_count(&self) -> usize {
        let body: Value = self
            .get("/api/history?limit=1000")
            .await
            .json()
            .await
            .expect("history JSON");
        body["count"].as_u64().expect("count") as usize
    }

    /// Asserts that `/api/metrics` has each of these sample lines.
    pub async fn assert_metrics(&self, samples: &[&str]) {
        let metrics = self.get("/api/metrics").await.text().await.unwrap();
        for sample in samples {
            assert!(metrics.contains(sample), "{sample} missing from\n{metrics}");
        }
    }
}

/// Healthy windows from the simulator, as Stream Analytics would emit them.
pub fn healthy_windows(devices: usize, hours: f64, seed: u64) -> Vec<Map<String, Value>> {
    simulated_windows(SimConfig {
        devices,
        hours,
        seed,
        fault_rate: 0.0,
        ..SimConfig::default()
    })
}

pub fn simulated_windows(config: SimConfig) -> Vec<Map<String, Value>> {
    let mut windower = Windower::new(WindowSpec::tumbling(60).expect("spec"));
    simulate::simulate(&config, |s| windower.push(&s, 0).expect("valid sample"));
    windower.finish(false)
}

/// Adds `offset` to a channel's mean, min and max (a shifted reading).
pub fn shift_channel(window: &mut Map<String, Value>, channel: &str, offset: f64) {
    for stat in ["mean", "min", "max"] {
        let key = format!("{channel}_{stat}");
        let v = window[&key].as_f64().expect("numeric feature");
        window.insert(key, Value::from(v + offset));
    }
}

// Host-shaped invocations (see `src/ingress/host.rs` for what the host sends).

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

/// Healthy windows, with a large vibration shift in every `every`-th one so there is something to store.
pub fn windows(n: usize, every: usize) -> Vec<Map<String, Value>> {
    let mut out = healthy_windows(2, 6.0, 77);
    out.truncate(n);
    for w in out.iter_mut().step_by(every) {
        shift_channel(w, "vibration", 60.0);
    }
    out
}

pub fn texts(windows: &[Map<String, Value>]) -> Vec<String> {
    windows
        .iter()
        .map(|w| Value::Object(w.clone()).to_string())
        .collect()
}

pub async fn invoke(app: &TestApp, body: &Value) -> (u16, Value) {
    let response = app.post_json("/ScoreWindows", body).await;
    let status = response.status().as_u16();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    (status, response.json().await.expect("JSON reply"))
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

pub fn dead_letters(reply: &Value) -> Vec<Value> {
    output(reply, "deadletter")
}

// The real binary, started as the Functions host starts it.

pub const BIN: &str = env!("CARGO_BIN_EXE_sensor-anomaly");

/// A free local port (bound and released: the child binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `sensor-anomaly serve` in the repository root (beside `host.json`, as the host runs it) with
/// these app settings; stdout and stderr are captured.
pub fn serve_command(settings: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("serve")
        .current_dir(repo_path(""))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in settings {
        command.env(name, value);
    }
    command
}

/// Waits until `GET /` answers on `port`, or panics after `timeout`.
pub async fn wait_ready(port: u16, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "handler not ready on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
