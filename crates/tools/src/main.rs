//! `sensor-anomaly`: the Azure Functions custom handler and its tools.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use service::configuration::Settings;
use domain::time as timefmt;
use scoring::Model;
use sinks::azure_sql::{self, migrate::Outcome, settings::SqlSettings};
use service::startup;
use service::telemetry::{self, AppInsightsSettings};
use sensor_anomaly::demo::{self, DemoOptions};
use sensor_anomaly::simulate::{self, FaultKind, SimConfig};
use sensor_anomaly::windowing::{self, Channels, WindowSpec};
use sensor_anomaly::replay::{self, ReplayFilter, ReplayStats};
use sensor_anomaly::{eventhubs, schema, score_file};

#[derive(Parser)]
#[command(
    name = "sensor-anomaly",
    version,
    about = "Real-time anomaly detection for industrial IoT sensor windows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the custom handler the Functions host starts (settings from the environment).
    Serve,
    /// Generate labelled telemetry for a simulated fleet, as JSON lines, or publish it to an
    /// event hub (--event-hub).
    Simulate {
        #[command(flatten)]
        sim: SimArgs,
        /// Output file (default: standard output).
        #[arg(long, conflicts_with = "event_hub")]
        out: Option<PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
        /// With --event-hub: publish Stream-Analytics-shaped window records (for the windows
        /// hub; there is no local Stream Analytics) instead of raw samples (the telemetry hub).
        #[arg(long, requires = "event_hub")]
        windows: bool,
        /// Tumbling window size for --windows, in seconds (the default model is trained on 60).
        #[arg(long, default_value_t = 60, requires = "windows")]
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
    /// Azure SQL schema (settings from the environment, as for `serve`).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Run the whole pipeline locally and report detection quality and speed.
    Demo {
        #[command(flatten)]
        sim: SimArgs,
        /// Tumbling window size in seconds (the default model is trained on 60).
        #[arg(long, default_value_t = 60)]
        window_secs: i64,
        /// Events per ScoreWindows invocation (host.json's maxEventBatchSize).
        #[arg(long, default_value_t = 48)]
        batch_size: usize,
        /// Invocations in flight at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// The ONNX model to serve.
        #[arg(long, default_value = "models/default.onnx")]
        model: PathBuf,
        /// The embedded store the demo writes (recreated on every run).
        #[arg(long, default_value = "data/demo-anomalies.sqlite")]
        db: PathBuf,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Keep the handler running afterwards on --port, with the dashboard at
        /// /api/dashboard, until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// The port for --serve.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the `sql/` migrations not yet applied to the database of ANOMALY_SQL_CONNECTION_STRING.
    Migrate,
}

/// Which event hub, and how to authenticate.
#[derive(clap::Args, Clone)]
struct HubArgs {
    /// The event hub: telemetry, windows, alerts or windows-deadletter as deployed.
    #[arg(long = "event-hub")]
    event_hub: Option<String>,
    /// The fully qualified namespace (NAME.servicebus.windows.net), reached with Entra ID: your
    /// Azure CLI login, or --managed-identity. Without it, --connection-setting is used.
    #[arg(long, requires = "event_hub")]
    namespace: Option<String>,
    /// With --namespace: the managed identity instead of the Azure CLI login.
    #[arg(long, requires = "namespace")]
    managed_identity: bool,
    /// The environment variable holding a connection string, when there is no --namespace:
    /// local.settings.json.example has the emulator's.
    #[arg(long, default_value = "EventHubConnection")]
    connection_setting: String,
}

impl HubArgs {
    fn hub(&self) -> Result<&str> {
        self.event_hub
            .as_deref()
            .context("--event-hub is required (e.g. --event-hub alerts)")
    }

    fn connection(&self) -> Result<eventhubs::Connection, eventhubs::EventHubError> {
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
struct CsvArgs {
    /// Input format; by default `csv` for a `.csv` file, JSON lines otherwise.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// CSV field separator (default: guessed from the header among `;`, tab and `,`).
    #[arg(long)]
    delimiter: Option<char>,
    /// CSV timestamp column (default: the first of timestamp, datetime, time).
    #[arg(long)]
    timestamp_column: Option<String>,
    /// CSV device column; when the file has none, every row belongs to `--device`.
    #[arg(long, default_value = "device_id")]
    device_column: String,
    /// Device id for a CSV without a device column (default: the file name without extension).
    #[arg(long)]
    device: Option<String>,
    /// CSV 0/1 anomaly label column, used when present.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// CSV columns that are neither channels nor labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ignore_columns: Vec<String>,
}

impl CsvArgs {
    fn is_csv(&self, input: &Path) -> bool {
        match self.format.as_deref() {
            Some(format) => format == "csv",
            None => input
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        }
    }

    fn layout(&self, input: &Path) -> Result<windowing::CsvLayout> {
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
struct SimArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Simulated hours per device.
    #[arg(long, default_value_t = 6.0)]
    hours: f64,
    /// Seconds between samples of one device.
    #[arg(long, default_value_t = 1.0)]
    interval_secs: f64,
    /// Random seed: the same seed gives the same fleet and faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Expected faults per device per hour.
    #[arg(long, default_value_t = 0.4)]
    fault_rate: f64,
    /// Fault kinds to inject (comma-separated): spike, dip, drift, flatline, noise_burst.
    #[arg(long, value_delimiter = ',')]
    fault_kinds: Vec<String>,
    /// Channels faults may hit (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    fault_channels: Vec<String>,
    /// Fault duration range in minutes, as MIN,MAX.
    #[arg(long, value_delimiter = ',', default_values_t = [8.0, 20.0])]
    fault_minutes: Vec<f64>,
    /// Simulation start (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    start: String,
    /// No faults at all (training data).
    #[arg(long)]
    healthy: bool,
}

impl SimArgs {
    fn config(&self) -> Result<SimConfig> {
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

fn writer(out: &Option<PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match out {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            Box::new(BufWriter::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

fn read_input(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(text)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(error)
            if error
                .chain()
                .filter_map(|e| {
                    e.downcast_ref::<std::io::Error>()
                        .map(std::io::Error::kind)
                        .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind())
                })
                .any(|kind| kind == std::io::ErrorKind::BrokenPipe) =>
        {
            std::process::ExitCode::SUCCESS
        }
        // Event Hubs errors say what to check in one line; the SDK's own chain repeats itself.
        Err(error) if error.is::<eventhubs::EventHubError>() => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            // Bad input data (as opposed to a failure of ours) gets its own code, for scripts.
            if error.chain().any(|e| e.is::<windowing::WindowError>()) {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve => service::serve(),
        Command::Simulate {
            sim,
            hub,
            windows,
            window_secs,
            rate,
            realtime,
            max_batch_bytes,
            ..
        } if hub.event_hub.is_some() => {
            let config = sim.config()?;
            let shape = if windows {
                Shape::Windows(WindowSpec::tumbling(window_secs)?)
            } else {
                Shape::Samples
            };
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                bail!("--rate must be a positive number of events per second");
            }
            let pacing = eventhubs::Pacing { rate, realtime };
            publish_simulation(&hub, config, shape, pacing, max_batch_bytes)
        }
        Command::Alerts {
            hub,
            consumer_group,
            from_start,
            count,
            idle_secs,
            raw,
        } => {
            let name = hub.hub()?.to_string();
            let conn = hub.connection()?;
            telemetry::init("off", None)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let from = if from_start {
                eventhubs::TailFrom::Earliest
            } else {
                eventhubs::TailFrom::Latest
            };
            let limits = eventhubs::TailLimits {
                count,
                idle: idle_secs.map(std::time::Duration::from_secs),
            };
            eprintln!(
                "reading {name} on {} through {consumer_group} ({}); Ctrl-C to stop",
                conn.namespace(),
                if from_start {
                    "from the start"
                } else {
                    "new events only"
                }
            );
            let read = runtime.block_on(eventhubs::tail(
                &conn,
                &name,
                &consumer_group,
                from,
                limits,
                |event| {
                    if raw {
                        println!("{}", String::from_utf8_lossy(&event.body));
                    } else {
                        println!("{}", eventhubs::describe(&event));
                    }
                },
            ))?;
            eprintln!("{read} event(s) read");
            Ok(())
        }
        Command::Replay {
            input,
            from_event_hub,
            consumer_group,
            idle_secs,
            hub,
            url,
            kinds,
        } => replay_dead_letters(ReplayArgs {
            input,
            from_event_hub,
            consumer_group,
            idle: std::time::Duration::from_secs(idle_secs),
            hub,
            url,
            kinds,
        }),
        Command::Simulate { sim, out, .. } => {
            let config = sim.config()?;
            let mut w = writer(&out)?;
            let mut result = Ok(());
            simulate::simulate(&config, |sample| {
                if result.is_ok() {
                    result = serde_json::to_writer(&mut w, &sample)
                        .map_err(anyhow::Error::from)
                        .and_then(|_| Ok(w.write_all(b"\n")?));
                }
            });
            result?;
            w.flush()?;
            Ok(())
        }
        Command::Window {
            input,
            out,
            size_secs,
            hop_secs,
            channels,
            csv,
        } => {
            let spec = WindowSpec::hopping(size_secs, hop_secs.unwrap_or(size_secs))?;
            let channels = match channels.as_slice() {
                [] => Channels::Named(schema::CHANNELS.iter().map(|c| c.to_string()).collect()),
                [auto] if auto == "auto" => Channels::Auto,
                names => Channels::Named(names.iter().map(|c| c.trim().to_string()).collect()),
            };
            let text = read_input(&input)?;
            let windows = if csv.is_csv(&input) {
                windowing::window_csv(&text, spec, &channels, &csv.layout(&input)?)
            } else {
                windowing::window_lines(&text, spec, &channels)
            }
            .with_context(|| format!("{}", input.display()))?;
            for warning in windows.order.warnings() {
                eprintln!("warning: {}: {warning}", input.display());
            }
            let mut w = writer(&out)?;
            for record in windows.records {
                serde_json::to_writer(&mut w, &record)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            Ok(())
        }
        Command::Db {
            command: DbCommand::Migrate,
        } => {
            telemetry::init("off", None)?;
            let Some(sql) = SqlSettings::from_lookup(|name| std::env::var(name).ok())? else {
                bail!("ANOMALY_SQL_CONNECTION_STRING is not set: migrations are for Azure SQL (the embedded SQLite store creates its own schema)");
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(azure_sql::migrate_database(&sql))?;
            for (migration, outcome) in report {
                let what = match outcome {
                    Outcome::Applied => "applied",
                    Outcome::AlreadyApplied => "already applied",
                };
                println!("{}: {what}", migration.name);
            }
            println!("{} is up to date", sql.target());
            Ok(())
        }
        Command::Score { model, input, out } => {
            let model = Model::load_file(&model)?;
            let reader: Box<dyn BufRead> = if input == Path::new("-") {
                Box::new(BufReader::new(std::io::stdin().lock()))
            } else {
                Box::new(BufReader::new(
                    File::open(&input)
                        .with_context(|| format!("cannot read {}", input.display()))?,
                ))
            };
            let mut w = writer(&out)?;
            let summary = score_file::score_lines(&model, reader, &mut w, |line, reason| {
                eprintln!("line {line}: refused: {reason}")
            })?;
            w.flush()?;
            eprintln!(
                "scored {} windows with model {} ({} refused)",
                summary.scored, model.info.model_version, summary.refused
            );
            Ok(())
        }
        Command::Demo {
            sim,
            window_secs,
            batch_size,
            concurrency,
            model,
            db,
            json,
            serve,
            port,
        } => {
            // With APPLICATIONINSIGHTS_CONNECTION_STRING set, the demo exports as `serve` does
            // (how the exporter's cost is measured: scripts/bench-telemetry.sh).
            let app_insights = AppInsightsSettings::from_lookup(|n| std::env::var(n).ok())?;
            let telemetry =
                telemetry::init(if json { "off" } else { "warn" }, app_insights.as_ref())?;
            let options = DemoOptions {
                sim: sim.config()?,
                window_secs,
                batch_size,
                concurrency,
                model_path: model,
                db_path: db,
                progress: !json,
                serve_port: serve.then_some(port),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let result = runtime.block_on(async {
                let (report, serving) = demo::run_and_serve(options, &telemetry).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", demo::render(&report));
                }
                if let Some(serving) = serving {
                    println!(
                        "\nserving the demo's data until Ctrl-C:\n  dashboard  http://127.0.0.1:{}/api/dashboard",
                        serving.port
                    );
                    std::io::stdout().flush()?;
                    serving.until(startup::shutdown_signal()).await?;
                }
                anyhow::Ok(())
            });
            drop(runtime);
            telemetry.shutdown();
            result
        }
    }
}

/// What `simulate --event-hub` publishes.
enum Shape {
    /// Raw samples, as devices send them to the telemetry hub.
    Samples,
    /// Window records, as Stream Analytics writes them to the windows hub.
    Windows(WindowSpec),
}

/// Simulates on a blocking thread and publishes as it goes (samples), or after windowing.
struct ReplayArgs {
    input: Option<PathBuf>,
    from_event_hub: Option<String>,
    consumer_group: String,
    idle: std::time::Duration,
    hub: HubArgs,
    url: Option<String>,
    kinds: Vec<String>,
}

fn replay_dead_letters(args: ReplayArgs) -> Result<()> {
    let filter = if args.kinds.is_empty() {
        ReplayFilter::default()
    } else {
        ReplayFilter::named(&args.kinds).map_err(anyhow::Error::msg)?
    };
    telemetry::init("off", None)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut stats = ReplayStats::default();
    let mut windows: Vec<(String, String)> = Vec::new();
    // Dead letters are a few KB each: the windows of even a long outage fit in memory.
    match (&args.input, &args.from_event_hub) {
        (Some(input), _) => {
            let text = read_input(input)?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                windows.extend(stats.take(line.as_bytes(), &filter));
            }
        }
        (None, Some(source)) => {
            let conn = args.hub.connection()?;
            eprintln!(
                "reading dead letters from {source} on {} through {} (from the oldest retained)",
                conn.namespace(),
                args.consumer_group
            );
            runtime.block_on(eventhubs::tail(
                &conn,
                source,
                &args.consumer_group,
                eventhubs::TailFrom::Earliest,
                eventhubs::TailLimits {
                    count: None,
                    idle: Some(args.idle),
                },
                |event| windows.extend(stats.take(&event.body, &filter)),
            ))?;
        }
        (None, None) => bail!("--input or --from-event-hub is required"),
    }
    eprintln!("{stats}");
    if windows.is_empty() {
        println!("nothing to replay");
        return Ok(());
    }
    if let Some(url) = &args.url {
        let bodies: Vec<String> = windows.into_iter().map(|(_, body)| body).collect();
        let binding = Settings::from_env()
            .map(|s| s.trigger_binding)
            .unwrap_or_else(|_| "events".into());
        let totals = runtime.block_on(replay::to_handler(url, &bodies, &binding))?;
        println!(
            "replayed {} windows to {url} in {} invocations: {} alerts, {} dead letters",
            bodies.len(),
            totals.invocations,
            totals.alerts,
            totals.dead_letters
        );
        return Ok(());
    }
    let name = args.hub.hub()?.to_string();
    let conn = args.hub.connection()?;
    runtime.block_on(async {
        let (producer, _) =
            eventhubs::open_producer(&conn, &name, eventhubs::retry_options()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<eventhubs::OutgoingEvent>(windows.len().max(1));
        for (device_id, body) in windows {
            let _ = tx
                .send(eventhubs::OutgoingEvent {
                    partition_key: device_id,
                    body: body.into_bytes(),
                    at_ms: None,
                })
                .await;
        }
        drop(tx);
        let stats = eventhubs::publish(
            &conn,
            &producer,
            &name,
            rx,
            eventhubs::Pacing::default(),
            None,
            |_| {},
        )
        .await?;
        let _ = producer.close().await;
        println!("replayed {stats} to {name}");
        anyhow::Ok(())
    })
}

fn publish_simulation(
    hub: &HubArgs,
    config: SimConfig,
    shape: Shape,
    pacing: eventhubs::Pacing,
    max_batch_bytes: Option<u64>,
) -> Result<()> {
    let name = hub.hub()?.to_string();
    let conn = hub.connection()?;
    telemetry::init("off", None)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (producer, partitions) =
            eventhubs::open_producer(&conn, &name, eventhubs::retry_options()).await?;
        eprintln!(
            "publishing {} to {name} on {} ({} partitions)",
            match shape {
                Shape::Samples => "samples",
                Shape::Windows(_) => "window records",
            },
            conn.namespace(),
            partitions.len()
        );
        let (tx, rx) =
            tokio::sync::mpsc::channel::<eventhubs::OutgoingEvent>(4 * eventhubs::CHUNK_EVENTS);
        let generate = tokio::task::spawn_blocking(move || generate(config, shape, tx));
        let mut last = std::time::Instant::now();
        let published = eventhubs::publish(
            &conn,
            &producer,
            &name,
            rx,
            pacing,
            max_batch_bytes,
            |stats| {
                if last.elapsed() >= std::time::Duration::from_secs(1) {
                    last = std::time::Instant::now();
                    eprintln!("  sent {stats}");
                }
            },
        )
        .await;
        let generated = generate.await.context("the simulation stopped")?;
        let stats = published?;
        generated?;
        let _ = producer.close().await;
        println!("published {stats} to {name}");
        anyhow::Ok(())
    })
}

/// Produces the events in time order; stops early if the publisher has gone (it failed).
fn generate(
    config: SimConfig,
    shape: Shape,
    tx: tokio::sync::mpsc::Sender<eventhubs::OutgoingEvent>,
) -> Result<()> {
    let at_ms =
        |ts: &str| timefmt::parse(ts).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    match shape {
        Shape::Samples => {
            let mut open = true;
            let mut failed = None;
            simulate::simulate(&config, |sample| {
                if !open {
                    return;
                }
                match serde_json::to_vec(&sample) {
                    Ok(body) => {
                        let event = eventhubs::OutgoingEvent {
                            at_ms: at_ms(&sample.timestamp),
                            partition_key: sample.device_id,
                            body,
                        };
                        open = tx.blocking_send(event).is_ok();
                    }
                    Err(e) => {
                        failed = Some(e);
                        open = false;
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Shape::Windows(spec) => {
            let mut windower = windowing::Windower::new(spec);
            let mut bad = None;
            simulate::simulate(&config, |sample| {
                if let Err(e) = windower.push(&sample, 0) {
                    bad.get_or_insert(e);
                }
            });
            if let Some(e) = bad {
                bail!("the simulator produced a sample the windower refused: {e}");
            }
            for record in windower.finish(false) {
                let device = record["device_id"].as_str().unwrap_or_default().to_string();
                let end = record["window_end"].as_str().and_then(at_ms);
                let event = eventhubs::OutgoingEvent {
                    partition_key: device,
                    body: serde_json::to_vec(&record)?,
                    at_ms: end,
                };
                if tx.blocking_send(event).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}
