//! `sensor-anomaly-handler`: the executable `host.json` starts. Settings come from the
//! environment (the Functions app settings); there are no arguments to read (`serve` is
//! accepted, as `sensor-anomaly serve` runs the same handler).

use std::process::ExitCode;

/// mimalloc: per-thread heaps instead of glibc's arenas, which contended under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None | Some("serve"), None) => {}
        (Some("--version" | "-V"), None) => {
            println!("sensor-anomaly-handler {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!(
                "usage: sensor-anomaly-handler [serve]\n\
                 The Azure Functions custom handler; settings come from the environment (README: Configuration)."
            );
            return ExitCode::from(2);
        }
    }
    match sensor_anomaly_service::serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
