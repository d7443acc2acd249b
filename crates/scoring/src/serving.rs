//! The model in service. It sits behind a lock only long enough to clone its `Arc`, so a reload
//! swaps it atomically while in-flight batches finish on the old one.

use std::sync::{Arc, RwLock};

use super::model::Model;

pub struct ServingModel {
    current: RwLock<Arc<Model>>,
}

impl ServingModel {
    pub fn new(model: Model) -> Self {
        ServingModel {
            current: RwLock::new(Arc::new(model)),
        }
    }

    pub fn get(&self) -> Arc<Model> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `model` in service and returns the one it replaces. `announce` runs under the lock,
    /// so concurrent reloads cannot leave (say) a metric naming another model than the one served.
    pub fn replace(&self, model: Model, announce: impl FnOnce(&Model)) -> Arc<Model> {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        announce(&model);
        std::mem::replace(&mut *guard, Arc::new(model))
    }
}
