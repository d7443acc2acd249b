//! `sensor-anomaly score`: JSON lines of windows in, scored JSON lines out. Unreadable lines are
//! reported through a callback and skipped; the rest are scored in batches.

use std::io::{BufRead, Write};

use serde_json::Value;

use domain::WindowRecord;
use ingress::events;
use scoring::{Model, ModelError};

/// Windows per ONNX Runtime run.
const BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ScoreFileError {
    #[error("cannot read line {line}: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot write scored windows: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write scored windows: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreFileSummary {
    pub scored: usize,
    pub refused: usize,
}

/// One JSON line as a window record for the model's features, or why it cannot be one.
pub fn window_record(line: &str, feature_names: &[String]) -> Result<WindowRecord, String> {
    serde_json::from_str::<Value>(line)
        .map_err(|e| e.to_string())
        .and_then(|v| match v {
            Value::Object(map) => Ok(map),
            _ => Err("not a JSON object".to_string()),
        })
        .and_then(|m| events::extract(&m, feature_names).map_err(|e| e.to_string()))
}

pub fn score_lines(
    model: &Model,
    input: impl BufRead,
    out: &mut impl Write,
    mut refused: impl FnMut(usize, String),
) -> Result<ScoreFileSummary, ScoreFileError> {
    let mut summary = ScoreFileSummary::default();
    let mut batch: Vec<WindowRecord> = Vec::new();
    let flush =
        |batch: &mut Vec<WindowRecord>, out: &mut dyn Write| -> Result<usize, ScoreFileError> {
            let results = model.score(batch)?;
            for r in &results {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
            batch.clear();
            Ok(results.len())
        };
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|source| ScoreFileError::Read {
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match window_record(&line, &model.info.feature_names) {
            Ok(r) => batch.push(r),
            Err(reason) => {
                summary.refused += 1;
                refused(i + 1, reason);
            }
        }
        if batch.len() >= BATCH {
            summary.scored += flush(&mut batch, out)?;
        }
    }
    summary.scored += flush(&mut batch, out)?;
    Ok(summary)
}
