//! Offline tools behind the CLI: a fleet [`simulate`]or, Stream Analytics [`windowing`],
//! offline scoring of files ([`score_file`]), detection quality ([`evaluation`]) and the
//! end-to-end [`demo`], and an Event Hubs producer and alert tail ([`eventhubs`]). They use the service modules; the service never uses them.

pub mod demo;
pub mod evaluation;
pub mod eventhubs;
pub mod schema;
pub mod score_file;
pub mod simulate;
pub mod windowing;
