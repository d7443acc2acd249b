//! Scoring windows with an ONNX model: anomaly score, severity, per-channel contributions and a
//! plain-language explanation.
//!
//! The model file is the whole contract (see `models/README.md`): input `features` `[N, F]` of
//! raw values, output `contributions` `[N, F]` whose row sum is the anomaly score, and metadata
//! naming the features, their channels, the threshold and the training statistics. Any detector
//! exported that way is served unchanged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::Serialize;

use crate::records::WindowRecord;
use crate::runtime::{self, RuntimeError};

pub const INPUT_NAME: &str = "features";
pub const OUTPUT_NAME: &str = "contributions";
/// Optional output `[N, F]`: what the model expected each feature to be, in raw units. With it,
/// explanations measure how far a reading is from its expected value; without it, from the
/// training mean.
pub const EXPECTED_NAME: &str = "expected";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot read model file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("ONNX Runtime rejected the model: {0}")]
    Onnx(String),
    #[error("model metadata `{key}` {problem}")]
    Metadata { key: &'static str, problem: String },
    #[error("model graph does not follow the contract: {0}")]
    Contract(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

fn onnx<E: std::fmt::Display>(e: E) -> ModelError {
    ModelError::Onnx(e.to_string())
}

/// What the model file says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub model_version: String,
    pub detector: String,
    pub feature_names: Vec<String>,
    pub feature_channels: Vec<String>,
    /// Distinct channels in first-appearance order.
    pub channels: Vec<String>,
    pub threshold: f64,
    pub feature_mean: Vec<f64>,
    pub feature_std: Vec<f64>,
    pub feature_quantiles: serde_json::Value,
    pub training_summary: serde_json::Value,
}

/// A loaded model: metadata plus a small pool of sessions, since an ONNX Runtime session runs one
/// inference at a time and requests arrive concurrently.
pub struct Model {
    pub info: ModelInfo,
    channel_of_feature: Vec<usize>,
    has_expected: bool,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    pub source: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("version", &self.info.model_version)
            .field("source", &self.source)
            .finish()
    }
}

