//! `POST /api/reload`: put another model in service without a restart.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::AppStateRef;
use crate::telemetry::events::ModelReloaded;
use crate::http::error::ApiError;
use scoring::Model;

#[derive(Deserialize)]
struct ReloadRequest {
    path: Option<String>,
}

/// `POST /api/reload`: `{"path": "new.onnx"}` (a regular file inside `ANOMALY_MODELS_DIR`), or
/// the model bytes as `application/octet-stream`, or no body to re-read `ANOMALY_MODEL_PATH`.
/// The new model is fully loaded and probed before it replaces the old one; a broken file
/// changes nothing.
pub async fn reload(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Some(follower) = &state.follower {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "this handler follows the model store {}: promote a model there (`sensor-anomaly model promote`) so that every instance serves it; a reload would change this instance only",
                follower.target()
            ),
            None,
        ));
    }
    let bytes = body?;
    let is_binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // Media types are case-insensitive.
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/octet-stream"));
    let path = if is_binary || bytes.is_empty() {
        None
    } else {
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {e}"),
                None,
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be {\"path\": \"<file in ANOMALY_MODELS_DIR>\"}",
                None,
            ));
        }
        let request: ReloadRequest = serde_json::from_value(value).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {e}"),
                None,
            )
        })?;
        Some(
            request
                .path
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "`path` must name the model file",
                        Some("path".into()),
                    )
                })?,
        )
    };
    let named = path.is_some();
    let default_path = state.settings.model_path.clone();
    let models_dir = state.settings.models_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || -> Result<Model, ReloadFailure> {
        Ok(match (is_binary, path) {
            (true, _) => Model::load_bytes(&bytes, "uploaded")?,
            (false, Some(p)) => {
                let file = model_file(&models_dir, &p)?;
                Model::load_bytes(&file.bytes, &file.source)?
            }
            (false, None) => Model::load_file(&default_path)?,
        })
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload task failed: {e}"),
            None,
        )
    })?;
    match loaded {
        Ok(model) => {
            let new_version = model.info.model_version.clone();
            let source = model.source.clone();
            let old = state.model.replace(model, crate::model::Origin::Reload { source: source.clone() });
            state.emit(ModelReloaded::Replaced {
                from: &old.info.model_version,
                to: &new_version,
                source: &source,
            });
            Ok(Json(json!({"status": "reloaded", "model_version": new_version, "previous_version": old.info.model_version, "source": source})).into_response())
        }
        Err(e) => {
            let serving = state.model.get().info.model_version.clone();
            state.emit(ModelReloaded::Refused {
                serving: &serving,
                error: &e,
            });
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("model not reloaded, still serving {serving}: {e}"),
                named.then(|| "path".into()),
            ))
        }
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
enum ReloadFailure {
    #[error(transparent)]
    File(#[from] ModelFileRefusal),
    #[error(transparent)]
    Model(#[from] scoring::ModelError),
}

/// The largest model file reload reads (the same cap as an uploaded model).
pub const MAX_MODEL_FILE_BYTES: u64 = super::super::MAX_MODEL_BYTES as u64;

/// Why a named model file is not read. The messages never say whether something exists outside
/// the models folder.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelFileRefusal {
    #[error("`path` must name a regular .onnx file inside the models folder (ANOMALY_MODELS_DIR)")]
    NotInModelsDir,
    #[error("the model file is larger than {MAX_MODEL_FILE_BYTES} bytes")]
    TooLarge,
    #[error("the model file could not be read: {0}")]
    Read(std::io::ErrorKind),
}

/// A model file read from inside the models folder.
pub struct ModelFile {
    pub bytes: Vec<u8>,
    /// The canonical path, for logs and `/api/model`.
    pub source: String,
}

/// Reads `requested` (relative to `models_dir`, or absolute inside it) when it resolves, links
/// followed, to a regular file inside `models_dir` no larger than [`MAX_MODEL_FILE_BYTES`].
/// The file type is checked before opening, so a FIFO or device is never opened (opening a
/// FIFO blocks), and the read stops one byte past the cap whatever the file claims.
pub fn model_file(models_dir: &std::path::Path, requested: &str) -> Result<ModelFile, ModelFileRefusal> {
    use std::io::Read;
    let root = std::fs::canonicalize(models_dir).map_err(|_| ModelFileRefusal::NotInModelsDir)?;
    let path = std::fs::canonicalize(root.join(requested)).map_err(|_| ModelFileRefusal::NotInModelsDir)?;
    if !path.starts_with(&root) {
        return Err(ModelFileRefusal::NotInModelsDir);
    }
    let meta = std::fs::metadata(&path).map_err(|_| ModelFileRefusal::NotInModelsDir)?;
    if !meta.is_file() {
        return Err(ModelFileRefusal::NotInModelsDir);
    }
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(ModelFileRefusal::TooLarge);
    }
    let file = std::fs::File::open(&path).map_err(|e| ModelFileRefusal::Read(e.kind()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODEL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ModelFileRefusal::Read(e.kind()))?;
    if bytes.len() as u64 > MAX_MODEL_FILE_BYTES {
        return Err(ModelFileRefusal::TooLarge);
    }
    Ok(ModelFile {
        bytes,
        source: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_models_folder_are_read() {
        let base = std::env::temp_dir().join(format!("reload-confine-{}", std::process::id()));
        let models = base.join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join("m.onnx"), b"bytes").unwrap();
        std::fs::write(base.join("secret.txt"), b"outside").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), models.join("link.onnx")).unwrap();
        let fifo = models.join("fifo.onnx");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success());

        assert_eq!(model_file(&models, "m.onnx").unwrap().bytes, b"bytes");
        let inside_abs = models.join("m.onnx").display().to_string();
        assert_eq!(model_file(&models, &inside_abs).unwrap().bytes, b"bytes");
        for outside in ["../secret.txt", "link.onnx", "/etc/passwd", "/dev/zero", "missing.onnx", "."] {
            assert_eq!(
                model_file(&models, outside).err(),
                Some(ModelFileRefusal::NotInModelsDir),
                "{outside}"
            );
        }
        if made.unwrap_or(false) {
            // Refused without opening it: opening a FIFO for reading would block.
            assert_eq!(model_file(&models, "fifo.onnx").err(), Some(ModelFileRefusal::NotInModelsDir));
        }
        let big = std::fs::File::create(models.join("big.onnx")).unwrap();
        big.set_len(MAX_MODEL_FILE_BYTES + 1).unwrap();
        assert_eq!(model_file(&models, "big.onnx").err(), Some(ModelFileRefusal::TooLarge));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
