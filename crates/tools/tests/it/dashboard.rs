//! The dashboard over HTTP (the page itself runs in a real browser in scripts/test.sh): the page
//! is served from the binary, and its JSON reflects stored anomalies and incidents, devices and
//! their scores.

use serde_json::{json, Value};

use crate::helpers::{encoded, invocation, invoke, many_metadata, spawn_app, texts, windows};

#[tokio::test]
async fn the_page_and_its_json_show_the_fleet() {
    let app = spawn_app().await;
    let page = app.get("/api/dashboard").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/api/dashboard/data")
            && !html.contains("http://")
            && !html.contains("https://"),
        "self-contained: no external resources"
    );

    let w = windows(12, 4); // 3 anomalies
    let mut bodies = texts(&w);
    bodies.push("not json".into());
    let (status, _) = invoke(
        &app,
        &invocation(encoded(json!(bodies)), many_metadata(13, 1)),
    )
    .await;
    assert_eq!(status, 200);

    let data: Value = app.get("/api/dashboard/data").await.json().await.unwrap();
    assert_eq!(data["feed"].as_array().unwrap().len(), 3, "{data}");
    let first = &data["feed"][0];
    assert!(
        first["explanation"]
            .as_str()
            .unwrap()
            .starts_with("vibration"),
        "{first}"
    );
    assert_eq!(data["counters"]["windows_scored"], 12);
    assert_eq!(data["counters"]["refused"], 1);
    let devices = data["devices"].as_array().unwrap();
    assert_eq!(data["fleet"]["devices_seen"], devices.len());
    let last_hour: u64 = data["fleet"]["anomalies_last_hour"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(last_hour, 3);
    assert_eq!(data["model"]["channels"].as_array().unwrap().len(), 5);
    // Incidents as the store lists them (open first), with the open count.
    let listed: Value = app.get("/api/incidents?limit=30").await.json().await.unwrap();
    assert!(listed["count"].as_u64().unwrap() > 0, "{listed}");
    assert_eq!(data["incidents"], listed["incidents"]);
    assert_eq!(data["fleet"]["incidents_open"], listed["open"]);
    assert_eq!(data["fleet"]["incidents_open_capped"], false);

    let device = first["device_id"].as_str().unwrap();
    let drill: Value = app
        .get(&format!("/api/dashboard/device?id={device}"))
        .await
        .json()
        .await
        .unwrap();
    let points = drill["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().any(|p| p["severity"] != "normal"), "{drill}");
    assert_eq!(points[0]["contributions"].as_object().unwrap().len(), 5);
    assert_eq!(
        app.get("/api/dashboard/device?id=nobody").await.status(),
        404
    );
    assert_eq!(app.get("/api/dashboard/device").await.status(), 400);
}