/// Severity bands, by how far the score is above the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// `score / threshold`: below 1 normal, [1, 2) low, [2, 4) medium, [4, 8) high, 8+ critical.
    pub fn from_ratio(ratio: f64) -> Self {
        match ratio {
            r if r < 1.0 => Severity::Normal,
            r if r < 2.0 => Severity::Low,
            r if r < 4.0 => Severity::Medium,
            r if r < 8.0 => Severity::High,
            _ => Severity::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "normal",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The result for one window.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredWindow {
    pub device_id: String,
    pub window_end: String,
    pub score: f64,
    pub threshold: f64,
    pub is_anomaly: bool,
    pub severity: Severity,
    /// The score split over the channels; the values sum to `score`.
    pub contributions: BTreeMap<String, f64>,
    pub top_channel: String,
    /// The feature of the top channel contributing most, and how far it is from the value the
    /// model expected, in training sd.
    pub top_feature: String,
    pub top_feature_z: f64,
    pub explanation: String,
    pub model_version: String,
    /// Wall time of the batch this window was scored in, divided over its windows.
    pub processing_time_us: f64,
}

impl ScoredWindow {
    /// A score the model could not compute (non-finite output) must not be stored or alerted on.
    pub fn check_finite(&self) -> Result<(), crate::records::RecordError> {
        let finite = self.score.is_finite() && self.contributions.values().all(|c| c.is_finite());
        if finite {
            Ok(())
        } else {
            Err(crate::records::RecordError::NonFiniteScore)
        }
    }
}

impl Model {
    pub fn load_file(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|error| ModelError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::load_bytes(&bytes, &path.display().to_string())
    }

    /// Loads and checks a model: contract, metadata, and one probe inference on the training
    /// means, so a broken file is refused here and never replaces a serving model.
    pub fn load_bytes(bytes: &[u8], source: &str) -> Result<Self, ModelError> {
        let env = runtime::environment()?;
        let pool = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let mut sessions = Vec::with_capacity(pool);
        for _ in 0..pool {
            let session = Session::builder(env)
                .map_err(onnx)?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(onnx)?
                .with_intra_threads(1)
                .map_err(onnx)?
                .commit_from_memory(bytes)
                .map_err(onnx)?;
            sessions.push(session);
        }
        let info = read_info(&sessions[0])?;
        check_graph(&sessions[0], info.feature_names.len())?;
        let has_expected = sessions[0]
            .outputs()
            .iter()
            .any(|o| o.name() == EXPECTED_NAME);
        let channel_of_feature = info
            .feature_channels
            .iter()
            .map(|c| info.channels.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let model = Model {
            info,
            channel_of_feature,
            has_expected,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            source: source.to_string(),
        };
        let probe: Vec<f32> = model.info.feature_mean.iter().map(|&m| m as f32).collect();
        let (out, _) = model.run(probe, 1)?;
        if out.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Contract(
                "probe inference on the training means gave non-finite contributions".into(),
            ));
        }
        Ok(model)
    }

    pub fn feature_count(&self) -> usize {
        self.info.feature_names.len()
    }

    /// One ONNX Runtime run for the whole batch: `rows` is `[n, F]` row-major. Returns the
    /// contributions and, when the model has that output, the expected values.
    pub fn run(
        &self,
        rows: Vec<f32>,
        n: usize,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let f = self.feature_count();
        if rows.len() != n * f {
            return Err(ModelError::Inference(format!(
                "expected {} values for {n} rows, got {}",
                n * f,
                rows.len()
            )));
        }
        if n == 0 {
            return Ok((Vec::new(), self.has_expected.then(Vec::new)));
        }
        let input =
            Tensor::from_array(([n, f], rows)).map_err(|e| ModelError::Inference(e.to_string()))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Take the first free session, starting at a rotating index; wait on one only if all are busy.
        let count = self.sessions.len();
        let mut guard = (0..count)
            .find_map(|i| self.sessions[(start + i) % count].try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| self.sessions[start % count].lock())
            .map_err(|_| ModelError::Inference("a previous inference panicked".into()))?;
        let outputs = guard
            .run(ort::inputs![INPUT_NAME => input])
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let extract = |name: &str| -> Result<Vec<f32>, ModelError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| ModelError::Contract(format!("no output named `{name}`")))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Inference(e.to_string()))?;
            if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != f {
                return Err(ModelError::Contract(format!(
                    "output `{name}` has shape {:?}, expected [{n}, {f}]",
                    &shape[..]
                )));
            }
            Ok(data.to_vec())
        };
        let contributions = extract(OUTPUT_NAME)?;
        let expected = if self.has_expected {
            Some(extract(EXPECTED_NAME)?)
        } else {
            None
        };
        Ok((contributions, expected))
    }

    /// Scores a batch of validated windows.
    pub fn score(&self, records: &[WindowRecord]) -> Result<Vec<ScoredWindow>, ModelError> {
        let started = Instant::now();
        let f = self.feature_count();
        let mut rows = Vec::with_capacity(records.len() * f);
        for r in records {
            if r.features.len() != f {
                return Err(ModelError::Inference(format!(
                    "window {} has {} features, model expects {f}",
                    r.device_id,
                    r.features.len()
                )));
            }
            rows.extend_from_slice(&r.features);
        }
        let (contributions, expected) = self.run(rows, records.len())?;
        let per_window_us = started.elapsed().as_secs_f64() * 1e6 / records.len().max(1) as f64;
        Ok(records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let row = i * f..(i + 1) * f;
                let expected = expected.as_ref().map(|e| &e[row.clone()]);
                self.explain(record, &contributions[row], expected, per_window_us)
            })
            .collect())
    }

    fn explain(
        &self,
        record: &WindowRecord,
        feature_contrib: &[f32],
        expected: Option<&[f32]>,
        processing_time_us: f64,
    ) -> ScoredWindow {
        let info = &self.info;
        let mut by_channel = vec![0f64; info.channels.len()];
        for (i, &c) in feature_contrib.iter().enumerate() {
            by_channel[self.channel_of_feature[i]] += f64::from(c);
        }
        let score: f64 = by_channel.iter().sum();
        let top = by_channel
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let top_channel = info.channels.get(top).cloned().unwrap_or_default();
        // Within the top channel, the feature with the largest contribution, and how many training
        // sd it is from the value the model expected (or from the training mean).
        let (top_feature, z) = (0..feature_contrib.len())
            .filter(|&i| self.channel_of_feature[i] == top)
            .max_by(|&a, &b| feature_contrib[a].total_cmp(&feature_contrib[b]))
            .map(|i| {
                let normal = expected.map_or(info.feature_mean[i], |e| f64::from(e[i]));
                let sd = info.feature_std[i].max(1e-12);
                (
                    info.feature_names[i].clone(),
                    (f64::from(record.features[i]) - normal) / sd,
                )
            })
            .unwrap_or_default();
        let ratio = if info.threshold > 0.0 {
            score / info.threshold
        } else {
            f64::INFINITY
        };
        let severity = Severity::from_ratio(ratio);
        let share = if score > 0.0 {
            by_channel[top] / score
        } else {
            0.0
        };
        let explanation = explanation_text(severity, &top_channel, &top_feature, z, share, ratio);
        ScoredWindow {
            device_id: record.device_id.clone(),
            window_end: record.window_end.clone(),
            score,
            threshold: info.threshold,
            is_anomaly: severity != Severity::Normal,
            severity,
            contributions: info.channels.iter().cloned().zip(by_channel).collect(),
            top_channel,
            top_feature,
            top_feature_z: z,
            explanation,
            model_version: info.model_version.clone(),
            processing_time_us,
        }
    }
}

