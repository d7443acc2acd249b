//! The store probe behind `/api/health/store`: at most one probe per [`PROBE_INTERVAL`], shared
//! by every caller.

use std::time::{Duration, Instant};

use sinks::AnomalyStore;

/// The store is probed at most this often; callers in between get the last result.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// A probe that takes longer than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The last store probe, shared by every caller.
#[derive(Default)]
pub struct StoreProbe {
    last: tokio::sync::Mutex<Option<Probed>>,
    probes: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Probed {
    pub at: Instant,
    pub error: Option<String>,
}

impl StoreProbe {
    /// The store's state, probing only when the last probe is older than [`PROBE_INTERVAL`].
    /// Concurrent callers wait for the one probe in flight instead of starting their own.
    pub async fn check(&self, store: &dyn AnomalyStore) -> Probed {
        let mut last = self.last.lock().await;
        if let Some(probed) = last.as_ref().filter(|p| p.at.elapsed() < PROBE_INTERVAL) {
            return probed.clone();
        }
        self.probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let error = match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )),
        };
        let probed = Probed {
            at: Instant::now(),
            error,
        };
        *last = Some(probed.clone());
        probed
    }

    /// The last result without probing (`None` before the first probe).
    pub fn cached(&self) -> Option<Probed> {
        self.last.try_lock().ok().and_then(|last| last.clone())
    }

    /// Probes sent to the store so far.
    pub fn probes(&self) -> u64 {
        self.probes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

