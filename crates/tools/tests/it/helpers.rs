//! Test helpers: spawn the real handler (real ONNX Runtime, real SQLite, real HTTP) on a free
//! port, and build realistic windows with the simulator and the windowing the demo uses.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use service::configuration::Settings;
use service::http::AppState;
use service::startup::Application;
use sensor_anomaly::simulate::{self, SimConfig};
use sensor_anomaly::windowing::WindowSpec;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use test_support::host::*;
pub use test_support::process::{ChildGuard, ClosedPort};
pub use test_support::Scratch;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(relative)
}

pub fn default_model() -> PathBuf {
    repo_path("models/default.onnx")
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

/// The settings every in-process app starts from: any port, the default model, a SQLite file in
/// `scratch`, and a short store timeout.
fn test_settings(scratch: &Scratch) -> Settings {
    Settings {
        port: 0,
        model_path: default_model(),
        sqlite_path: scratch.path("anomalies.sqlite"),
        store_timeout: Duration::from_millis(300),
        ..Settings::default()
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let scratch = Scratch::new("app");
    let mut settings = test_settings(&scratch);
    adjust(&mut settings);
    let db_path = settings.sqlite_path.clone();
    let app = Application::build(settings)
        .await
        .expect("application starts");
    serve(app, db_path, scratch)
}

/// The app writing to `store` (a test double wrapping a real store).
pub async fn spawn_app_with_store(store: Arc<dyn sinks::AnomalyStore>) -> TestApp {
    let scratch = Scratch::new("app");
    let settings = test_settings(&scratch);
    let db_path = settings.sqlite_path.clone();
    let app = Application::build_with_store(settings, store)
        .await
        .expect("application starts");
    serve(app, db_path, scratch)
}

fn serve(app: Application, db_path: PathBuf, scratch: Scratch) -> TestApp {
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
    let simulated = simulate::windows(&config, WindowSpec::tumbling(60).expect("spec"), false);
    assert_eq!(simulated.first_refusal, None, "the simulator's samples are valid");
    simulated.records
}

/// Adds `offset` to a channel's mean, min and max (a shifted reading).
pub fn shift_channel(window: &mut Map<String, Value>, channel: &str, offset: f64) {
    for stat in ["mean", "min", "max"] {
        let key = format!("{channel}_{stat}");
        let v = window[&key].as_f64().expect("numeric feature");
        window.insert(key, Value::from(v + offset));
    }
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

// The CLI's `serve` (the same handler as `sensor-anomaly-handler`, whose own tests are in
// crates/service/tests), started from the app root with app settings in the environment.

pub const BIN: &str = env!("CARGO_BIN_EXE_sensor-anomaly");

/// `sensor-anomaly serve` in the repository root (beside `host.json`, as the host runs it) with
/// these app settings, on port 0 unless one is given (the handler logs the port it holds);
/// stdout is discarded, stderr is for [`ChildGuard`] to collect.
pub fn serve_command(settings: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("serve")
        .current_dir(repo_path(""))
        .env_remove("RUST_LOG")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in settings {
        command.env(name, value);
    }
    command
}

/// The handler as a child process, killed when the guard drops, and the port it listens on.
pub async fn spawn_serve(settings: &[(&str, String)]) -> (ChildGuard, u16) {
    let child = ChildGuard::spawn(serve_command(settings)).expect("serve starts");
    let port = child.ready_port(Duration::from_secs(30)).await;
    (child, port)
}

/// The default model with another `anomaly.model_version` (15 characters, the length of the
/// default's) and optionally another threshold (19 characters): an edit of equal length leaves
/// the ONNX protobuf valid, so the result is a real, distinct model file.
pub fn model_variant(version: &str, threshold: Option<&str>) -> Vec<u8> {
    let mut bytes = std::fs::read(default_model()).expect("default model");
    replace_once(&mut bytes, b"ae-08eb8db3ca8f", version.as_bytes());
    if let Some(threshold) = threshold {
        replace_once(&mut bytes, b"0.09565200725516301", threshold.as_bytes());
    }
    bytes
}

/// Replaces the first occurrence of `from` in a model file with `to`, of the same length.
pub fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "same-length edits only");
    let at = bytes.windows(from.len()).position(|w| w == from).expect("the default model's metadata value");
    bytes[at..at + to.len()].copy_from_slice(to);
}
