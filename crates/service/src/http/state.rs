//! What every request shares: the parts of the service, held directly.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::probe::StoreProbe;
use crate::configuration::Settings;
use crate::live::LiveView;
use crate::model::InService;
use crate::telemetry::events::InternalEvent;
use crate::telemetry::Metrics;
use pipeline::{BatchOutcome, Pipeline};
use sinks::AnomalyStore;

pub struct AppState {
    pub settings: Settings,
    /// The model in service and the drift from its training data.
    pub model: Arc<InService>,
    /// Follows the model store's pointer, when one is configured.
    pub follower: Option<Arc<crate::model_follow::Follower>>,
    pub store: Arc<dyn AnomalyStore>,
    pub pipeline: Pipeline,
    pub metrics: Metrics,
    /// The recent scores of each device (the dashboard's drill-down).
    pub live: LiveView,
    pub started: Instant,
    pub dashboard: DashboardCache,
    /// The last store probe (`/api/health/store`), at most one per few seconds.
    pub store_probe: StoreProbe,
}

impl AppState {
    /// Records a batch's outcome with its observers: drift, the live view, logs and metrics.
    /// The scored points move into the live view (nothing after this reads them).
    pub fn observe(&self, outcome: &mut BatchOutcome) {
        self.model
            .observe(&outcome.summary.model_version, &outcome.windows);
        self.live.record(std::mem::take(&mut outcome.points));
        crate::telemetry::events::BatchScored(outcome).emit(&self.metrics);
    }

    /// Emits an event on this service's metrics.
    pub fn emit(&self, event: impl InternalEvent) {
        event.emit(&self.metrics);
    }
}

/// The dashboard's last computed data, shared by every viewer.
#[derive(Default)]
pub struct DashboardCache {
    pub last: Mutex<Option<(Instant, Arc<Value>)>>,
}
