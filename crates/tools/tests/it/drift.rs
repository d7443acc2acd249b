//! Drift through the running handler: healthy simulated windows stay `ok`; one shifted feature
//! drifts alone, and (with `ANOMALY_RETRAIN_AFTER_HOURS` at zero here) retraining is recommended
//! once for it and never for the healthy feed.

use serde_json::{json, Map, Value};

use crate::helpers::{
    encoded, healthy_windows, invocation, invoke, many_metadata, spawn_app_with, TestApp,
};

/// A handler that recommends retraining as soon as it sees drift (the setting's floor is an
/// hour; the watch itself is unit-tested over hours in `service::retrain`).
async fn spawn_app() -> TestApp {
    spawn_app_with(|s| s.retrain_after = std::time::Duration::ZERO).await
}

async fn recommendations(app: &TestApp) -> usize {
    let text = app.get("/api/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("sensor_anomaly_retraining_recommended_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

async fn feed(app: &TestApp, windows: &[Map<String, Value>]) {
    for (i, chunk) in windows.chunks(256).enumerate() {
        let bodies: Vec<String> = chunk
            .iter()
            .map(|w| Value::Object(w.clone()).to_string())
            .collect();
        let (status, reply) = invoke(
            app,
            &invocation(
                encoded(json!(bodies)),
                many_metadata(chunk.len(), (i * 256) as i64),
            ),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
}

async fn drift(app: &TestApp) -> Value {
    app.get("/api/drift").await.json().await.unwrap()
}

fn psi(report: &Value) -> Vec<(String, f64, String)> {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap().to_string(),
                f["psi"].as_f64().unwrap(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn healthy_windows_stay_ok_and_a_shifted_feature_drifts_alone() {
    let healthy = healthy_windows(10, 24.0, 501);
    let app = spawn_app().await;
    feed(&app, &healthy).await;
    let report = drift(&app).await;
    eprintln!("healthy: {:?}", psi(&report));
    // The last 24 hours by window end: the windows of the first hour have aged out.
    let counted = report["windows"].as_u64().unwrap() as usize;
    assert!(
        counted <= healthy.len() && counted >= healthy.len() * 23 / 24,
        "{report}"
    );
    assert_eq!(report["hours"], 24);
    assert_eq!(report["status"], "ok", "{:?}", psi(&report));
    assert_eq!(recommendations(&app).await, 0);

    let model = app.state.model.get();
    let i = model
        .info
        .feature_names
        .iter()
        .position(|f| f == "pressure_mean")
        .unwrap();
    let sd = model.info.feature_std[i];
    let shifted: Vec<Map<String, Value>> = healthy_windows(10, 24.0, 502)
        .into_iter()
        .map(|mut w| {
            let v = w["pressure_mean"].as_f64().unwrap();
            w.insert("pressure_mean".into(), json!(v + 1.5 * sd));
            w
        })
        .collect();
    let app = spawn_app().await;
    feed(&app, &shifted).await;
    let report = drift(&app).await;
    let features = psi(&report);
    eprintln!("shifted: {features:?}");
    assert_eq!(report["status"], "drift");
    assert_eq!(recommendations(&app).await, 1, "once for the run of drift, not per batch");
    for (feature, psi, status) in &features {
        if feature == "pressure_mean" {
            assert!(*psi >= 0.2, "{feature} {psi}");
        } else {
            assert!(*psi < 0.2 && status != "drift", "{feature} {psi} {status}");
        }
    }
}
