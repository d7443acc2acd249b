//! `sensor-anomaly bench-model`: ONNX Runtime's own throughput on given windows, the ceiling the
//! handler's `ScoreWindows` throughput is compared with (`scripts/bench.py`).
//!
//! It times [`Model::run`] alone (one session, one intra-op thread, as the handler configures
//! them): the tensor in, the contributions out, nothing the handler adds around it. It also times
//! [`Model::score`] (the run plus the explanation of every window) at the same batch size, so a
//! report can say how much of the scoring step is the model.

use std::time::{Duration, Instant};

use serde::Serialize;

use domain::WindowRecord;
use scoring::{Model, ModelError};

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Rows per ONNX Runtime run.
    pub batch: usize,
    pub runs: usize,
    pub windows_per_second: f64,
    /// Median wall time of one run, microseconds.
    pub median_run_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelBench {
    pub model_version: String,
    pub features: usize,
    /// `Model::run` alone, per batch size asked for.
    pub run: Vec<Throughput>,
    /// `Model::score` (run + explanations), per batch size asked for.
    pub score: Vec<Throughput>,
}

/// Times `model` on `windows` (cycled to fill each batch) for about `budget` per batch size and
/// kind.
pub fn bench(
    model: &Model,
    windows: &[WindowRecord],
    batches: &[usize],
    budget: Duration,
) -> Result<ModelBench, ModelError> {
    if windows.is_empty() {
        return Err(ModelError::Inference("no windows to time the model on".into()));
    }
    let mut out = ModelBench {
        model_version: model.info.model_version.clone(),
        features: model.feature_count(),
        run: Vec::new(),
        score: Vec::new(),
    };
    for &batch in batches.iter().filter(|b| **b > 0) {
        let records: Vec<WindowRecord> = windows.iter().cycle().take(batch).cloned().collect();
        let rows: Vec<f32> = records.iter().flat_map(|r| r.features.iter().copied()).collect();
        out.run.push(time(batch, budget, || {
            model.run(rows.clone(), batch).map(drop)
        })?);
        out.score.push(time(batch, budget, || model.score(&records).map(drop))?);
    }
    Ok(out)
}

fn time(
    batch: usize,
    budget: Duration,
    mut once: impl FnMut() -> Result<(), ModelError>,
) -> Result<Throughput, ModelError> {
    // Warm-up: the first runs allocate ONNX Runtime's arenas.
    for _ in 0..3 {
        once()?;
    }
    let mut runs = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || runs.len() < 5 {
        let t = Instant::now();
        once()?;
        runs.push(t.elapsed().as_secs_f64());
    }
    let total: f64 = runs.iter().sum();
    runs.sort_by(f64::total_cmp);
    Ok(Throughput {
        batch,
        runs: runs.len(),
        windows_per_second: (runs.len() * batch) as f64 / total,
        median_run_us: runs[runs.len() / 2] * 1e6,
    })
}
