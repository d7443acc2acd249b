//! `sensor-anomaly`: the CLI a user runs (simulate, window, score, demo, the Event Hubs producer
//! and tail, replay, db migrate, and `serve`, the same handler the Functions host starts as
//! `sensor-anomaly-handler`).

mod cli;

use clap::Parser;

/// The same allocator as `sensor-anomaly-handler` (`serve` and the demo run the handler here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::exit_code(cli::run(cli::Cli::parse()))
}
