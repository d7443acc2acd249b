//! What the integration tests share: host-shaped invocations ([`host`]), child processes that
//! cannot outlive their test and ports that are held rather than guessed ([`process`]), and an
//! in-process AMQP 1.0 peer that stands in for Event Hubs ([`eventhubs_peer`]).

pub mod eventhubs_peer;
pub mod host;
pub mod process;
