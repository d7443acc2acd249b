//! What the integration tests share: host-shaped invocations ([`host`]), child processes that
//! cannot outlive their test and ports that are held rather than guessed ([`process`]), and an
//! in-process AMQP 1.0 peer that stands in for Event Hubs ([`eventhubs_peer`]); scratch
//! folders removed when their test ends ([`Scratch`]); Azurite's blob service ([`azurite`]).

pub mod azurite;
pub mod eventhubs_peer;
pub mod host;
pub mod process;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

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

