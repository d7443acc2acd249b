//! A whole host invocation: request bytes → trigger events → the pipeline with the real model
//! and an in-memory store → the host's response, then the same batch again as a re-delivery.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use ingress::host::{self, BatchInfo, InvocationRequest};
use pipeline::{Pipeline, PipelineOptions};
use scoring::Model;
use sinks::memory::MemoryStore;

use crate::body::check_decoded;
use crate::{assert_schema, repo_path, Schema};

/// An alert's JSON stays under this: its names are bounded (128 UTF-16 units) and it lists one
/// contribution per channel of the model.
const MAX_ALERT_JSON: usize = 8 * 1024;
const MAX_LOG_LINES: usize = 64;
const MAX_LOG_LINE: usize = 4 * 1024;

struct Fixture {
    model: Model,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        model: Model::load_file(&repo_path("models/default.onnx"))
            .expect("models/default.onnx loads (run scripts/setup.sh for ONNX Runtime)"),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime"),
    })
}

pub fn check_invocation(data: &[u8]) {
    let options = PipelineOptions::default();
    let binding = options.trigger_binding.as_str();
    // The handler's parse (the encoded bodies decoded in one scan) reads what two serde_json
    // passes read: the same refusal, or the same events.
    let general = serde_json::from_slice::<InvocationRequest>(data);
    let Ok(mut request) = host::parse_request(data) else {
        assert!(general.is_err(), "parse_request refused a request serde_json reads");
        return; // the handler answers 400; nothing else happens
    };
    let general = general.expect("serde_json refused a request parse_request reads");
    assert_eq!(
        host::trigger_events(&request, binding),
        host::trigger_events(&general, binding),
        "the one-scan decode read the trigger differently"
    );
    let Ok(events) = host::take_trigger_events(&mut request, binding) else {
        return; // a protocol error: the handler answers 500 and stores nothing
    };
    let fixture = fixture();
    let store = Arc::new(MemoryStore::new());
    let pipeline = Pipeline::new(store, options);
    let run = || {
        fixture
            .runtime
            .block_on(pipeline.score_batch(
                &fixture.model,
                &events,
                BatchInfo::of(&events, &request),
            ))
            .expect("the in-memory store never fails")
    };
    let first = run();
    let decoded = pipeline::decode_events(
        &events,
        &fixture.model.info.feature_names,
        pipeline.decode_policy(),
    );
    check_decoded(&events, &decoded, pipeline.decode_policy());
    let summary = &first.summary;
    assert_eq!(summary.events, events.len());
    assert_eq!(
        summary.windows_scored as u64 + summary.refused(),
        decoded.records.len() as u64 + decoded.refused_total(),
        "scored + refused accounts for every part of every body"
    );
    assert!(first.alerts.len() <= summary.windows_scored);
    assert_eq!(summary.anomalies, first.alerts.len());
    let ids: BTreeSet<&str> = first.alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert!(summary.inserted <= ids.len(), "one row per distinct window at most");
    assert_eq!(summary.diverted, 0);

    let response = host::response(&first.alerts, &first.incidents.messages, &first.dead_letters, first.host_logs())
        .expect("outputs serialize");
    for alert in &first.alerts {
        let json = serde_json::to_value(alert).expect("an alert serializes");
        assert!(json.to_string().len() <= MAX_ALERT_JSON);
        assert_schema(Schema::Alert, &json);
    }
    for letter in &first.dead_letters {
        assert_schema(Schema::DeadLetter, &serde_json::to_value(letter).expect("serializes"));
    }
    // At most a resolution (by data gap) and an opening per window, each bounded like an alert.
    let incidents = &first.incidents.messages;
    assert!(incidents.len() <= 2 * summary.windows_scored, "{} incident messages", incidents.len());
    for message in incidents {
        let json = serde_json::to_value(message).expect("an incident message serializes");
        assert!(json.to_string().len() <= 2 * MAX_ALERT_JSON);
        assert_schema(Schema::Incident, &json);
    }
    assert!(response.logs.len() <= MAX_LOG_LINES, "{} log lines", response.logs.len());
    assert!(response.logs.iter().all(|l| l.len() <= MAX_LOG_LINE));
    let size = serde_json::to_string(&response).expect("serializes").len();
    let bound = first.alerts.len() * MAX_ALERT_JSON * 2
        + incidents.len() * MAX_ALERT_JSON * 4
        + first.dead_letters.len() * 16 * 1024 * 2
        + MAX_LOG_LINES * MAX_LOG_LINE
        + 1024;
    assert!(size <= bound, "a response of {size} bytes (bound {bound})");
    let outputs: Vec<&Value> = response.outputs.values().collect();
    assert_eq!(outputs.len(), 3, "alerts, incidents and dead letters, always all three");

    // The host re-delivers the batch: the same outputs, nothing stored twice.
    let again = run();
    assert_eq!(again.summary.inserted, 0, "a re-delivery stored again");
    assert_eq!(again.alerts.len(), first.alerts.len());
    assert_eq!(again.dead_letters.len(), first.dead_letters.len());
    let ids = |messages: &[domain::IncidentMessage]| -> BTreeSet<String> {
        messages.iter().map(|m| m.message_id.clone()).collect()
    };
    assert_eq!(ids(&again.incidents.messages), ids(incidents), "a re-delivery republishes, never more");
    assert_eq!(again.incidents.new_messages().count(), 0, "a re-delivery made a new transition");
}
