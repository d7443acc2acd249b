//! The commands that talk to Event Hubs: `simulate --event-hub`, `alerts`, `replay`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::args::HubArgs;
use super::io::read_input;
use sensor_anomaly::eventhubs;
use sensor_anomaly::replay::{self, ReplayFilter, ReplayStats};
use sensor_anomaly::simulate::{self, SimConfig};
use sensor_anomaly::windowing::WindowSpec;
use service::configuration::Settings;

/// `alerts`: each event of a hub as one readable line (or its body, `--raw`).
pub(crate) fn alerts(
    hub: HubArgs,
    consumer_group: String,
    from_start: bool,
    count: Option<u64>,
    idle_secs: Option<u64>,
    raw: bool,
) -> Result<()> {
    let name = hub.hub()?.to_string();
    let conn = hub.connection()?;
    let runtime = super::quiet_runtime()?;
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

/// What `simulate --event-hub` publishes.
pub(crate) enum Shape {
    /// Raw samples, as devices send them to the telemetry hub.
    Samples,
    /// Window records, as Stream Analytics writes them to the windows hub.
    Windows(WindowSpec),
}

/// What `replay` reads and where it sends the windows.
pub(crate) struct ReplayArgs {
    pub(crate) input: Option<PathBuf>,
    pub(crate) from_event_hub: Option<String>,
    pub(crate) consumer_group: String,
    pub(crate) idle: std::time::Duration,
    pub(crate) hub: HubArgs,
    pub(crate) url: Option<String>,
    pub(crate) kinds: Vec<String>,
}

pub(crate) fn replay_dead_letters(args: ReplayArgs) -> Result<()> {
    let filter = if args.kinds.is_empty() {
        ReplayFilter::default()
    } else {
        ReplayFilter::named(&args.kinds).map_err(anyhow::Error::msg)?
    };
    let runtime = super::quiet_runtime()?;
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

/// Simulates on a blocking thread and publishes as it goes (samples), or after windowing.
pub(crate) fn publish_simulation(
    hub: &HubArgs,
    config: SimConfig,
    shape: Shape,
    pacing: eventhubs::Pacing,
    max_batch_bytes: Option<u64>,
) -> Result<()> {
    let name = hub.hub()?.to_string();
    let conn = hub.connection()?;
    super::quiet_runtime()?.block_on(async {
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
    let at_ms = sinks::unix_ms;
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
            let simulated = simulate::windows(&config, spec, false);
            if let Some(e) = simulated.first_refusal {
                bail!("the simulator produced a sample the windower refused: {e}");
            }
            for record in simulated.records {
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

/// `simulate --url`: the simulation's windows, as Stream Analytics would emit them, posted to a
/// running handler as host invocations.
pub(crate) fn simulation_to_handler(
    config: sensor_anomaly::simulate::SimConfig,
    spec: sensor_anomaly::windowing::WindowSpec,
    url: &str,
) -> Result<()> {
    let simulated = sensor_anomaly::simulate::windows(&config, spec, false);
    let bodies: Vec<String> = simulated
        .records
        .into_iter()
        .map(|w| serde_json::Value::Object(w).to_string())
        .collect();
    let binding = Settings::from_env()
        .map(|s| s.trigger_binding)
        .unwrap_or_else(|_| "events".into());
    let runtime = super::quiet_runtime()?;
    let totals = runtime.block_on(replay::to_handler(url, &bodies, &binding))?;
    println!(
        "sent {} windows to {url} in {} invocations: {} alerts, {} dead letters",
        bodies.len(),
        totals.invocations,
        totals.alerts,
        totals.dead_letters
    );
    Ok(())
}
