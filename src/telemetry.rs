//! Logging. The Functions host captures the handler's stdout/stderr into its own logs, so plain
//! lines on stderr are enough locally; `RUST_LOG` filters them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // A second init (tests, the demo) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal; the host's log capture would keep them verbatim.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
