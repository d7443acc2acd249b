//! Loading an ONNX model that follows the contract and running it on a batch of windows.
//!
//! The model file is the whole contract (see `models/README.md`): input `features` `[N, F]` of
//! raw values, output `contributions` `[N, F]` whose row sum is the anomaly score, and metadata
//! naming the features, their channels, the threshold and the training statistics. Any detector
//! exported that way is served unchanged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::Serialize;

use super::runtime::{self, RuntimeError};
use domain::{name_fits, ChannelValues, ScoredWindow, Severity, WindowRecord, MAX_NAME_UNITS};

pub const INPUT_NAME: &str = "features";
pub const OUTPUT_NAME: &str = "contributions";
/// Optional output `[N, F]`: what the model expected each feature to be, in raw units. With it,
/// explanations measure how far a reading is from its expected value; without it, from the
/// training mean.
pub const EXPECTED_NAME: &str = "expected";
/// Metadata every model must carry (`schemas/model-contract.json`, which the training package
/// reads; a test holds these names to it).
pub const REQUIRED_METADATA: [&str; 6] = [
    "anomaly.model_version",
    "anomaly.feature_names",
    "anomaly.feature_channels",
    "anomaly.feature_mean",
    "anomaly.feature_std",
    "anomaly.threshold",
];

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
    pub(super) channel_of_feature: Vec<usize>,
    /// `info.channels`, shared by every window's per-channel values.
    pub(super) channel_names: Arc<[String]>,
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
        let channel_names = info.channels.clone().into();
        let model = Model {
            info,
            channel_of_feature,
            channel_names,
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

    /// Scores a batch of validated windows, each with its full explanation.
    pub fn score(&self, records: &[WindowRecord]) -> Result<Vec<ScoredWindow>, ModelError> {
        let verdicts = self.assess(records)?;
        Ok(records
            .iter()
            .enumerate()
            .map(|(i, record)| verdicts.explain(i, record))
            .collect())
    }

    /// One run for the batch and each window's score, severity and per-channel split; the
    /// explanation (sentence, top feature) is built only for the windows asked for
    /// ([`Verdicts::explain`]), which in the handler are the anomalies.
    pub fn assess(&self, records: &[WindowRecord]) -> Result<Verdicts<'_>, ModelError> {
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
        let c = self.channel_names.len();
        let mut by_channel = vec![0f64; records.len() * c];
        for (row, sums) in contributions.chunks_exact(f).zip(by_channel.chunks_exact_mut(c)) {
            for (i, &value) in row.iter().enumerate() {
                sums[self.channel_of_feature[i]] += f64::from(value);
            }
        }
        let per_window_us = started.elapsed().as_secs_f64() * 1e6 / records.len().max(1) as f64;
        Ok(Verdicts {
            model: self,
            contributions,
            expected,
            by_channel,
            per_window_us,
        })
    }
}

/// A batch's verdicts from one run: what every window needs (score, severity, score per
/// channel) at once, the full explanation of a window on demand.
pub struct Verdicts<'m> {
    model: &'m Model,
    /// `[n, F]`, the model's output.
    contributions: Vec<f32>,
    expected: Option<Vec<f32>>,
    /// `[n, channels]`: the contributions summed per channel.
    by_channel: Vec<f64>,
    per_window_us: f64,
}

impl Verdicts<'_> {
    pub fn len(&self) -> usize {
        self.contributions.len() / self.model.feature_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn channels(&self, i: usize) -> &[f64] {
        let c = self.model.channel_names.len();
        &self.by_channel[i * c..(i + 1) * c]
    }

    /// The window's score: its contributions summed, channel by channel.
    pub fn score(&self, i: usize) -> f64 {
        self.channels(i).iter().sum()
    }

    pub fn severity(&self, i: usize) -> Severity {
        Severity::from_ratio(self.model.ratio(self.score(i)))
    }

    /// Whether the model could score the window: a non-finite score or channel value cannot be
    /// stored or alerted on.
    pub fn is_finite(&self, i: usize) -> bool {
        let channels = self.channels(i);
        channels.iter().sum::<f64>().is_finite() && channels.iter().all(|v| v.is_finite())
    }

    pub fn channel_values(&self, i: usize) -> ChannelValues {
        ChannelValues::new(Arc::clone(&self.model.channel_names), self.channels(i))
    }

    /// The window's full result: score, severity, contributions, top channel and feature, and
    /// the sentence. `record` is the window scored at position `i`.
    pub fn explain(&self, i: usize, record: &WindowRecord) -> ScoredWindow {
        let f = self.model.feature_count();
        let row = i * f..(i + 1) * f;
        let expected = self.expected.as_ref().map(|e| &e[row.clone()]);
        self.model.explain(
            record,
            &self.contributions[row],
            expected,
            self.channels(i),
            self.per_window_us,
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
    let too_long = |name: &String| !name_fits(name);
    if too_long(&model_version) {
        return Err(ModelError::Metadata {
            key: "anomaly.model_version",
            problem: format!("is longer than {MAX_NAME_UNITS} UTF-16 code units"),
        });
    }
    if let Some(name) = feature_channels.iter().find(|c| too_long(c)) {
        return Err(ModelError::Metadata {
            key: "anomaly.feature_channels",
            problem: format!(
                "names a channel longer than {MAX_NAME_UNITS} UTF-16 code units: {name:.40}…"
            ),
        });
    }
    let mut channels: Vec<String> = Vec::new();
    for c in &feature_channels {
        if !channels.contains(c) {
            channels.push(c.clone());
        }
    }
    check_channel_count(channels.len())?;
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

/// An alert lists every channel's contribution: past this many channels it could outgrow what
/// the Event Hubs output binding sends as one message (256 KB in older extensions, 1 MB in the
/// service), so such a model is refused at load rather than its alerts at publish time.
pub const MAX_CHANNELS: usize = domain::MAX_ALERT_CHANNELS;

fn check_channel_count(channels: usize) -> Result<(), ModelError> {
    if channels > MAX_CHANNELS {
        return Err(ModelError::Metadata {
            key: "anomaly.feature_channels",
            problem: format!(
                "names {channels} channels; at most {MAX_CHANNELS} keep an alert under the Event Hubs message limit"
            ),
        });
    }
    Ok(())
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
    #[test]
    fn the_loader_follows_the_contract_file_the_training_package_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/model-contract.json");
        let contract: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(contract["input"], super::INPUT_NAME);
        assert_eq!(contract["output"], super::OUTPUT_NAME);
        assert_eq!(contract["expected"], super::EXPECTED_NAME);
        assert_eq!(contract["metadata"]["required"], serde_json::json!(super::REQUIRED_METADATA));
        // Every key the loader reads is in the contract, required or optional.
        let source = include_str!("model.rs");
        let known: Vec<&str> = ["required", "optional"]
            .iter()
            .flat_map(|k| contract["metadata"][k].as_array().unwrap())
            .filter_map(|v| v.as_str())
            .collect();
        let test_at = source.find("mod tests").unwrap();
        for (at, _) in source[..test_at].match_indices("\"anomaly.") {
            let key: String = source[at + 1..].chars().take_while(|c| *c != '"').collect();
            assert!(known.contains(&key.as_str()), "{key} is not in the contract file");
        }
    }

    use super::*;

    #[test]
    fn a_model_with_more_channels_than_an_alert_can_carry_is_refused() {
        assert!(check_channel_count(MAX_CHANNELS).is_ok());
        let error = check_channel_count(MAX_CHANNELS + 1).unwrap_err();
        assert!(error.to_string().contains("anomaly.feature_channels"), "{error}");
    }
}
