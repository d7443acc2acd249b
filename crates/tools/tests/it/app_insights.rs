//! Application Insights export, end to end: the real binary, its real exporter and real HTTP to
//! a local ingestion endpoint (an axum server here) that decodes the gzip JSON envelopes posted
//! to `/v2/track`.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::helpers::{
    encoded, invocation, many_metadata, spawn_serve, texts, windows, ChildGuard, ClosedPort,
    Scratch,
};

/// What the local ingestion endpoint received, and how it answers.
#[derive(Clone)]
struct Ingestion {
    envelopes: Arc<Mutex<Vec<Value>>>,
    posts: Arc<Mutex<usize>>,
    status: StatusCode,
}

async fn track(State(ingestion): State<Ingestion>, body: Bytes) -> (StatusCode, String) {
    *ingestion.posts.lock().unwrap() += 1;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("gzip body");
    let items: Vec<Value> = match serde_json::from_str::<Value>(&text).expect("JSON body") {
        Value::Array(items) => items,
        one => vec![one],
    };
    let n = items.len();
    if ingestion.status.is_success() {
        ingestion.envelopes.lock().unwrap().extend(items);
        (
            ingestion.status,
            json!({"itemsReceived": n, "itemsAccepted": n, "errors": []}).to_string(),
        )
    } else {
        let errors: Vec<Value> = (0..n).map(|i| json!({"index": i, "statusCode": ingestion.status.as_u16(), "message": "try later"})).collect();
        (
            ingestion.status,
            json!({"itemsReceived": n, "itemsAccepted": 0, "errors": errors}).to_string(),
        )
    }
}

async fn start_ingestion(status: StatusCode) -> (u16, Ingestion) {
    let ingestion = Ingestion {
        envelopes: Arc::default(),
        posts: Arc::default(),
        status,
    };
    let app = Router::new()
        .route("/v2/track", post(track))
        .with_state(ingestion.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, ingestion)
}

/// The handler with `connection_string`, exporting often (short batch delay and metric interval).
struct Handler {
    child: ChildGuard,
    port: u16,
    _scratch: Scratch,
}

