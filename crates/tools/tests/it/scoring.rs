//! Scoring through the real ONNX Runtime with the committed default model.

use crate::helpers::{default_model, healthy_windows, shift_channel};
use domain::{Severity, WindowRecord};
use ingress::events as records;
use scoring::{Model, ModelError};
use sensor_anomaly::schema::{self, CHANNELS};
use serde_json::{Map, Value};

fn model() -> Model {
    Model::load_file(&default_model()).expect("default model loads")
}

fn record(model: &Model, window: &Map<String, Value>) -> WindowRecord {
    records::extract(window, &model.info.feature_names).expect("valid window")
}

#[test]
fn default_model_follows_the_contract() {
    let model = model();
    assert_eq!(model.info.feature_names, schema::feature_names());
    assert_eq!(
        model.info.channels,
        CHANNELS.iter().map(|c| c.to_string()).collect::<Vec<_>>()
    );
    assert!(model.info.threshold > 0.0);
    assert!(model.info.model_version.starts_with("ae-"));
    assert_eq!(model.info.detector, "autoencoder");
    assert!(model.info.training_summary.is_object());
}

#[test]
fn healthy_windows_are_rarely_flagged_and_contributions_sum_to_the_score() {
    let model = model();
    let windows = healthy_windows(4, 6.0, 1234);
    let records: Vec<WindowRecord> = windows.iter().map(|w| record(&model, w)).collect();
    let scored = model.score(&records).unwrap();
    assert_eq!(scored.len(), records.len());
    let flagged = scored.iter().filter(|s| s.is_anomaly).count();
    assert!(
        flagged * 100 <= records.len(),
        "{flagged} of {} healthy windows flagged",
        records.len()
    );
    for s in &scored {
        let sum: f64 = s.contributions.values().sum();
        assert!(
            (sum - s.score).abs() <= 1e-9 * s.score.max(1.0),
            "contributions {sum} vs score {}",
            s.score
        );
        assert!(s.contributions.values().all(|c| *c >= 0.0));
        assert_eq!(s.is_anomaly, s.score >= s.threshold);
        assert_eq!(s.severity == Severity::Normal, !s.is_anomaly);
    }
}

#[test]
fn a_fault_in_one_channel_gets_the_largest_share() {
    let model = model();
    let base = healthy_windows(1, 2.0, 99);
    // A shift of several healthy standard deviations of the channel's mean, on each channel in turn.
    for (i, channel) in CHANNELS.iter().enumerate() {
        let sd = model.info.feature_std[i * 4];
        for window in base.iter().step_by(17) {
            let mut faulty = window.clone();
            shift_channel(&mut faulty, channel, 3.0 * sd);
            let scored = model.score(&[record(&model, &faulty)]).unwrap().remove(0);
            assert!(
                scored.is_anomaly,
                "{channel}: shifted window not flagged: {}",
                scored.explanation
            );
            assert_eq!(
                scored.top_channel, *channel,
                "{channel}: {:?}",
                scored.contributions
            );
            let share = scored.contributions[*channel] / scored.score;
            // More than an even split over the five channels.
            assert!(
                share > 1.0 / CHANNELS.len() as f64,
                "{channel} explains only {share:.2}: {:?}",
                scored.contributions
            );
            assert!(
                scored.explanation.starts_with(channel),
                "{}",
                scored.explanation
            );
            assert!(
                scored.explanation.contains("sd above normal"),
                "{}",
                scored.explanation
            );
        }
    }
    // A stuck sensor: zero spread on one channel.
    let mut stuck = base[30].clone();
    let mean = stuck["vibration_mean"].clone();
    stuck.insert("vibration_std".into(), Value::from(0.0));
    stuck.insert("vibration_min".into(), mean.clone());
    stuck.insert("vibration_max".into(), mean);
    let scored = model.score(&[record(&model, &stuck)]).unwrap().remove(0);
    assert!(scored.is_anomaly);
    assert_eq!(scored.top_channel, "vibration");
    assert!(
        scored.explanation.starts_with("vibration std is"),
        "{}",
        scored.explanation
    );
}

#[test]
fn batch_scores_equal_single_scores_and_threads_agree() {
    let model = std::sync::Arc::new(model());
    let windows = healthy_windows(2, 1.0, 5);
    let records: Vec<WindowRecord> = windows.iter().map(|w| record(&model, w)).collect();
    let batch = model.score(&records).unwrap();
    for (r, b) in records.iter().zip(&batch).step_by(7) {
        let single = model.score(std::slice::from_ref(r)).unwrap().remove(0);
        assert!(
            (single.score - b.score).abs() <= 1e-6 * b.score.max(1e-3),
            "{} vs {}",
            single.score,
            b.score
        );
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (model, records) = (model.clone(), records.clone());
            std::thread::spawn(move || {
                model
                    .score(&records)
                    .unwrap()
                    .iter()
                    .map(|s| s.score)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let expected: Vec<f64> = batch.iter().map(|s| s.score).collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn broken_model_files_are_refused_with_a_reason() {
    let err = Model::load_bytes(b"definitely not an onnx model", "garbage").unwrap_err();
    assert!(matches!(err, ModelError::Onnx(_)), "{err}");
    let bytes = std::fs::read(default_model()).unwrap();
    let err = Model::load_bytes(&bytes[..bytes.len() / 2], "truncated").unwrap_err();
    assert!(matches!(err, ModelError::Onnx(_)), "{err}");
    let err = Model::load_file(std::path::Path::new("models/missing.onnx")).unwrap_err();
    assert!(err.to_string().contains("models/missing.onnx"), "{err}");
}
