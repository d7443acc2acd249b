//! The whole pipeline on one machine: simulate a fleet, window it as Stream Analytics would,
//! and drive `ScoreWindows` over HTTP with host-shaped invocations, storing anomalies in the
//! embedded store; then report detection quality against the injected faults, and speed.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::evaluation::{self, IncidentQuality, IncidentSpan, Quality, Truth};
use super::simulate::{self, SimConfig};
use super::windowing::{WindowError, WindowSpec};
use service::configuration::Settings;
use domain::time as timefmt;
use ingress::host;
use sinks::{HistoryQuery, IncidentQuery, StoreError};
use service::startup::{Application, StartupError};
use service::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] service::configuration::ConfigError),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("ScoreWindows request failed: {0}")]
    Http(String),
    #[error("simulated fleet produced no windows (devices {devices}, hours {hours})")]
    Empty { devices: usize, hours: f64 },
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub sim: SimConfig,
    pub window_secs: i64,
    pub batch_size: usize,
    pub concurrency: usize,
    pub model_path: PathBuf,
    pub db_path: PathBuf,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Keep the handler running on this port after the demo (`demo --serve`), for the
    /// dashboard; `None` stops it.
    pub serve_port: Option<u16>,
}

/// The handler left running by `demo --serve`.
pub struct Serving {
    pub port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// Serves until `signal`, then stops gracefully.
    pub async fn until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), DemoError> {
        signal.await;
        let _ = self.stop.send(());
        self.server
            .await
            .map_err(|e| DemoError::Http(format!("server task failed: {e}")))?
            .map_err(|e| DemoError::Http(format!("server failed: {e}")))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub devices: usize,
    pub hours: f64,
    pub seed: u64,
    pub windows_scored: usize,
    pub anomalies: usize,
    pub anomalies_stored: usize,
    pub batches: usize,
    pub batch_size: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub top_channel_accuracy: f64,
    pub windows_per_second: f64,
    pub batch_latency_ms: Latency,
    pub model_version: String,
    pub quality: Quality,
    pub incidents: IncidentReport,
}

/// The incidents the demo's windows made, against the injected fault episodes.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentReport {
    /// Messages published on the incidents output (opened, escalated, resolved).
    pub messages: usize,
    pub quality: IncidentQuality,
}

/// Event Hubs partitions the demo spreads devices over.
const DEMO_PARTITIONS: usize = 4;

/// The partition of a device: a stable hash of its id, as Event Hubs hashes a partition key.
fn partition_of(device: &str, partitions: usize) -> usize {
    (domain::fnv1a(device.bytes()) % partitions.max(1) as u64) as usize
}

/// What the driving workers gather from the replies.
#[derive(Debug, Clone, Default)]
struct Collected {
    latencies_ms: Vec<f64>,
    /// (device, window end) of each alert, with its top channel.
    predicted: HashMap<(String, String), String>,
    refused: usize,
    /// Incident messages published.
    incident_messages: usize,
}

fn progress(enabled: bool, message: &str) {
    if enabled {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{message}");
    }
}

/// Runs the demo; `telemetry` says whether the handler exports to Application Insights.
pub async fn run(options: DemoOptions, telemetry: &Telemetry) -> Result<DemoReport, DemoError> {
    run_and_serve(options, telemetry)
        .await
        .map(|(report, _)| report)
}

