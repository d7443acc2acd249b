//! What every request shares.

use std::sync::Arc;
use std::time::Instant;

use super::api::dashboard::DashboardCache;
use super::api::health::StoreProbe;
use crate::configuration::Settings;
use crate::pipeline::Pipeline;

pub struct AppState {
    pub settings: Settings,
    pub pipeline: Arc<Pipeline>,
    pub started: Instant,
    pub dashboard: DashboardCache,
    /// The last store probe (`/api/health/store`), at most one per few seconds.
    pub store_probe: StoreProbe,
}

impl AppState {
    pub fn new(settings: Settings, pipeline: Arc<Pipeline>) -> Self {
        AppState {
            settings,
            pipeline,
            started: Instant::now(),
            dashboard: DashboardCache::default(),
            store_probe: StoreProbe::default(),
        }
    }
}
