//! The model in service and the drift of live windows from its training data, kept together:
//! a reload swaps both under one lock, so drift is never measured against the wrong model, and
//! whatever reads them (metrics, `/api/model`, `/api/drift`) sees the same model. Beside it, the
//! challenger the model store names, if any (scored in shadow), and where each came from.

use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use domain::WindowRecord;
use scoring::drift::{DriftMonitor, DriftReport};
use scoring::{Model, ServingModel};

pub struct InService {
    model: ServingModel,
    /// `None` when the model carries no training quantiles.
    drift: Mutex<Option<DriftMonitor>>,
    drift_hours: u32,
    /// Where the champion came from (changed with it).
    origin: Mutex<Origin>,
    /// The challenger the model store names, scored in shadow.
    challenger: RwLock<Option<(Arc<Model>, Origin)>>,
    /// How the challenger compares with the champion.
    pub shadow: crate::shadow::Shadow,
    /// Drift long enough to recommend retraining.
    pub retrain: crate::retrain::RetrainWatch,
}

/// Where a model in service came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `ANOMALY_MODEL_PATH`, read at start-up.
    Packaged { sha256: String },
    /// The model store's pointer.
    Store { blob: String, sha256: String },
    /// `POST /api/reload` (this instance only).
    Reload { source: String },
}

impl Origin {
    /// The file's SHA-256, when known.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            Origin::Packaged { sha256 } | Origin::Store { sha256, .. } => Some(sha256),
            Origin::Reload { .. } => None,
        }
    }
}

fn drift_monitor(model: &Model, hours: u32) -> Option<DriftMonitor> {
    DriftMonitor::new(
        &model.info.model_version,
        &model.info.feature_names,
        &model.info.feature_quantiles,
        hours,
    )
}

impl InService {
    pub fn new(model: Model, origin: Origin, drift_hours: u32) -> Self {
        Self::with_retrain_after(model, origin, drift_hours, crate::configuration::DEFAULT_RETRAIN_AFTER)
    }

    /// As [`InService::new`], recommending retraining after `retrain_after` of unbroken drift.
    pub fn with_retrain_after(model: Model, origin: Origin, drift_hours: u32, retrain_after: std::time::Duration) -> Self {
        InService {
            drift: Mutex::new(drift_monitor(&model, drift_hours)),
            model: ServingModel::new(model),
            drift_hours,
            origin: Mutex::new(origin),
            challenger: RwLock::new(None),
            shadow: Default::default(),
            retrain: crate::retrain::RetrainWatch::new(retrain_after),
        }
    }

    pub fn origin(&self) -> Origin {
        self.origin.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The challenger and where it came from, if one is named.
    pub fn challenger(&self) -> Option<(Arc<Model>, Origin)> {
        self.challenger.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names (or with `None`, clears) the challenger.
    pub fn set_challenger(&self, challenger: Option<(Model, Origin)>) {
        *self.challenger.write().unwrap_or_else(|p| p.into_inner()) =
            challenger.map(|(m, o)| (Arc::new(m), o));
    }

    pub fn get(&self) -> Arc<Model> {
        self.model.get()
    }

    /// Puts `model` in service; batches already running finish on the one it replaces. Drift
    /// starts over against the new model's training data, and the shadow comparison against
    /// the new champion.
    pub fn replace(&self, model: Model, origin: Origin) -> Arc<Model> {
        let old = self.model.replace(model, |m| {
            *self.drift_lock() = drift_monitor(m, self.drift_hours);
            *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = origin;
        });
        self.shadow.reset();
        old
    }

    fn drift_lock(&self) -> std::sync::MutexGuard<'_, Option<DriftMonitor>> {
        self.drift.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a batch's decoded windows to the drift monitor, if `model_version` (the model that
    /// scored them) is still in service: windows of a batch that straddled a reload are not
    /// measured against the new model's training data.
    pub fn observe(&self, model_version: &str, windows: &[WindowRecord]) {
        // The monitor names its model: one lock, never the model's (a reload takes the model's
        // lock and then this one).
        if let Some(monitor) = self
            .drift_lock()
            .as_mut()
            .filter(|m| m.model_version() == model_version)
        {
            monitor.observe(windows);
        }
    }

    /// Drift of the live windows from the training data; `None` when the model carries no
    /// training quantiles.
    pub fn drift(&self) -> Option<DriftReport> {
        self.drift_lock().as_ref().map(DriftMonitor::report)
    }

    /// Per-feature PSI once windows have been seen (the drift gauges).
    pub fn psi(&self) -> Vec<(String, f64)> {
        self.drift()
            .map(|r| {
                r.features
                    .into_iter()
                    .filter_map(|f| Some((f.feature, f.psi?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_model() -> Model {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default.onnx");
        Model::load_file(std::path::Path::new(path)).expect("default model")
    }

    #[test]
    fn windows_scored_by_a_replaced_model_are_not_measured_against_the_new_one() {
        let in_service = InService::new(default_model(), Origin::Packaged { sha256: String::new() }, 24);
        let old = in_service.get().info.model_version.clone();
        let mut next = default_model();
        next.info.model_version = format!("{old}-next");
        in_service.replace(next, Origin::Reload { source: "test".into() });
        let window = WindowRecord {
            device_id: "d".into(),
            window_end: "2026-01-01T00:01:00Z".into(),
            window_end_ms: 1_767_225_660_000,
            features: in_service.get().info.feature_mean.iter().map(|&m| m as f32).collect(),
        };
        in_service.observe(&old, std::slice::from_ref(&window));
        assert_eq!(in_service.drift().unwrap().windows, 0, "the old model's batch is left out");
        in_service.observe(&format!("{old}-next"), std::slice::from_ref(&window));
        assert_eq!(in_service.drift().unwrap().windows, 1);
    }
}
