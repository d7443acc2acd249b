//! Offline tools behind the CLI: a fleet [`simulate`]or, Stream Analytics [`windowing`],
//! offline scoring of files ([`score_file`]), detection quality ([`evaluation`]) and the
//! end-to-end [`demo`], an Event Hubs producer and alert tail ([`eventhubs`]), and the [`replay`] of
//! dead-lettered windows; the operator's side of the model store ([`model_ops`]). They use the service modules; the service never uses them.

pub mod capacity;
pub mod demo;
pub mod evaluation;
pub mod eventhubs;
pub mod model_bench;
pub mod model_ops;
pub mod replay;
pub mod schema;
pub mod score_file;
pub mod simulate;
pub mod track_file;
pub mod windowing;
