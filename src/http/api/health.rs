//! `GET /api/health` (anonymous liveness) and `GET /api/health/store` (the store probe, behind
//! a function key).
//!
//! Liveness answers from memory: an anonymous caller must not be able to turn the health check
//! against the store (a flood of probes holding every pooled connection, or keeping a
//! serverless database awake), nor read store errors and file paths. The store probe runs at
//! most once per [`PROBE_INTERVAL`] whoever asks, and only key holders see its details.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;
use crate::sinks::AnomalyStore;

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
struct Probed {
    at: Instant,
    error: Option<String>,
}

impl StoreProbe {
    /// The store's state, probing only when the last probe is older than [`PROBE_INTERVAL`].
    /// Concurrent callers wait for the one probe in flight instead of starting their own.
    async fn check(&self, store: &dyn AnomalyStore) -> Probed {
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
    fn cached(&self) -> Option<Probed> {
        self.last.try_lock().ok().and_then(|last| last.clone())
    }

    /// Probes sent to the store so far.
    pub fn probes(&self) -> u64 {
        self.probes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `GET /api/health`: 200 while the handler runs, from memory. The store's state is the last
/// probe's (`null` before any), without its error text.
pub async fn health(State(state): AppStateRef) -> Response {
    let model = state.pipeline.model();
    let reachable = state.store_probe.cached().map(|p| p.error.is_none());
    Json(json!({
        "status": "ok",
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector},
        "store": {"kind": state.pipeline.store().kind(), "reachable": reachable},
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// `GET /api/health/store` (function key): 200 when the store would take a write now, 503
/// otherwise, with the reason and where the model came from.
pub async fn store(State(state): AppStateRef) -> Response {
    let model = state.pipeline.model();
    let store = state.pipeline.store();
    let probed = state.store_probe.check(store.as_ref()).await;
    let reachable = probed.error.is_none();
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector, "source": model.source},
        "store": {
            "kind": store.kind(),
            "target": store.target(),
            "reachable": reachable,
            "error": probed.error,
            "checked_seconds_ago": probed.at.elapsed().as_secs_f64(),
        },
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
