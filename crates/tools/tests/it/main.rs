//! The integration tests, one binary: each module drives the real application (real ONNX
//! Runtime, real SQLite, real HTTP) through the helpers that spawn it.

mod api;
mod app_insights;
mod azure_sql;
mod cli;
mod dashboard;
mod demo;
mod drift;
mod eventhubs;
mod functions;
mod incidents;
mod helpers;
mod infra;

mod local_loop;
mod model_store;
mod monitoring;
mod reliability;
mod score_windows;
mod scoring;
mod shutdown;
mod store_contract;
mod stream_analytics;
mod wire_formats;
