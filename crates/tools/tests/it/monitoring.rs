//! The workbook and the alert queries read only names the handler emits: a dashboard that
//! silently shows nothing is caught here. Metric names and dimensions are held to
//! `INSTRUMENTS` (which `app_insights.rs` holds to the exported envelopes), request
//! properties to the invocation span's fields.

use std::collections::BTreeSet;

use service::http::invocation::INVOCATION_PROPERTIES;
use service::telemetry::events::{ANOMALOUS_DEVICES_TRACE, INCIDENT_TRACE};

/// The traces the handler emits that queries read, and their properties.
const TRACES: [(&str, &[&str]); 2] = [ANOMALOUS_DEVICES_TRACE, INCIDENT_TRACE];
use service::telemetry::metrics::INSTRUMENTS;

/// Every customMetrics name the handler emits, and its dimensions.
fn otel_metrics() -> Vec<(String, &'static [&'static str])> {
    INSTRUMENTS.iter().map(|i| (i.otel_name(), i.labels)).collect()
}
use serde_json::Value;

use crate::helpers::repo_path;

/// The span names exported as dependencies (asserted in `app_insights.rs`).
pub const DEPENDENCY_NAMES: [&str; 3] = ["store.insert", "onnxruntime.run", "outputs.build"];
pub const ALERT_QUERIES: [&str; 5] = [
    "anomaly-rate.kql",
    "invocation-latency.kql",
    "drift.kql",
    "failed-invocations.kql",
    "retraining-recommended.kql",
];

fn queries() -> Vec<(String, String)> {
    let workbook: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("infra/monitoring/workbook.json")).unwrap(),
    )
    .expect("workbook is JSON");
    let mut out: Vec<(String, String)> = workbook["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == 3)
        .map(|i| {
            (
                format!("workbook: {}", i["content"]["title"].as_str().unwrap()),
                i["content"]["query"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for file in ALERT_QUERIES {
        let text = std::fs::read_to_string(repo_path(&format!("infra/monitoring/alerts/{file}")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        out.push((file.to_string(), text));
    }
    out
}

/// Every `"..."` that follows `marker` in `text`.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            let rest = rest.trim_start().strip_prefix('"')?;
            rest.split('"').next()
        })
        .collect()
}

#[test]
fn workbook_and_alert_queries_use_only_emitted_names() {
    let queries = queries();
    assert!(queries.len() >= 12, "{}", queries.len());
    let mut problems = Vec::new();
    let mut metrics_used = BTreeSet::new();
    for (where_, query) in &queries {
        let mut names = quoted_after(query, "name ==");
        let mut dims: BTreeSet<&str> = BTreeSet::new();
        for message in quoted_after(query, "message ==") {
            if let Some((_, properties)) = TRACES.iter().find(|(m, _)| *m == message) {
                dims.extend(properties.iter());
                names.push(message);
            } else {
                problems.push(format!("{where_}: trace `{message}` is not emitted"));
            }
        }
        let on_requests = query.contains("requests");
        if on_requests {
            dims.extend(INVOCATION_PROPERTIES);
        }
        for name in &names {
            if let Some((_, metric_dims)) = otel_metrics().into_iter().find(|(n, _)| n == name) {
                metrics_used.insert(name.to_string());
                dims.extend(metric_dims.iter());
            } else if !(*name == "ScoreWindows"
                || TRACES.iter().any(|(m, _)| m == name)
                || DEPENDENCY_NAMES.contains(name))
            {
                problems.push(format!("{where_}: `{name}` is not emitted"));
            }
        }
        for dim in quoted_after(query, "customDimensions[") {
            if !dims.contains(dim) {
                problems.push(format!(
                    "{where_}: dimension `{dim}` is not emitted on what it reads"
                ));
            }
        }
        if names.is_empty() {
            problems.push(format!("{where_}: reads no named telemetry"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The workbook shows every metric the handler emits.
    let emitted: BTreeSet<String> = otel_metrics().into_iter().map(|(n, _)| n).collect();
    let missing: Vec<_> = emitted.difference(&metrics_used).collect();
    assert!(
        missing.is_empty(),
        "not on the workbook or alerts: {missing:?}"
    );
}

#[test]
fn the_checker_catches_a_misspelt_name() {
    let query = r#"customMetrics | where name == "sensor_anomaly.window_scored""#;
    let names = quoted_after(query, "name ==");
    assert_eq!(names, ["sensor_anomaly.window_scored"]);
    assert!(!otel_metrics().iter().any(|(n, _)| n == names[0]));
}
