//! What every request shares.

use std::sync::Arc;
use std::time::Instant;

use super::api::dashboard::DashboardCache;
use crate::configuration::Settings;
use crate::pipeline::Pipeline;

pub struct AppState {
    pub settings: Settings,
    pub pipeline: Arc<Pipeline>,
    pub started: Instant,
    pub dashboard: DashboardCache,
}

impl AppState {
    pub fn new(settings: Settings, pipeline: Arc<Pipeline>) -> Self {
        AppState {
            settings,
            pipeline,
            started: Instant::now(),
            dashboard: DashboardCache::default(),
        }
    }
}
