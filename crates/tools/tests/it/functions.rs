//! The Functions app definition matches what the handler serves: every `function.json` has a
//! route, the binding names match the pipeline's, and `host.json` starts this binary.

use crate::helpers::{repo_path, spawn_app};
use service::configuration::Settings;
use ingress::host::{ALERTS_OUTPUT, DEAD_LETTER_OUTPUT, INCIDENTS_OUTPUT};
use serde_json::{json, Value};

fn read_json(relative: &str) -> Value {
    let text =
        std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn functions() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(repo_path("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .map(|name| {
            let json = read_json(&format!("functions/{name}/function.json"));
            (name, json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The executable `scripts/package.sh` ships and `host.json` starts.
pub const HANDLER_BINARY: &str = "sensor-anomaly-handler";

#[test]
fn host_json_starts_this_handler() {
    let host = read_json("host.json");
    assert_eq!(host["version"], "2.0");
    assert_eq!(host["extensionBundle"]["version"], "[4.28.0, 5.0.0)");
    let description = &host["customHandler"]["description"];
    // The service's own binary (crates/service), which links no tool.
    assert_eq!(description["defaultExecutablePath"], HANDLER_BINARY);
    assert_eq!(description["arguments"], json!([]));
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    let max_events = host["extensions"]["eventHubs"]["maxEventBatchSize"]
        .as_u64()
        .unwrap();
    assert!(max_events >= 1);
    // What the host can send must fit the handler's invocation limit: maxEventBatchSize events
    // of the largest event Stream Analytics writes (1 MiB, Event Hubs Standard), doubly encoded
    // (factor measured below), plus per-event metadata. A batch over the limit is not lost (it
    // is dead-lettered with its coordinates), but it is not scored either.
    let largest = max_events as f64 * (f64::from(1u32 << 20) * ENCODING_FACTOR + 2048.0);
    let limit = service::configuration::Settings::default().max_invocation_bytes as f64;
    assert!(largest <= limit, "{largest} > {limit}");
    assert!(
        host["extensions"]["eventHubs"]["minEventBatchSize"].as_u64().unwrap() <= max_events
    );
    let example = read_json("local.settings.json.example");
    assert_eq!(example["Values"]["FUNCTIONS_WORKER_RUNTIME"], "custom");
}

/// How much the host's double JSON encoding of `dataType: string` bodies grows Stream
/// Analytics' window records (an upper bound of the measured figure).
const ENCODING_FACTOR: f64 = 1.3;

#[test]
fn the_hosts_double_encoding_grows_window_records_by_less_than_the_factor() {
    let bodies = crate::helpers::texts(&crate::helpers::healthy_windows(4, 1.0, 3));
    let raw: usize = bodies.iter().map(String::len).sum();
    for packed in [bodies.clone(), vec![bodies.join("\n")]] {
        let invocation = ingress::host::many_string_invocation(
            "events", &packed, "0", 1, "2026-01-01T00:00:00Z",
        );
        let encoded = invocation["Data"]["events"].to_string().len();
        let factor = encoded as f64 / raw as f64;
        assert!(factor > 1.1 && factor < ENCODING_FACTOR, "{factor}");
    }
}

#[test]
fn score_windows_bindings_match_the_pipeline() {
    let json = read_json("functions/ScoreWindows/function.json");
    let bindings = json["bindings"].as_array().unwrap();
    let trigger = bindings
        .iter()
        .find(|b| b["type"] == "eventHubTrigger")
        .unwrap();
    assert_eq!(
        trigger["name"],
        Settings::default().trigger_binding.as_str()
    );
    assert_eq!(trigger["cardinality"], "many");
    assert_eq!(trigger["dataType"], "string");
    let outputs: Vec<&str> = bindings
        .iter()
        .filter(|b| b["direction"] == "out")
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, vec![ALERTS_OUTPUT, INCIDENTS_OUTPUT, DEAD_LETTER_OUTPUT]);
    assert!(json["retry"]["maxRetryCount"].as_i64().unwrap() != 0);
}

#[test]
fn the_functions_are_exactly_the_routes_the_handler_serves() {
    use service::http::Route;
    let mut declared: Vec<(String, String)> = vec![("get".into(), "/".into())];
    for (name, json) in functions() {
        let trigger = &json["bindings"].as_array().unwrap()[0];
        if trigger["type"] == "eventHubTrigger" {
            declared.push(("post".into(), format!("/{name}")));
            continue;
        }
        for method in trigger["methods"].as_array().unwrap() {
            let route = trigger["route"].as_str().unwrap();
            declared.push((method.as_str().unwrap().into(), format!("/api/{route}")));
        }
    }
    declared.sort();
    let mut served: Vec<(String, String)> = Route::ALL
        .iter()
        .map(|r| (r.verb().as_str().to_string(), r.path().to_string()))
        .collect();
    served.sort();
    assert_eq!(declared, served, "functions/ and the router disagree");
}

#[tokio::test]
async fn every_function_has_a_route_in_the_handler() {
    let app = spawn_app().await;
    let all = functions();
    assert!(all.len() >= 8, "{all:?}");
    for (name, json) in all {
        let bindings = json["bindings"].as_array().unwrap();
        let trigger = bindings.iter().find(|b| b["direction"] == "in").unwrap();
        match trigger["type"].as_str().unwrap() {
            "eventHubTrigger" => {
                let body = json!({"Data": {trigger["name"].as_str().unwrap(): "[]"}, "Metadata": {"SequenceNumberArray": "[]"}});
                let response = app.post_json(&format!("/{name}"), &body).await;
                assert_eq!(response.status().as_u16(), 200, "{name}");
            }
            "httpTrigger" => {
                // Request forwarding needs exactly one httpTrigger in and one http out.
                assert_eq!(bindings.len(), 2, "{name}");
                assert!(
                    bindings
                        .iter()
                        .any(|b| b["type"] == "http" && b["direction"] == "out"),
                    "{name}"
                );
                let route = trigger["route"].as_str().unwrap();
                for method in trigger["methods"].as_array().unwrap() {
                    let url = format!("{}/api/{route}", app.base);
                    let request = match method.as_str().unwrap() {
                        "get" => app.client.get(url),
                        "post" => app
                            .client
                            .post(url)
                            .header("content-type", "application/json")
                            .body("{}"),
                        other => panic!("{name}: unexpected method {other}"),
                    };
                    let status = request.send().await.unwrap().status().as_u16();
                    assert!(
                        status != 404 && status != 405,
                        "{name}: {method} /api/{route} -> {status}"
                    );
                }
                let level = trigger["authLevel"].as_str().unwrap();
                let expected = match name.as_str() {
                    "Health" | "OpenApi" => "anonymous",
                    "Reload" => "admin",
                    _ => "function",
                };
                assert_eq!(level, expected, "{name}");
            }
            other => panic!("{name}: unexpected trigger {other}"),
        }
    }
}
