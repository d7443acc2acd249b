//! What the fuzz targets check. Each `check_*` takes the fuzzer's bytes and panics when a
//! property fails; `fuzz/fuzz_targets/*.rs` are one-line wrappers, and `tests/corpus.rs` replays
//! the committed corpus (`fuzz/corpus/<target>/`) through the same functions on stable Rust, so
//! what the fuzzer found stays found.
//!
//! Properties, not only "no panic": output bounded by input, every refused record one bounded
//! dead letter or counted, every alert and dead letter valid against its JSON Schema, a retried
//! batch storing nothing twice, canonical forms that are fixed points, and windows the CLI
//! writes that the handler's decoder reads back unchanged.

mod body;
mod connection_string;
mod invocation;
pub mod seeds;
mod timestamp;
mod windowing;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

pub use body::{check_event_body, check_window_record};
pub use connection_string::check_connection_string;
pub use invocation::check_invocation;
pub use timestamp::check_timestamp;
pub use windowing::check_windowing;

/// The fuzz targets, by the name `cargo fuzz run` takes, with their checks.
pub const TARGETS: [(&str, fn(&[u8])); 6] = [
    ("event_body", check_event_body),
    ("invocation", check_invocation),
    ("timestamp", check_timestamp),
    ("connection_string", check_connection_string),
    ("windowing", check_windowing),
    ("window_record", check_window_record),
];

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// The model's feature names for the simulator's channels (what `models/default.onnx` reads).
pub fn feature_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        sensor_anomaly::schema::CHANNELS
            .iter()
            .flat_map(|c| {
                sensor_anomaly::schema::STATS
                    .iter()
                    .map(move |s| format!("{c}_{s}"))
            })
            .collect()
    })
}

fn validator(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_path(file)).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// Panics with every violation when `message` does not match the wire format's schema.
fn assert_schema(kind: Schema, message: &Value) {
    static ALERT: OnceLock<jsonschema::Validator> = OnceLock::new();
    static DEAD_LETTER: OnceLock<jsonschema::Validator> = OnceLock::new();
    static INCIDENT: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = match kind {
        Schema::Alert => ALERT.get_or_init(|| validator("schemas/alert.v1.schema.json")),
        Schema::Incident => INCIDENT.get_or_init(|| validator("schemas/incident.v1.schema.json")),
        Schema::DeadLetter => {
            DEAD_LETTER.get_or_init(|| validator("schemas/dead-letter.v2.schema.json"))
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(message)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{kind:?} off its schema: {errors:?}\n{message}");
}

#[derive(Debug, Clone, Copy)]
enum Schema {
    Alert,
    Incident,
    DeadLetter,
}