impl Handler {
    async fn start(connection_string: &str) -> Handler {
        let scratch = Scratch::new("appinsights");
        let (child, port) = spawn_serve(&[
            (
                "ANOMALY_SQLITE_PATH",
                scratch.path("a.sqlite").display().to_string(),
            ),
            (
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                connection_string.to_string(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500".into()),
        ])
        .await;
        Handler {
            child,
            port,
            _scratch: scratch,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One invocation of 12 windows (3 anomalous), with the host's invocation id header.
    async fn invoke(&self, invocation_id: &str) -> (u16, Duration) {
        // 12 windows (3 anomalous) and one unreadable event.
        let mut bodies = texts(&windows(12, 4));
        bodies.push("not json".into());
        let body = invocation(encoded(json!(bodies)), many_metadata(13, 300));
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(self.url("/ScoreWindows"))
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .json(&body)
            .send()
            .await
            .expect("answered");
        (response.status().as_u16(), started.elapsed())
    }

    /// SIGTERM, then waits for the exit (the exporters flush on the way out).
    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        self.child.terminate();
        let status = self.child.wait_exit(Duration::from_secs(30)).await;
        assert!(status.success(), "{status:?}");
        started.elapsed()
    }
}

fn connection_string(port: u16) -> String {
    format!("InstrumentationKey=00000000-0000-0000-0000-00000000abcd;IngestionEndpoint=http://127.0.0.1:{port}/")
}

fn of_type<'a>(envelopes: &'a [Value], base_type: &str) -> Vec<&'a Value> {
    envelopes
        .iter()
        .filter(|e| e["data"]["baseType"] == base_type)
        .map(|e| &e["data"]["baseData"])
        .collect()
}

#[tokio::test]
async fn an_invocation_is_a_request_with_dependencies_and_metrics_follow() {
    let (ingest_port, ingestion) = start_ingestion(StatusCode::OK).await;
    let handler = Handler::start(&connection_string(ingest_port)).await;
    let ready = handler.child.wait_for_line("handler ready", Duration::from_secs(5)).await;
    assert!(ready.contains("app_insights=true"), "{ready}");
    let (status, _) = handler.invoke("inv-0001").await;
    assert_eq!(status, 200);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(handler.url("/api/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let drift: Value = client
        .get(handler.url("/api/drift"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(drift["windows"], 12, "{drift}");
    // SIGTERM flushes spans and collects and exports the metrics one last time.
    handler.stop().await;
    let envelopes = ingestion.envelopes.lock().unwrap().clone();

    let requests = of_type(&envelopes, "RequestData");
    let invocation = requests
        .iter()
        .find(|r| r["name"] == "ScoreWindows")
        .unwrap_or_else(|| panic!("a ScoreWindows request in {requests:#?}"));
    assert_eq!(invocation["responseCode"], "200");
    assert_eq!(invocation["success"], true);
    let p = &invocation["properties"];
    assert_eq!(p["faas.invocation_id"], "inv-0001", "{invocation:#}");
    assert_eq!(p["faas.name"], "ScoreWindows");
    assert_eq!(p["partition"], "3");
    assert_eq!(
        (p["sequence_first"].clone(), p["sequence_last"].clone()),
        (json!("300"), json!("312"))
    );
    assert_eq!(p["events"], "13");
    assert_eq!(p["windows_scored"], "12");
    assert_eq!(p["anomalies"], "3");
    assert_eq!(p["refused"], "1");
    for key in p.as_object().unwrap().keys() {
        let known = service::http::invocation::INVOCATION_PROPERTIES.contains(&key.as_str());
        let generic = [
            "service.",
            "telemetry.",
            "code.",
            "thread.",
            "busy_ns",
            "idle_ns",
            "target",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        assert!(known || generic, "undeclared request property {key}");
    }
    assert_eq!(p["outcome"], "ok");
    assert!(
        p["model_version"].as_str().unwrap().starts_with("ae-"),
        "{p}"
    );
    let health = requests
        .iter()
        .find(|r| r["name"] == "GET /api/health")
        .unwrap_or_else(|| panic!("the health request in {requests:#?}"));
    assert_eq!(health["responseCode"], "200");

    let dependencies = of_type(&envelopes, "RemoteDependencyData");
    let named = |name: &str| {
        dependencies
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {dependencies:#?}"))
    };
    let store = named("store.insert");
    assert_eq!(store["type"], "SQLite");
    assert_ne!(store["success"], false, "{store:#}"); // omitted when true
    assert!(
        store["target"].as_str().unwrap().ends_with("a.sqlite"),
        "{store}"
    );
    assert_eq!(named("onnxruntime.run")["type"], "InProc");
    assert_eq!(named("outputs.build")["type"], "InProc");
    // The dependencies hang under the invocation's operation.
    let operation = |name: &str| {
        envelopes
            .iter()
            .find(|e| e["data"]["baseData"]["name"] == name)
            .map(|e| e["tags"]["ai.operation.id"].clone())
            .unwrap()
    };
    assert_eq!(operation("store.insert"), operation("ScoreWindows"));

    let metrics: Vec<(String, Value)> = of_type(&envelopes, "MetricData")
        .iter()
        .flat_map(|m| {
            let props = m["properties"].clone();
            m["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |x| {
                    (
                        x["name"].as_str().unwrap_or_default().to_string(),
                        json!({"value": x["value"], "properties": props.clone()}),
                    )
                })
        })
        .collect();
    let find = |name: &str| {
        metrics
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    for name in [
        "sensor_anomaly.windows_scored",
        "sensor_anomaly.anomalies",
        "sensor_anomaly.batch_duration_ms",
        "sensor_anomaly.store_write_duration_ms",
        "sensor_anomaly.model_info",
        "sensor_anomaly.drift_psi",
        "sensor_anomaly.invocations",
    ] {
        assert!(
            !find(name).is_empty(),
            "{name} not exported; got {:?}",
            metrics.iter().map(|m| &m.0).collect::<Vec<_>>()
        );
    }
    // Every declared metric was exported with only its declared dimensions (store write failures
    // need a failing store: not here). The workbook and alert queries are held to this list.
    for instrument in service::telemetry::metrics::INSTRUMENTS {
        let (name, dims) = (instrument.otel_name(), instrument.labels);
        let name = name.as_str();
        let exported = find(name);
        // Nothing failed a store write, reloaded a model, followed a model store, scored a
        // challenger or drifted for hours here (the unit tests of `telemetry::events` emit every
        // event on both exporters).
        if ["store_write_failures", "model_reloads", "model_follow", "shadow_windows", "retraining_recommended"].contains(&instrument.name) {
            continue;
        }
        assert!(!exported.is_empty(), "{name} not exported");
        for point in &exported {
            for key in point["properties"].as_object().unwrap().keys() {
                let resource = key.starts_with("service.") || key.starts_with("telemetry.");
                assert!(
                    resource || dims.contains(&key.as_str()),
                    "{name}: undeclared dimension {key}"
                );
            }
        }
    }
    for name in crate::monitoring::DEPENDENCY_NAMES {
        named(name);
    }
    // Devices reach Application Insights as a trace per batch, not as a metric dimension.
    let (message, properties) = service::telemetry::events::ANOMALOUS_DEVICES_TRACE;
    let traces = of_type(&envelopes, "MessageData");
    let devices = traces
        .iter()
        .find(|t| t["message"] == message)
        .unwrap_or_else(|| panic!("the {message:?} trace in {traces:#?}"));
    let props = &devices["properties"];
    for key in properties {
        assert!(props.get(*key).is_some(), "{key} in {props}");
    }
    let listed: Vec<(String, u64, u64)> =
        serde_json::from_str(props["devices"].as_str().unwrap()).unwrap();
    assert_eq!(listed.iter().map(|d| d.1).sum::<u64>(), 3, "{listed:?}");
    assert!(listed.iter().all(|d| d.0.starts_with("pump-")), "{listed:?}");
    // Each incident transition is a trace with the incident's properties; the counter agrees.
    let (message, properties) = service::telemetry::events::INCIDENT_TRACE;
    let changes: Vec<&Value> = traces.iter().copied().filter(|t| t["message"] == message).collect();
    assert!(!changes.is_empty(), "no {message:?} trace in {traces:#?}");
    for change in &changes {
        let props = &change["properties"];
        for key in properties {
            assert!(props.get(*key).is_some(), "{key} in {props}");
        }
        assert!(props["device_id"].as_str().unwrap().starts_with("pump-"), "{props}");
        assert!(props["explanation"].as_str().unwrap().contains("vibration"), "{props}");
    }
    let counted: f64 = find("sensor_anomaly.incidents")
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .sum();
    assert_eq!(counted as usize, changes.len(), "one count per transition trace");
    let anomalies = find("sensor_anomaly.anomalies");
    assert!(
        anomalies
            .iter()
            .any(|a| a["properties"]["top_channel"] == "vibration"),
        "{anomalies:?}"
    );
    let drift = find("sensor_anomaly.drift_psi");
    assert!(
        drift
            .iter()
            .any(|d| d["properties"]["feature"] == "vibration_mean"),
        "{drift:?}"
    );
}

#[tokio::test]
async fn a_failing_or_unreachable_endpoint_never_holds_an_invocation_up() {
    // 500 on every upload: the exporter retries in the background; invocations do not wait.
    let (ingest_port, ingestion) = start_ingestion(StatusCode::INTERNAL_SERVER_ERROR).await;
    let handler = Handler::start(&connection_string(ingest_port)).await;
    for i in 0..5 {
        let (status, took) = handler.invoke(&format!("inv-{i}")).await;
        assert_eq!(status, 200);
        // Generous: an invocation takes milliseconds; a blocked export would take seconds.
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // The exporter's retries are counted as they happen: awaited, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (retries, metrics) = loop {
        let metrics = reqwest::get(handler.url("/api/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let retries = metrics
            .lines()
            .find(|l| {
                l.starts_with("sensor_anomaly_telemetry_export_failures_total{signal=\"retries\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if retries > 0 || Instant::now() > deadline {
            break (retries, metrics);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(retries > 0, "retries are counted:\n{metrics}");
    assert!(*ingestion.posts.lock().unwrap() > 0);
    let took = handler.stop().await;
    assert!(took < Duration::from_secs(15), "shutdown bounded: {took:?}");

    // Nothing listens: the same.
    let closed = ClosedPort::new();
    let handler = Handler::start(&connection_string(closed.port())).await;
    let (status, took) = handler.invoke("inv-x").await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "{took:?}");
    handler.stop().await;
}

#[tokio::test]
async fn without_the_setting_nothing_is_exported() {
    let handler = Handler::start("").await;
    let ready = handler.child.wait_for_line("handler ready", Duration::from_secs(5)).await;
    assert!(ready.contains("app_insights=false"), "{ready}");
    assert_eq!(handler.invoke("inv-none").await.0, 200);
    let metrics = reqwest::get(handler.url("/api/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("telemetry_export_failures_total{"),
        "no exporter: {metrics}"
    );
    handler.stop().await;
}
