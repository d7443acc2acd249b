//! Locating and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`, so nothing is downloaded at build time. The library is
//! looked for, in order: `ORT_DYLIB_PATH` (a file, or a folder holding it), next to the
//! executable (how the deployed function bundle ships it), and the set-up folder `.ort/lib` of
//! the source checkout that `scripts/setup.sh` fills from the `onnxruntime` Python wheel.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

/// The file name the library is looked for under (the wheel ships `libonnxruntime.so.1.31.1`).
const LIB_PREFIX: &str = "libonnxruntime.so";

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked in {searched}); run scripts/setup.sh, or set ORT_DYLIB_PATH to libonnxruntime.so.1.31.x"
    )]
    NotFound { searched: String },
    #[error("ONNX Runtime library at {path} could not be loaded: {reason}")]
    Load { path: String, reason: String },
}

static ENVIRONMENT: OnceLock<Result<Environment, RuntimeError>> = OnceLock::new();

/// The candidate places, in search order (see the module docs).
pub fn search_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        paths.push(dir);
    }
    paths.push(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join(".ort")
            .join("lib"),
    );
    paths
}

/// Finds the library file: a path that is a file is taken as is; in a folder, the
/// highest-versioned `libonnxruntime.so*` wins.
pub fn locate() -> Result<PathBuf, RuntimeError> {
    let candidates = search_paths();
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
        if let Ok(entries) = std::fs::read_dir(candidate) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(LIB_PREFIX) && !n.ends_with(".pdb"))
                })
                .collect();
            found.sort();
            if let Some(best) = found.pop() {
                return Ok(best);
            }
        }
    }
    Err(RuntimeError::NotFound {
        searched: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The process-wide ONNX Runtime environment, loaded on first use.
pub fn environment() -> Result<&'static Environment, RuntimeError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        let path = locate()?;
        let load_error = |reason: String| RuntimeError::Load {
            path: path.display().to_string(),
            reason,
        };
        ort::init_from(&path)
            .map_err(|e| load_error(e.to_string()))?
            .with_name("sensor-anomaly")
            .build()
            .map_err(|e| load_error(e.to_string()))
    });
    loaded.as_ref().map_err(Clone::clone)
}
