//! The CLI: its commands ([`args`]), one dispatcher, and the commands grouped by what they
//! touch: files ([`files`]), Event Hubs ([`hubs`]), the database and the demo ([`ops`]).

mod args;
mod files;
mod hubs;
mod io;
mod models;
mod ops;

use std::process::ExitCode;

use anyhow::{bail, Result};

pub(crate) use args::Cli;
use args::{Command, DbCommand};
use sensor_anomaly::{eventhubs, windowing};
use sensor_anomaly::windowing::WindowSpec;

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<()> {
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
                hubs::Shape::Windows(WindowSpec::tumbling(window_secs)?)
            } else {
                hubs::Shape::Samples
            };
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                bail!("--rate must be a positive number of events per second");
            }
            let pacing = eventhubs::Pacing { rate, realtime };
            hubs::publish_simulation(&hub, config, shape, pacing, max_batch_bytes)
        }
        Command::Simulate {
            sim,
            url: Some(url),
            window_secs,
            ..
        } => hubs::simulation_to_handler(sim.config()?, WindowSpec::tumbling(window_secs)?, &url),
        Command::Simulate { sim, out, .. } => files::simulate_to_file(sim, out),
        Command::Alerts {
            hub,
            consumer_group,
            from_start,
            count,
            idle_secs,
            raw,
        } => hubs::alerts(hub, consumer_group, from_start, count, idle_secs, raw),
        Command::Replay {
            input,
            from_event_hub,
            consumer_group,
            idle_secs,
            hub,
            url,
            kinds,
        } => hubs::replay_dead_letters(hubs::ReplayArgs {
            input,
            from_event_hub,
            consumer_group,
            idle: std::time::Duration::from_secs(idle_secs),
            hub,
            url,
            kinds,
        }),
        Command::Window {
            input,
            out,
            size_secs,
            hop_secs,
            channels,
            csv,
        } => files::window(input, out, size_secs, hop_secs, channels, csv),
        Command::Score { model, input, out } => files::score(model, input, out),
        Command::Incidents { input, out } => files::incidents(input, out),
        Command::BenchModel {
            model,
            windows,
            batches,
            seconds,
        } => files::bench_model(model, windows, batches, seconds),
        Command::Db {
            command: DbCommand::Migrate,
        } => ops::db_migrate(),
        Command::Demo(args) => ops::demo(args),
        Command::Model { command } => models::run(command),
        Command::Capacity(args) => {
            let plan = sensor_anomaly::capacity::plan(args.inputs())?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                println!("{}", plan.text());
            }
            Ok(())
        }
    }
}

/// A runtime for a command that logs nothing (its output is its own lines): the subscriber is
/// installed with everything off, so library warnings do not interleave with them.
fn quiet_runtime() -> Result<tokio::runtime::Runtime> {
    service::telemetry::init("off", None)?;
    Ok(tokio::runtime::Runtime::new()?)
}

/// The process's exit code for `result`: 0, 1, or 2 for bad input data (not a failure of ours);
/// a closed pipe (`| head`) is the reader's choice, not a failure.
pub(crate) fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
            ExitCode::SUCCESS
        }
        // Event Hubs errors say what to check in one line; the SDK's own chain repeats itself.
        Err(error)
            if error.is::<eventhubs::EventHubError>()
                || error.is::<sensor_anomaly::model_ops::ModelOpError>() =>
        {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            // Bad input data (as opposed to a failure of ours) gets its own code, for scripts.
            if error.chain().any(|e| {
                e.is::<windowing::WindowError>() || e.is::<sensor_anomaly::capacity::CapacityError>()
            }) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
