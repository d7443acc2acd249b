//! What every request shares.

use std::sync::Arc;
use std::time::Instant;

use crate::configuration::Settings;
use crate::pipeline::Pipeline;

pub struct AppState {
    pub settings: Settings,
    pub pipeline: Arc<Pipeline>,
    pub started: Instant,
}

impl AppState {
    pub fn new(settings: Settings, pipeline: Arc<Pipeline>) -> Self {
        AppState {
            settings,
            pipeline,
            started: Instant::now(),
        }
    }
}
