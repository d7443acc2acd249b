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
    /// Records a batch's outcome with its observers: the challenger in shadow, drift, the live
    /// view, logs and metrics. The scored points move into the live view (nothing after this
    /// reads them).
    pub fn observe(&self, outcome: &mut BatchOutcome) {
        self.shadow(outcome);
        self.model
            .observe(&outcome.summary.model_version, &outcome.windows);
        self.watch_drift();
        self.live.record(std::mem::take(&mut outcome.points));
        crate::telemetry::events::BatchScored(outcome).emit(&self.metrics);
    }

    /// Scores the batch's windows with the challenger, if one is named, and records how it
    /// compares (never stored, never alerted). A batch a champion switch overtook is left out:
    /// its points are not the serving champion's.
    fn shadow(&self, outcome: &BatchOutcome) {
        let Some((challenger, _)) = self.model.challenger() else { return };
        let champion = self.model.get();
        if champion.info.model_version != outcome.summary.model_version || outcome.windows.is_empty() {
            return;
        }
        let version = &challenger.info.model_version;
        let now = domain::time::now_ms();
        // The follower only names a challenger whose features the champion's windows carry; a
        // champion switched since then may not (the batch is then counted as failed).
        let compared = crate::shadow::feature_map(&champion.info.feature_names, &challenger.info.feature_names)
            .map_err(|missing| scoring::ModelError::Contract(format!("the champion's windows carry no {}", missing.join(", "))))
            .and_then(|map| crate::shadow::compare(champion.info.threshold, &outcome.points, &outcome.windows, &challenger, &map));
        match compared {
            Ok(comparison) => {
                self.model.shadow.record(version, &comparison, now);
                self.emit(crate::telemetry::events::ShadowScored { challenger_version: version, comparison: &comparison });
            }
            Err(error) => {
                self.model.shadow.failed(version, now);
                self.emit(crate::telemetry::events::ShadowFailed { challenger_version: version, error: &error });
            }
        }
    }

    /// At most once a minute: has drift lasted long enough to recommend retraining?
    fn watch_drift(&self) {
        let now = domain::time::now_ms();
        if !self.model.retrain.due(now) {
            return;
        }
        let Some(report) = self.model.drift() else { return };
        if let Some(recommendation) = self.model.retrain.observe(&report, now) {
            self.emit(crate::telemetry::events::RetrainingRecommended(&recommendation));
        }
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
