//! ② Scoring: ONNX Runtime loading ([`runtime`]), the model contract and batch inference
//! ([`model`]), explanations ([`explain`]) and the model in service, swappable at run time
//! ([`serving`]).
//!
//! The model file is the whole contract (see `models/README.md`): input `features` `[N, F]` of
//! raw values, output `contributions` `[N, F]` whose row sum is the anomaly score, and metadata
//! naming the features, their channels, the threshold and the training statistics. Any detector
//! exported that way is served unchanged.

pub mod drift;
pub mod explain;
pub mod model;
pub mod runtime;
pub mod serving;

pub use model::{Model, ModelError, ModelInfo, Verdicts};
pub use serving::ServingModel;
