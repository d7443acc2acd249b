//! Real-time anomaly detection for industrial IoT sensor windows, as an Azure Functions custom
//! handler.
//!
//! Data flows one way, a module per stage:
//! [`ingress`] (the host's invocation, event bodies → window records) → [`scoring`] (ONNX model,
//! contributions, explanation) → [`pipeline`] (classify, persist, outputs) → [`sinks`] (the
//! anomaly store). [`domain`] holds the plain types every stage shares; [`http`] is the edge
//! that maps routes onto the pipeline; [`telemetry`] is logging and metrics; [`configuration`]
//! and [`startup`] assemble the service.
//!
//! [`tools`] are the offline tools (simulator, Stream Analytics windowing, evaluation, the demo)
//! that the CLI uses; the service modules never import them.

pub mod configuration;
pub mod domain;
pub mod http;
pub mod ingress;
pub mod pipeline;
pub mod scoring;
pub mod sinks;
pub mod startup;
pub mod telemetry;
pub mod tools;
