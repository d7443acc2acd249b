//! Following the model store: every `ANOMALY_MODEL_POLL_SECS` the handler reads the pointer's
//! ETag (one small request); when it moved, it reads the pointer and puts in service the
//! champion and challenger it names. A model is served only after its bytes match the
//! pointer's SHA-256 and it passes the checks of any model load (contract, metadata, a probe
//! inference); otherwise the serving model stays, the refusal is logged and counted, and that
//! file is not tried again in that role until the pointer changes. No pointer: the packaged
//! model.
//!
//! Every instance polls on its own, so the fleet has switched at most one poll interval (plus a
//! download and a load) after a promotion.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use model_store::{Etag, ModelRef, ModelStore, StoreError};
use scoring::{Model, ModelError};
use tokio_util::sync::CancellationToken;

use crate::model::{InService, Origin};
use crate::telemetry::events::{InternalEvent, ModelFollowed, Role};
use crate::telemetry::Metrics;

/// Why a named model was not put in service.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the model does not load: {0}")]
    Model(#[from] ModelError),
    #[error(transparent)]
    VersionMismatch(#[from] VersionMismatch),
    #[error("the challenger reads features the champion's windows do not carry ({}): it cannot be scored on the same windows", .0.join(", "))]
    FeatureMismatch(Vec<String>),
    #[error("loading the model stopped: {0}")]
    Join(String),
}

/// A stored file whose own `model_version` is not the one its pointer entry names (a file
/// uploaded under another model's name): serving it would report the wrong model on every
/// alert, so the handler refuses it, and the CLI refuses to make it the champion.
#[derive(Debug, thiserror::Error)]
#[error("the file's metadata says model_version {found:?}, the pointer says {expected:?}")]
pub struct VersionMismatch {
    pub expected: String,
    pub found: String,
}

pub fn check_version(model: &Model, named: &ModelRef) -> Result<(), VersionMismatch> {
    if model.info.model_version == named.model_version {
        return Ok(());
    }
    Err(VersionMismatch {
        expected: named.model_version.clone(),
        found: model.info.model_version.clone(),
    })
}

impl FollowError {
    /// Worth trying again at the next poll (the store was away), as opposed to a file that
    /// will never load.
    pub fn is_transient(&self) -> bool {
        matches!(self, FollowError::Store(e) if e.is_transient())
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Polled {
    /// The pointer's ETag was the one already followed.
    pub unchanged: bool,
    pub champion_switched: bool,
    pub challenger_changed: bool,
    pub refused: usize,
    /// The store could not be read (tried again next poll).
    pub unreachable: bool,
}

#[derive(Default)]
struct Seen {
    /// The pointer version fully followed (None: not yet, or no pointer).
    etag: Option<Etag>,
    pointer_seen: bool,
    /// Files refused in a role under the pointer version `refused_under`, by SHA-256: reported
    /// once, not downloaded again while that version stands. Any change to the pointer clears
    /// them: a challenger refused for features the champion lacks may fit the next champion.
    refused: HashSet<(Role, String)>,
    refused_under: Option<Etag>,
}

pub struct Follower {
    store: ModelStore,
    model: Arc<InService>,
    packaged: PathBuf,
    poll: Duration,
    seen: tokio::sync::Mutex<Seen>,
}

impl Follower {
    pub fn new(store: ModelStore, model: Arc<InService>, packaged: PathBuf, poll: Duration) -> Self {
        Follower {
            store,
            model,
            packaged,
            poll,
            seen: tokio::sync::Mutex::new(Seen::default()),
        }
    }

    pub fn target(&self) -> String {
        self.store.target()
    }

    /// Polls until `stop` is cancelled, recording on `state`'s metrics.
    pub async fn run(self: Arc<Self>, state: Arc<crate::http::AppState>, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate: start-up already polled
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {
                    self.poll_once(&state.metrics).await;
                }
            }
        }
    }

    /// One look at the pointer, and whatever change it asks for.
    pub async fn poll_once(&self, metrics: &Metrics) -> Polled {
        let mut seen = self.seen.lock().await;
        let mut polled = Polled::default();
        // The pointer could not be read: the serving models stay, the next poll tries again.
        let unreachable = |error: StoreError| {
            ModelFollowed::Unreachable { store: &self.store.target(), error: &error }.emit(metrics);
            Polled { unreachable: true, ..Polled::default() }
        };
        let etag = match self.store.pointer_etag().await {
            Ok(etag) => etag,
            Err(error) => return unreachable(error),
        };
        if seen.pointer_seen && etag == seen.etag {
            polled.unchanged = true;
            return polled;
        }
        let pointer = match self.store.pointer().await {
            Ok(pointer) => pointer,
            Err(error) => return unreachable(error),
        };
        let Some(versioned) = pointer else {
            // No pointer (never set, or deleted): the packaged model.
            if !matches!(self.model.origin(), Origin::Packaged { .. }) {
                let started = std::time::Instant::now();
                match load_packaged(self.packaged.clone()).await {
                    Ok((model, origin)) => {
                        self.switch_champion(model, origin, "packaged", started.elapsed(), metrics);
                        polled.champion_switched = true;
                    }
                    Err(error) => {
                        ModelFollowed::Refused { role: Role::Champion, model_version: "packaged", error: &error }.emit(metrics);
                        polled.refused += 1;
                    }
                }
            }
            if self.model.challenger().is_some() {
                self.model.set_challenger(None);
                ModelFollowed::ChallengerCleared.emit(metrics);
                polled.challenger_changed = true;
            }
            seen.etag = None;
            seen.pointer_seen = true;
            return polled;
        };
        let pointer = versioned.pointer;
        let mut complete = true;
        if seen.refused_under.as_ref() != Some(&versioned.etag) {
            seen.refused.clear();
            seen.refused_under = Some(versioned.etag.clone());
        }

        if self.model.origin().sha256() != Some(pointer.champion.sha256.as_str()) && !seen.refused.contains(&(Role::Champion, pointer.champion.sha256.clone())) {
            let started = std::time::Instant::now();
            match self.fetch(&pointer.champion).await {
                Ok(model) => {
                    let origin = Origin::Store { blob: pointer.champion.blob.clone(), sha256: pointer.champion.sha256.clone() };
                    self.switch_champion(model, origin, &pointer.champion.blob, started.elapsed(), metrics);
                    polled.champion_switched = true;
                }
                Err(error) => self.refused(&mut seen, &mut polled, &mut complete, Role::Champion, &pointer.champion, &error, metrics),
            }
        }
        if !complete {
            // The champion could not be fetched this time: the challenger waits for it, rather
            // than being checked against the champion it replaces.
            return polled;
        }
        // A challenger already in service must still fit the champion now serving.
        if polled.champion_switched {
            if let Some((challenger, origin)) = self.model.challenger() {
                let champion = self.model.get();
                if let (Err(missing), Some(named)) = (
                    crate::shadow::feature_map(&champion.info.feature_names, &challenger.info.feature_names),
                    pointer.challenger.as_ref().filter(|c| origin.sha256() == Some(c.sha256.as_str())),
                ) {
                    self.model.set_challenger(None);
                    let error = FollowError::FeatureMismatch(missing);
                    self.refused(&mut seen, &mut polled, &mut complete, Role::Challenger, named, &error, metrics);
                    polled.challenger_changed = true;
                }
            }
        }

        let current = self.model.challenger().and_then(|(_, o)| o.sha256().map(str::to_string));
        match &pointer.challenger {
            None if current.is_some() => {
                self.model.set_challenger(None);
                ModelFollowed::ChallengerCleared.emit(metrics);
                polled.challenger_changed = true;
            }
            Some(named) if current.as_deref() != Some(named.sha256.as_str()) && !seen.refused.contains(&(Role::Challenger, named.sha256.clone())) => {
                let champion = self.model.get();
                let fetched = self.fetch(named).await.and_then(|m| {
                    match crate::shadow::feature_map(&champion.info.feature_names, &m.info.feature_names) {
                        Ok(_) => Ok(m),
                        Err(missing) => Err(FollowError::FeatureMismatch(missing)),
                    }
                });
                match fetched {
                    Ok(model) => {
                        let version = model.info.model_version.clone();
                        self.model.set_challenger(Some((model, Origin::Store { blob: named.blob.clone(), sha256: named.sha256.clone() })));
                        ModelFollowed::ChallengerSet { model_version: &version, blob: &named.blob }.emit(metrics);
                        polled.challenger_changed = true;
                    }
                    Err(error) => self.refused(&mut seen, &mut polled, &mut complete, Role::Challenger, named, &error, metrics),
                }
            }
            _ => {}
        }
        // A transient failure leaves the ETag unrecorded, so the next poll tries again.
        if complete {
            seen.etag = Some(versioned.etag);
            seen.pointer_seen = true;
        }
        polled
    }

    fn switch_champion(&self, model: Model, origin: Origin, source: &str, took: Duration, metrics: &Metrics) {
        let to = model.info.model_version.clone();
        let old = self.model.replace(model, origin);
        ModelFollowed::Switched { from: &old.info.model_version, to: &to, source, took }.emit(metrics);
    }

    /// Reports a model that was not put in service. A store that could not be read is
    /// "unreachable" and leaves the poll incomplete, to be tried again next time; anything else
    /// is a refusal, counted once for this pointer version and role.
    #[allow(clippy::too_many_arguments)]
    fn refused(
        &self,
        seen: &mut Seen,
        polled: &mut Polled,
        complete: &mut bool,
        role: Role,
        named: &ModelRef,
        error: &FollowError,
        metrics: &Metrics,
    ) {
        if let FollowError::Store(store_error) = error {
            if store_error.is_transient() {
                ModelFollowed::Unreachable { store: &self.store.target(), error: store_error }.emit(metrics);
                polled.unreachable = true;
                *complete = false;
                return;
            }
        }
        ModelFollowed::Refused { role, model_version: &named.model_version, error }.emit(metrics);
        polled.refused += 1;
        seen.refused.insert((role, named.sha256.clone()));
    }

    /// Downloads (verified against the pointer's SHA-256 and size) and loads a named model.
    async fn fetch(&self, named: &ModelRef) -> Result<Model, FollowError> {
        let bytes = self.store.download_model(named).await?;
        let source = format!("{}/{}", self.store.target(), named.blob);
        let model = tokio::task::spawn_blocking(move || Model::load_bytes(&bytes, &source))
            .await
            .map_err(|e| FollowError::Join(e.to_string()))??;
        check_version(&model, named)?;
        Ok(model)
    }
}

/// The packaged model and its SHA-256.
pub fn packaged(path: &std::path::Path) -> Result<(Model, Origin), ModelError> {
    let bytes = std::fs::read(path).map_err(|error| ModelError::Read {
        path: path.display().to_string(),
        error,
    })?;
    let sha256 = model_store::sha256_hex(&bytes);
    let model = Model::load_bytes(&bytes, &path.display().to_string())?;
    Ok((model, Origin::Packaged { sha256 }))
}

async fn load_packaged(path: PathBuf) -> Result<(Model, Origin), FollowError> {
    tokio::task::spawn_blocking(move || packaged(&path))
        .await
        .map_err(|e| FollowError::Join(e.to_string()))?
        .map_err(FollowError::from)
}