fn explanation_text(
    severity: Severity,
    channel: &str,
    feature: &str,
    z: f64,
    share: f64,
    ratio: f64,
) -> String {
    let stat = feature
        .strip_prefix(channel)
        .map(|s| s.trim_start_matches('_'))
        .filter(|s| !s.is_empty())
        .unwrap_or(feature);
    let direction = if z >= 0.0 { "above" } else { "below" };
    let what = format!(
        "{channel} {stat} is {:.1} sd {direction} normal; {channel} explains {:.0}% of the error",
        z.abs(),
        share * 100.0
    );
    if severity == Severity::Normal {
        format!(
            "within normal range (score at {:.0}% of threshold); largest deviation: {what}",
            ratio * 100.0
        )
    } else {
        format!(
            "{what} (score {:.1}x threshold, {})",
            ratio,
            severity.as_str()
        )
    }
}

fn meta_json<T: serde::de::DeserializeOwned>(
    raw: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<T, ModelError> {
    let text = raw.get(key).ok_or(ModelError::Metadata {
        key,
        problem: "is missing".into(),
    })?;
    serde_json::from_str(text).map_err(|e| ModelError::Metadata {
        key,
        problem: format!("is not valid JSON of the expected shape: {e}"),
    })
}

fn read_info(session: &Session) -> Result<ModelInfo, ModelError> {
    let meta = session.metadata().map_err(onnx)?;
    let keys = meta.custom_keys().map_err(onnx)?;
    let raw: BTreeMap<String, String> = keys
        .into_iter()
        .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
        .collect();
    let feature_names: Vec<String> = meta_json(&raw, "anomaly.feature_names")?;
    let feature_channels: Vec<String> = meta_json(&raw, "anomaly.feature_channels")?;
    let feature_mean: Vec<f64> = meta_json(&raw, "anomaly.feature_mean")?;
    let feature_std: Vec<f64> = meta_json(&raw, "anomaly.feature_std")?;
    let threshold: f64 = meta_json(&raw, "anomaly.threshold")?;
    let f = feature_names.len();
    if f == 0 {
        return Err(ModelError::Metadata {
            key: "anomaly.feature_names",
            problem: "is empty".into(),
        });
    }
    for (key, len) in [
        ("anomaly.feature_channels", feature_channels.len()),
        ("anomaly.feature_mean", feature_mean.len()),
        ("anomaly.feature_std", feature_std.len()),
    ] {
        if len != f {
            return Err(ModelError::Metadata {
                key,
                problem: format!("has {len} entries for {f} features"),
            });
        }
    }
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(ModelError::Metadata {
            key: "anomaly.threshold",
            problem: format!("must be a positive finite number, got {threshold}"),
        });
    }
    let model_version = raw
        .get("anomaly.model_version")
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .ok_or(ModelError::Metadata {
            key: "anomaly.model_version",
            problem: "is missing".into(),
        })?;
    let mut channels: Vec<String> = Vec::new();
    for c in &feature_channels {
        if !channels.contains(c) {
            channels.push(c.clone());
        }
    }
    Ok(ModelInfo {
        model_version,
        detector: raw
            .get("anomaly.detector")
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        feature_names,
        feature_channels,
        channels,
        threshold,
        feature_mean,
        feature_std,
        feature_quantiles: meta_json(&raw, "anomaly.feature_quantiles")
            .unwrap_or(serde_json::Value::Null),
        training_summary: meta_json(&raw, "anomaly.training_summary")
            .unwrap_or(serde_json::Value::Null),
    })
}

fn check_graph(session: &Session, features: usize) -> Result<(), ModelError> {
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == INPUT_NAME)
        .ok_or_else(|| ModelError::Contract(format!("no input named `{INPUT_NAME}`")))?;
    if let Some(shape) = input.dtype().tensor_shape() {
        if shape.len() != 2 || (shape[1] >= 0 && shape[1] as usize != features) {
            return Err(ModelError::Contract(format!(
                "input `{INPUT_NAME}` has shape {:?}, expected [N, {features}]",
                &shape[..]
            )));
        }
    }
    if !session.outputs().iter().any(|o| o.name() == OUTPUT_NAME) {
        return Err(ModelError::Contract(format!(
            "no output named `{OUTPUT_NAME}`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_bands() {
        assert_eq!(Severity::from_ratio(0.99), Severity::Normal);
        assert_eq!(Severity::from_ratio(1.0), Severity::Low);
        assert_eq!(Severity::from_ratio(3.9), Severity::Medium);
        assert_eq!(Severity::from_ratio(4.0), Severity::High);
        assert_eq!(Severity::from_ratio(80.0), Severity::Critical);
    }

    #[test]
    fn explanation_names_channel_statistic_and_share() {
        let text = explanation_text(
            Severity::High,
            "vibration",
            "vibration_max",
            7.14,
            0.823,
            5.0,
        );
        assert!(
            text.starts_with(
                "vibration max is 7.1 sd above normal; vibration explains 82% of the error"
            ),
            "{text}"
        );
        let text = explanation_text(
            Severity::Low,
            "temperature",
            "temperature_std",
            -11.0,
            0.5,
            1.2,
        );
        assert!(
            text.contains("temperature std is 11.0 sd below normal"),
            "{text}"
        );
    }
}
