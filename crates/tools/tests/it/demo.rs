//! The demo as a short test: the whole pipeline, with quality and bookkeeping checks.

use crate::helpers::{default_model, Scratch};
use service::telemetry::Telemetry;
use sensor_anomaly::demo::{self, DemoOptions};
use sensor_anomaly::simulate::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_demo_detects_and_attributes_faults() {
    let scratch = Scratch::new("demo");
    let options = DemoOptions {
        sim: SimConfig {
            devices: 12,
            hours: 6.0,
            seed: 42,
            fault_rate: 0.4,
            ..SimConfig::default()
        },
        window_secs: 60,
        batch_size: 256,
        concurrency: 2,
        model_path: default_model(),
        db_path: scratch.path("demo.sqlite"),
        progress: false,
        serve_port: None,
    };
    let report = demo::run(options, &Telemetry::disabled()).await.unwrap();
    assert_eq!(report.windows_scored, 12 * 6 * 60);
    // Each of the 4 partitions is cut into batches of up to 256 on its own.
    let least = report.windows_scored.div_ceil(256);
    assert!((least..least + 4).contains(&report.batches), "{} batches", report.batches);
    assert_eq!(report.anomalies, report.anomalies_stored);
    assert!(
        report.quality.labelled_anomalous > 20,
        "{:?}",
        report.quality
    );
    assert!(
        report.f1 >= 0.9,
        "F1 {:.3}: {:?}",
        report.f1,
        report.quality
    );
    assert!(
        report.top_channel_accuracy >= 0.9,
        "top channel {:.3}: {:?}",
        report.top_channel_accuracy,
        report.quality
    );
    assert!(
        report.windows_per_second > 0.0
            && report.batch_latency_ms.p99 >= report.batch_latency_ms.p50
    );
    // Incidents: nearly every fault episode found, one incident each, no storm of them (a fault
    // whose only anomalous window is `low` or `medium` opens none: 2 of 3 are needed).
    let i = &report.incidents.quality;
    assert!(i.episodes > 0 && i.missed * 10 <= i.episodes, "{i:?}");
    assert!(i.exactly_one as f64 >= 0.9 * i.episodes as f64, "{i:?}");
    assert!(i.false_incidents_per_device_day < 1.0, "{i:?}");
    assert!(report.incidents.messages < report.anomalies, "fewer messages than alerts");
    let text = demo::render(&report);
    assert!(text.contains("F1") && text.contains("windows/s") && text.contains("fault episodes"));
}
