//! The HTTP functions under `/api/*`, one module per route (see `functions/*/function.json`).

pub mod dashboard;
pub mod drift;
pub mod health;
pub mod history;
pub mod incidents;
pub mod metrics;
pub mod model;
pub mod reload;
pub mod score;

use std::sync::Arc;

use axum::extract::State;

use super::state::AppState;

pub type AppStateRef = State<Arc<AppState>>;