/// Runs the demo and, with `serve_port`, leaves the handler running on the demo's data.
pub async fn run_and_serve(
    options: DemoOptions,
    telemetry: &Telemetry,
) -> Result<(DemoReport, Option<Serving>), DemoError> {
    let show = options.progress;
    let sim = &options.sim;
    progress(
        show,
        &format!(
            "simulating {} devices for {} h at one sample every {} s (seed {}) ...",
            sim.devices, sim.hours, sim.interval_secs, sim.seed
        ),
    );
    let started = Instant::now();
    let simulated = simulate::windows(sim, WindowSpec::tumbling(options.window_secs)?, true);
    let (samples, bad_samples) = (simulated.samples, simulated.refused);
    let windows = simulated.records;
    if windows.is_empty() {
        return Err(DemoError::Empty {
            devices: sim.devices,
            hours: sim.hours,
        });
    }
    progress(
        show,
        &format!("windowed {samples} samples into {} {}-second windows ({bad_samples} unreadable) in {:.1} s", windows.len(), options.window_secs, started.elapsed().as_secs_f64()),
    );

    let truth: HashMap<(String, String), Truth> = windows
        .iter()
        .map(|w| {
            let key = (
                w["device_id"].as_str().unwrap_or_default().to_string(),
                w["window_end"].as_str().unwrap_or_default().to_string(),
            );
            let text = |k: &str| w.get(k).and_then(Value::as_str).map(str::to_string);
            (
                key,
                Truth {
                    anomalous: w.get("label").and_then(Value::as_u64) == Some(1),
                    fault_kind: text("fault_kind"),
                    fault_channel: text("fault_channel"),
                },
            )
        })
        .collect();

    // The handler, as the Functions host would start it, on a free port with a fresh store.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", options.db_path.display()));
    }
    // The incident rules as configured (ANOMALY_INCIDENT_*), so their effect can be measured here.
    let configured = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let settings = Settings {
        incident_policy: configured.incident_policy,
        port: options.serve_port.unwrap_or(0),
        model_path: options.model_path.clone(),
        sqlite_path: options.db_path.clone(),
        ..Settings::default()
    };
    let binding = settings.trigger_binding.clone();
    let app = Application::build_with_telemetry(settings, telemetry).await?;
    let port = app.port();
    let state = app.state();
    let model_version = state.model.get().info.model_version.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    // Stream Analytics writes one record per event here, partitioned by device id (its partition
    // key) as Event Hubs keeps them: each partition's events in order, and the host hands one
    // partition's batches to the function one after another. Each batch is one host invocation.
    let partitions = DEMO_PARTITIONS;
    let mut bodies: Vec<Vec<String>> = vec![Vec::new(); partitions];
    for w in &windows {
        let device = w.get("device_id").and_then(Value::as_str).unwrap_or_default();
        bodies[partition_of(device, partitions)].push(Value::Object(w.clone()).to_string());
    }
    let batches: Vec<Vec<String>> = bodies
        .iter()
        .enumerate()
        .map(|(partition, events)| {
            events
                .chunks(options.batch_size.max(1))
                .enumerate()
                .map(|(i, chunk)| {
                    let enqueued = timefmt::format(timefmt::now());
                    host::many_string_invocation(
                        &binding,
                        chunk,
                        &partition.to_string(),
                        (i * options.batch_size) as i64,
                        &enqueued,
                    )
                    .to_string()
                })
                .collect()
        })
        .collect();
    let invocations: usize = batches.iter().map(Vec::len).sum();
    progress(show, &format!("driving ScoreWindows on 127.0.0.1:{port}: {invocations} invocations of up to {} events from {partitions} partitions, {} at a time ...", options.batch_size, options.concurrency));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| DemoError::Http(e.to_string()))?;
    let url = format!("http://127.0.0.1:{port}/ScoreWindows");
    let batches = Arc::new(batches);
    let done = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Collected::default()));
    let drive_started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let workers_count = options.concurrency.clamp(1, partitions);
    for worker in 0..workers_count {
        let (client, url, batches, done, results) = (
            client.clone(),
            url.clone(),
            Arc::clone(&batches),
            Arc::clone(&done),
            Arc::clone(&results),
        );
        // Each worker owns whole partitions and takes their batches in order, one at a time.
        let owned: Vec<usize> = (worker..partitions).step_by(workers_count).collect();
        let rounds = owned.iter().map(|&p| batches[p].len()).max().unwrap_or(0);
        let order: Vec<(usize, usize)> = (0..rounds)
            .flat_map(|round| owned.iter().map(move |&p| (p, round)))
            .collect();
        workers.spawn(async move {
            for (partition, round) in order {
                let Some(body) = batches[partition].get(round) else {
                    continue;
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| DemoError::Http(e.to_string()))?;
                let status = response.status();
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| DemoError::Http(e.to_string()))?;
                let latency_ms = sent.elapsed().as_secs_f64() * 1e3;
                if !status.is_success() {
                    return Err(DemoError::Http(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    )));
                }
                let reply: host::InvocationResponse = serde_json::from_slice(&bytes)
                    .map_err(|e| DemoError::Http(format!("unreadable response: {e}")))?;
                let alerts = reply
                    .outputs
                    .get("alerts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let refused = reply
                    .outputs
                    .get("deadletter")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let mut guard = results
                    .lock()
                    .map_err(|_| DemoError::Http("result collector poisoned".into()))?;
                guard.latencies_ms.push(latency_ms);
                guard.refused += refused;
                guard.incident_messages += reply
                    .outputs
                    .get("incidents")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                for alert in alerts {
                    let parsed: Value = alert
                        .as_str()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null);
                    let key = (
                        parsed["device_id"].as_str().unwrap_or_default().to_string(),
                        parsed["window_end"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                    guard.predicted.insert(
                        key,
                        parsed["top_channel"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                drop(guard);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                let total = invocations;
                let step = (total / 10).max(1);
                if finished % step == 0 || finished == total {
                    progress(
                        show,
                        &format!(
                            "  {finished}/{total} invocations ({:.0}%)",
                            100.0 * finished as f64 / total as f64
                        ),
                    );
                }
            }
            Ok::<(), DemoError>(())
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(|e| DemoError::Http(format!("worker failed: {e}")))??;
    }
    let drive_seconds = drive_started.elapsed().as_secs_f64();
    drop(client);
    let serving = match options.serve_port {
        Some(_) => Some(Serving { port, stop, server }),
        None => {
            let _ = stop.send(());
            server
                .await
                .map_err(|e| DemoError::Http(format!("server task failed: {e}")))?
                .map_err(|e| DemoError::Http(format!("server failed: {e}")))?;
            None
        }
    };

    let Collected {
        latencies_ms: mut latencies,
        predicted,
        refused,
        incident_messages,
    } = match Arc::try_unwrap(results) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => shared.lock().map(|g| g.clone()).unwrap_or_default(),
    };
    if refused > 0 {
        progress(
            show,
            &format!("warning: {refused} windows were dead-lettered"),
        );
    }
    let stored = state
        .store
        .history(HistoryQuery {
            limit: usize::MAX >> 1,
            ..HistoryQuery::default()
        })
        .await?
        .len();
    let quality = evaluation::evaluate(&truth, &predicted);
    let stored_incidents = state
        .store
        .incidents(IncidentQuery {
            limit: usize::MAX >> 1,
            ..IncidentQuery::default()
        })
        .await?;
    let instant = |text: &str| sinks::unix_ms(text).unwrap_or_default();
    let spans: Vec<IncidentSpan> = stored_incidents
        .iter()
        .map(|i| IncidentSpan {
            device_id: i.device_id.clone(),
            opened_ms: instant(&i.opened_at),
            detected_ms: instant(&i.detected_at),
            last_ms: instant(&i.last_anomalous_at),
        })
        .collect();
    let device_days = sim.devices as f64 * sim.hours / 24.0;
    let incidents = IncidentReport {
        messages: incident_messages,
        quality: evaluation::evaluate_incidents(&truth, &spans, options.window_secs, device_days),
    };
    let report = DemoReport {
        devices: sim.devices,
        hours: sim.hours,
        seed: sim.seed,
        windows_scored: windows.len() - refused,
        anomalies: predicted.len(),
        anomalies_stored: stored,
        batches: invocations,
        batch_size: options.batch_size,
        precision: quality.precision,
        recall: quality.recall,
        f1: quality.f1,
        top_channel_accuracy: quality.top_channel_accuracy,
        windows_per_second: (windows.len() - refused) as f64 / drive_seconds.max(1e-9),
        batch_latency_ms: Latency {
            p50: evaluation::percentile(&mut latencies, 50.0),
            p99: evaluation::percentile(&mut latencies, 99.0),
            max: evaluation::percentile(&mut latencies, 100.0),
        },
        model_version,
        quality,
        incidents,
    };
    Ok((report, serving))
}

/// The report for people.
pub fn render(report: &DemoReport) -> String {
    use std::fmt::Write as _;
    let q = &report.quality;
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = (|| -> std::fmt::Result {
        writeln!(out, "\nDemo report (model {})", report.model_version)?;
        writeln!(
            out,
            "  fleet              {} devices x {} h, seed {}",
            report.devices, report.hours, report.seed
        )?;
        writeln!(out, "  windows scored     {}", report.windows_scored)?;
        let (flagged, stored, labelled) = (
            report.anomalies,
            report.anomalies_stored,
            q.labelled_anomalous,
        );
        writeln!(
            out,
            "  anomalies          {flagged} flagged, {stored} stored, {labelled} labelled"
        )?;
        let (tp, fp, missed) = (q.true_positives, q.false_positives, q.false_negatives);
        writeln!(
            out,
            "  precision          {:.3}  ({tp} true, {fp} false alarms)",
            report.precision
        )?;
        writeln!(
            out,
            "  recall             {:.3}  ({missed} missed)",
            report.recall
        )?;
        writeln!(out, "  F1                 {:.3}", report.f1)?;
        let accuracy = report.top_channel_accuracy;
        writeln!(
            out,
            "  top-channel acc.   {accuracy:.3}  (top contribution names the faulty channel)"
        )?;
        writeln!(out, "  per fault kind     windows  recall  top-channel")?;
        for (kind, k) in &q.per_fault_kind {
            writeln!(
                out,
                "    {kind:<16} {:>7}  {:>6.3}  {:>11.3}",
                k.windows, k.recall, k.top_channel_accuracy
            )?;
        }
        let (rate, batches, size) = (report.windows_per_second, report.batches, report.batch_size);
        writeln!(
            out,
            "  throughput         {rate:.0} windows/s over HTTP ({batches} invocations of {size})"
        )?;
        let latency = &report.batch_latency_ms;
        writeln!(
            out,
            "  batch latency      p50 {:.2} ms, p99 {:.2} ms",
            latency.p50, latency.p99
        )?;
        let i = &report.incidents.quality;
        writeln!(
            out,
            "  incidents          {} for {} fault episodes ({} messages instead of {} alerts)",
            i.incidents, i.episodes, report.incidents.messages, report.anomalies
        )?;
        writeln!(
            out,
            "    per episode      {} exactly one, {} split, {} missed, {} sharing one with another",
            i.exactly_one, i.split, i.missed, i.merged
        )?;
        writeln!(
            out,
            "    opened after     p50 {:.0} windows ({:.0} s), p90 {:.0} windows ({:.0} s) from the fault's first window",
            i.delay_windows_p50, i.delay_secs_p50, i.delay_windows_p90, i.delay_secs_p90
        )?;
        writeln!(
            out,
            "    false incidents  {} ({:.2} per device per day)",
            i.false_incidents, i.false_incidents_per_device_day
        )
    })();
    out
}
