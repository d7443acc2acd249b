//! The command line: commands, their options, and the checks that turn options into settings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use domain::time as timefmt;
use sensor_anomaly::simulate::{FaultKind, SimConfig};
use sensor_anomaly::{eventhubs, schema, windowing};

#[derive(Parser)]
#[command(
    name = "sensor-anomaly",
    version,
    about = "Real-time anomaly detection for industrial IoT sensor windows"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the custom handler the Functions host starts (settings from the environment).
    Serve,
    /// Generate labelled telemetry for a simulated fleet, as JSON lines, or publish it to an
    /// event hub (--event-hub).
    Simulate {
        #[command(flatten)]
        sim: SimArgs,
        /// Output file (default: standard output).
        #[arg(long, conflicts_with_all = ["event_hub", "url"])]
        out: Option<PathBuf>,
        /// Or POST the simulation's window records to a running handler's ScoreWindows (e.g.
        /// http://127.0.0.1:8080) as host-shaped invocations: traffic for a local handler
        /// without Event Hubs.
        #[arg(long, conflicts_with = "event_hub")]
        url: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
        /// With --event-hub: publish Stream-Analytics-shaped window records (for the windows
        /// hub; there is no local Stream Analytics) instead of raw samples (the telemetry hub).
        #[arg(long, requires = "event_hub")]
        windows: bool,
        /// Tumbling window size for --windows and --url, in seconds (the default model is
        /// trained on 60).
        #[arg(long, default_value_t = 60)]
        window_secs: i64,
        /// With --event-hub: at most this many events per second.
        #[arg(long, requires = "event_hub")]
        rate: Option<f64>,
        /// With --event-hub: send each event when its timestamp comes due, one simulated second
        /// per second (as a live fleet would).
        #[arg(long, requires = "event_hub")]
        realtime: bool,
        /// With --event-hub: cap each batch below the hub's own limit (bytes).
        #[arg(long, requires = "event_hub")]
        max_batch_bytes: Option<u64>,
    },
    /// Print each alert (or dead letter) arriving on an event hub in one readable line.
    Alerts {
        #[command(flatten)]
        hub: HubArgs,
        /// The consumer group to read through.
        #[arg(long, default_value = "$Default")]
        consumer_group: String,
        /// Start from the oldest retained event instead of only new ones.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds without an event.
        #[arg(long)]
        idle_secs: Option<u64>,
        /// Print each event's body as it is (one JSON document per line) instead of a summary:
        /// dead letters saved this way are `replay --input`'s input.
        #[arg(long)]
        raw: bool,
    },
    /// Send dead-lettered windows (store_unavailable, store_rejected, future_window) through the
    /// pipeline again: to the windows hub (--event-hub) or a handler (--url). Safe to repeat.
    Replay {
        /// Dead letters as JSON lines ('-' for standard input), e.g. saved with `alerts --raw`.
        #[arg(long, conflicts_with = "from_event_hub", required_unless_present = "from_event_hub")]
        input: Option<PathBuf>,
        /// Read the dead letters from this event hub instead (the dead-letter hub), from the
        /// oldest retained event, until --idle-secs pass without one.
        #[arg(long)]
        from_event_hub: Option<String>,
        /// The consumer group for --from-event-hub.
        #[arg(long, default_value = "$Default")]
        consumer_group: String,
        /// With --from-event-hub: stop after this many seconds without an event.
        #[arg(long, default_value_t = 10)]
        idle_secs: u64,
        /// Publish the windows to this event hub (the windows hub ScoreWindows is triggered by).
        #[command(flatten)]
        hub: HubArgs,
        /// Or POST them to a running handler (e.g. http://127.0.0.1:8080) as host invocations.
        #[arg(long, conflicts_with = "event_hub", required_unless_present = "event_hub")]
        url: Option<String>,
        /// Dead-letter kinds to replay, comma-separated (default: store_unavailable,
        /// store_rejected, future_window: the windows refused for reasons outside them).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// Compute Stream Analytics window features from telemetry JSON lines.
    Window {
        /// Telemetry JSON lines ('-' for standard input).
        #[arg(long, default_value = "-")]
        input: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Window size in seconds.
        #[arg(long, default_value_t = 60)]
        size_secs: i64,
        /// Hop in seconds for hopping windows (default: the size, i.e. tumbling).
        #[arg(long)]
        hop_secs: Option<i64>,
        /// Channels to window, comma-separated, or `auto` for every numeric field of the first
        /// sample (CSV: every column but the timestamp, device, label and ignored ones)
        /// (default: the five simulated channels the default model uses).
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
        #[command(flatten)]
        csv: CsvArgs,
    },
    /// Score window records offline: JSON lines in, scored JSON lines out.
    Score {
        #[arg(long, default_value = "models/default.onnx")]
        model: PathBuf,
        #[arg(long, default_value = "-")]
        input: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Incident transitions from scored windows (JSON lines, as `score` writes them), by the
    /// handler's own incident rules and its settings (ANOMALY_INCIDENT_*, as for `serve`):
    /// incident messages out, one JSON line each; a summary on stderr.
    Incidents {
        #[arg(long, default_value = "-")]
        input: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time ONNX Runtime alone on window records (JSON lines): the ceiling of the handler's
    /// throughput (`scripts/bench.py`). Prints JSON.
    BenchModel {
        #[arg(long, default_value = "models/default.onnx")]
        model: PathBuf,
        /// Window records, JSON lines (as `window` writes them).
        #[arg(long)]
        windows: PathBuf,
        /// Rows per ONNX Runtime run; repeat for several (default: 100 and 10000).
        #[arg(long = "batch", default_values_t = [100usize, 10_000])]
        batches: Vec<usize>,
        /// Seconds spent on each batch size and kind.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Size the Azure resources for a fleet: Event Hubs throughput units and partitions, Stream
    /// Analytics units, function instances, Azure SQL writes and size, and the monthly order of
    /// cost (README: Capacity plan).
    Capacity(CapacityArgs),
    /// Azure SQL schema (settings from the environment, as for `serve`).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Run the whole pipeline locally and report detection quality and speed.
    Demo(DemoArgs),
    /// The models in Blob Storage that every handler instance follows (ANOMALY_MODEL_STORE or
    /// ANOMALY_MODEL_STORE__blobServiceUri, and ANOMALY_MODEL_CONTAINER, as for `serve`).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum ModelCommand {
    /// The champion, the challenger and the earlier champions the pointer names.
    Status {
        /// Print the pointer document itself.
        #[arg(long)]
        json: bool,
    },
    /// Make a model the champion fleet-wide: --file (validated and uploaded), or the current
    /// challenger.
    Promote {
        /// An ONNX model file following the contract (models/README.md).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Who is promoting, for the pointer's record (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Score a model in shadow beside the champion (--file), or stop (--clear).
    Challenge {
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        file: Option<PathBuf>,
        #[arg(long)]
        clear: bool,
        #[arg(long)]
        by: Option<String>,
    },
    /// Put the previous champion back.
    Rollback {
        #[arg(long)]
        by: Option<String>,
    },
}

/// `demo`'s options.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    pub(crate) sim: SimArgs,
    /// Tumbling window size in seconds (the default model is trained on 60).
    #[arg(long, default_value_t = 60)]
    pub(crate) window_secs: i64,
    /// Events per ScoreWindows invocation (host.json's maxEventBatchSize).
    #[arg(long, default_value_t = 48)]
    pub(crate) batch_size: usize,
    /// Invocations in flight at once.
    #[arg(long, default_value_t = 2)]
    pub(crate) concurrency: usize,
    /// The ONNX model to serve.
    #[arg(long, default_value = "models/default.onnx")]
    pub(crate) model: PathBuf,
    /// The embedded store the demo writes (recreated on every run).
    #[arg(long, default_value = "data/demo-anomalies.sqlite")]
    pub(crate) db: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep the handler running afterwards on --port, with the dashboard at
    /// /api/dashboard, until Ctrl-C.
    #[arg(long)]
    pub(crate) serve: bool,
    /// The port for --serve (0: any free port, named in the dashboard line).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
}

#[derive(Subcommand)]
pub(crate) enum DbCommand {
    /// Apply the `sql/` migrations not yet applied to the database of ANOMALY_SQL_CONNECTION_STRING.
    Migrate,
}

/// Which event hub, and how to authenticate.
#[derive(clap::Args, Clone)]
pub(crate) struct HubArgs {
    /// The event hub: telemetry, windows, alerts or windows-deadletter as deployed.
    #[arg(long = "event-hub")]
    pub(crate) event_hub: Option<String>,
    /// The fully qualified namespace (NAME.servicebus.windows.net), reached with Entra ID: your
    /// Azure CLI login, or --managed-identity. Without it, --connection-setting is used.
    #[arg(long, requires = "event_hub")]
    pub(crate) namespace: Option<String>,
    /// With --namespace: the managed identity instead of the Azure CLI login.
    #[arg(long, requires = "namespace")]
    pub(crate) managed_identity: bool,
    /// The environment variable holding a connection string, when there is no --namespace:
    /// local.settings.json.example has the emulator's.
    #[arg(long, default_value = "EventHubConnection")]
    pub(crate) connection_setting: String,
}

impl HubArgs {
    pub(crate) fn hub(&self) -> Result<&str> {
        self.event_hub
            .as_deref()
            .context("--event-hub is required (e.g. --event-hub alerts)")
    }

    pub(crate) fn connection(&self) -> Result<eventhubs::Connection, eventhubs::EventHubError> {
        match &self.namespace {
            Some(ns) => eventhubs::Connection::entra(ns, self.managed_identity),
            None => {
                let value = std::env::var(&self.connection_setting)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| eventhubs::EventHubError::NoConnection {
                        setting: self.connection_setting.clone(),
                    })?;
                eventhubs::Connection::from_connection_string(&self.connection_setting, &value)
            }
        }
    }
}

/// How to read CSV telemetry (one row per sample, one column per channel).
#[derive(clap::Args, Clone)]
pub(crate) struct CsvArgs {
    /// Input format; by default `csv` for a `.csv` file, JSON lines otherwise.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    pub(crate) format: Option<String>,
    /// CSV field separator (default: guessed from the header among `;`, tab and `,`).
    #[arg(long)]
    pub(crate) delimiter: Option<char>,
    /// CSV timestamp column (default: the first of timestamp, datetime, time).
    #[arg(long)]
    pub(crate) timestamp_column: Option<String>,
    /// CSV device column; when the file has none, every row belongs to `--device`.
    #[arg(long, default_value = "device_id")]
    pub(crate) device_column: String,
    /// Device id for a CSV without a device column (default: the file name without extension).
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// CSV 0/1 anomaly label column, used when present.
    #[arg(long, default_value = "label")]
    pub(crate) label_column: String,
    /// CSV columns that are neither channels nor labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) ignore_columns: Vec<String>,
}

impl CsvArgs {
    pub(crate) fn is_csv(&self, input: &Path) -> bool {
        match self.format.as_deref() {
            Some(format) => format == "csv",
            None => input
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        }
    }

    pub(crate) fn layout(&self, input: &Path) -> Result<windowing::CsvLayout> {
        let delimiter = match self.delimiter {
            None => None,
            Some(c) if c.is_ascii() => Some(c as u8),
            Some(c) => bail!("--delimiter must be one ASCII character, got {c:?}"),
        };
        let default_device = self.device.clone().unwrap_or_else(|| {
            input
                .file_stem()
                .filter(|_| input != Path::new("-"))
                .map_or_else(|| "device".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(windowing::CsvLayout {
            delimiter,
            timestamp: self.timestamp_column.clone(),
            device: self.device_column.clone(),
            default_device,
            label: self.label_column.clone(),
            ignore: self.ignore_columns.clone(),
        })
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct SimArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20)]
    pub(crate) devices: usize,
    /// Simulated hours per device.
    #[arg(long, default_value_t = 6.0)]
    pub(crate) hours: f64,
    /// Seconds between samples of one device.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) interval_secs: f64,
    /// Random seed: the same seed gives the same fleet and faults.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Expected faults per device per hour.
    #[arg(long, default_value_t = 0.4)]
    pub(crate) fault_rate: f64,
    /// Fault kinds to inject (comma-separated): spike, dip, drift, flatline, noise_burst.
    #[arg(long, value_delimiter = ',')]
    pub(crate) fault_kinds: Vec<String>,
    /// Channels faults may hit (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) fault_channels: Vec<String>,
    /// Fault duration range in minutes, as MIN,MAX.
    #[arg(long, value_delimiter = ',', default_values_t = [8.0, 20.0])]
    pub(crate) fault_minutes: Vec<f64>,
    /// Simulation start (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub(crate) start: String,
    /// No faults at all (training data).
    #[arg(long)]
    pub(crate) healthy: bool,
}

impl SimArgs {
    pub(crate) fn config(&self) -> Result<SimConfig> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.devices == 0 || !positive(self.hours) || !positive(self.interval_secs) {
            bail!("--devices, --hours and --interval-secs must be positive");
        }
        if !self.fault_rate.is_finite() || self.fault_rate < 0.0 {
            bail!("--fault-rate must be zero or positive");
        }
        let fault_kinds = if self.fault_kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            self.fault_kinds
                .iter()
                .map(|k| {
                    FaultKind::parse(k.trim()).with_context(|| {
                        format!(
                            "unknown fault kind {k:?} (spike, dip, drift, flatline, noise_burst)"
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        let fault_channels: Vec<String> = if self.fault_channels.is_empty() {
            schema::CHANNELS.iter().map(|c| c.to_string()).collect()
        } else {
            for c in &self.fault_channels {
                if !schema::CHANNELS.contains(&c.as_str()) {
                    bail!(
                        "unknown channel {c:?} (channels: {})",
                        schema::CHANNELS.join(", ")
                    );
                }
            }
            self.fault_channels.clone()
        };
        let &[lo, hi] = &self.fault_minutes[..] else {
            bail!("--fault-minutes must be MIN,MAX (two numbers)");
        };
        if !positive(lo) || !hi.is_finite() || hi < lo {
            bail!("--fault-minutes must be MIN,MAX with 0 < MIN <= MAX");
        }
        let start = timefmt::parse(&self.start)
            .with_context(|| format!("--start {:?} is not an RFC 3339 timestamp", self.start))?;
        Ok(SimConfig {
            devices: self.devices,
            hours: self.hours,
            interval_secs: self.interval_secs,
            seed: self.seed,
            fault_rate: if self.healthy { 0.0 } else { self.fault_rate },
            fault_kinds,
            fault_channels,
            fault_minutes: (lo, hi),
            start,
        })
    }
}

#[derive(clap::Args)]
pub(crate) struct CapacityArgs {
    #[arg(long)]
    pub(crate) devices: u64,
    /// Window size, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) window_secs: f64,
    /// Hop, seconds (default: the window size, tumbling windows).
    #[arg(long)]
    pub(crate) hop_secs: Option<f64>,
    /// Seconds between a device's samples.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) sample_secs: f64,
    /// Samples a device or gateway packs into one event.
    #[arg(long, default_value_t = 1)]
    pub(crate) samples_per_event: u64,
    /// Fraction of windows that are anomalous (default: the demo's).
    #[arg(long)]
    pub(crate) anomaly_rate: Option<f64>,
    /// Windows per second one instance scores (default: the README's measured figure).
    #[arg(long)]
    pub(crate) instance_windows_per_sec: Option<f64>,
    /// Share of an instance's throughput to plan for.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) utilization: f64,
    /// Days of anomalies the database keeps.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) retention_days: f64,
    /// Print the plan and every input as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

impl CapacityArgs {
    pub(crate) fn inputs(&self) -> sensor_anomaly::capacity::Inputs {
        let mut inputs = sensor_anomaly::capacity::Inputs::new(
            self.devices,
            self.window_secs,
            self.hop_secs.unwrap_or(self.window_secs),
        );
        inputs.sample_secs = self.sample_secs;
        inputs.samples_per_event = self.samples_per_event;
        inputs.utilization = self.utilization;
        inputs.retention_days = self.retention_days;
        if let Some(rate) = self.anomaly_rate {
            inputs.anomaly_rate = rate;
        }
        if let Some(throughput) = self.instance_windows_per_sec {
            inputs.instance_windows_per_sec = throughput;
        }
        inputs
    }
}
