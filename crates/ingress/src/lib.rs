//! ① What comes in: the Functions host's custom-handler protocol ([`host`]) and the event bodies
//! Stream Analytics writes, turned into validated window records ([`events`], with the common
//! case read without a `Value` tree by [`plain`]); the `function.json` the host reads, checked at
//! start-up ([`function_json`]).

pub mod events;
pub mod function_json;
pub mod host;
pub mod plain;
