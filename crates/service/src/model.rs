//! The model in service and the drift of live windows from its training data, kept together:
//! a reload swaps both under one lock, so drift is never measured against the wrong model, and
//! whatever reads them (metrics, `/api/model`, `/api/drift`) sees the same model.

use std::sync::{Arc, Mutex};

use domain::WindowRecord;
use scoring::drift::{DriftMonitor, DriftReport};
use scoring::{Model, ServingModel};

pub struct InService {
    model: ServingModel,
    /// `None` when the model carries no training quantiles.
    drift: Mutex<Option<DriftMonitor>>,
    drift_hours: u32,
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
    pub fn new(model: Model, drift_hours: u32) -> Self {
        InService {
            drift: Mutex::new(drift_monitor(&model, drift_hours)),
            model: ServingModel::new(model),
            drift_hours,
        }
    }

    pub fn get(&self) -> Arc<Model> {
        self.model.get()
    }

    /// Puts `model` in service; batches already running finish on the one it replaces. Drift
    /// starts over against the new model's training data.
    pub fn replace(&self, model: Model) -> Arc<Model> {
        self.model.replace(model, |m| {
            *self.drift_lock() = drift_monitor(m, self.drift_hours);
        })
    }

    fn drift_lock(&self) -> std::sync::MutexGuard<'_, Option<DriftMonitor>> {
        self.drift.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a batch's decoded windows to the drift monitor.
    pub fn observe(&self, windows: &[WindowRecord]) {
        if let Some(monitor) = self.drift_lock().as_mut() {
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
            .filter(|r| r.windows > 0)
            .map(|r| r.features.into_iter().map(|f| (f.feature, f.psi)).collect())
            .unwrap_or_default()
    }
}
