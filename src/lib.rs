//! Real-time anomaly detection for industrial IoT sensor windows.
//!
//! Data flows one way, a module per stage:
//! [`host`] (decode the Functions host's invocation) → [`records`] (window features) →
//! [`scoring`] (ONNX model, contributions, explanation) → [`store`] / alerts → [`pipeline`] (respond).
//! [`http`] only maps routes onto those stages. [`simulate`] and [`windowing`] produce the same
//! records Azure Stream Analytics would, so the whole pipeline runs on one machine ([`demo`]).

pub mod configuration;
pub mod demo;
pub mod evaluation;
pub mod host;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod records;
pub mod runtime;
pub mod schema;
pub mod scoring;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod timefmt;
pub mod windowing;
