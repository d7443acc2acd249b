//! Building the application: settings → model → store → router → listener.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::net::TcpListener;

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::scoring::{Model, ModelError};
use crate::store::{AnomalyStore, SqliteStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot load model {path}: {error}")]
    Model { path: String, error: ModelError },
    #[error("cannot open the anomaly store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Shared by every request. The model sits behind a lock only long enough to clone its `Arc`,
/// so a reload swaps it atomically while in-flight requests finish on the old one.
pub struct AppState {
    pub settings: Settings,
    model: RwLock<Arc<Model>>,
    pub store: Arc<dyn AnomalyStore>,
    pub metrics: Metrics,
    pub started: Instant,
}

impl AppState {
    pub fn new(settings: Settings, model: Model, store: Arc<dyn AnomalyStore>) -> Self {
        let metrics = Metrics::new();
        metrics.set_model(&model.info.model_version, &model.info.detector);
        AppState {
            settings,
            model: RwLock::new(Arc::new(model)),
            store,
            metrics,
            started: Instant::now(),
        }
    }

    pub fn model(&self) -> Arc<Model> {
        match self.model.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `model` in service and returns the one it replaces.
    pub fn replace_model(&self, model: Model) -> Arc<Model> {
        let mut guard = match self.model.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Under the lock, so concurrent reloads cannot leave the metric naming another model.
        self.metrics
            .set_model(&model.info.model_version, &model.info.detector);
        std::mem::replace(&mut *guard, Arc::new(model))
    }
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Loads the model and opens the store named by `settings`, and binds `127.0.0.1:port`
    /// (port 0 picks a free one, for tests and the demo).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let model =
            Model::load_file(&settings.model_path).map_err(|error| StartupError::Model {
                path: settings.model_path.display().to_string(),
                error,
            })?;
        let store = Arc::new(SqliteStore::open(
            &settings.sqlite_path,
            settings.store_timeout,
        )?);
        Self::with_parts(settings, model, store).await
    }

    pub async fn with_parts(
        settings: Settings,
        model: Model,
        store: Arc<dyn AnomalyStore>,
    ) -> Result<Self, StartupError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], settings.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| StartupError::Bind { addr, error })?;
        tracing::info!(
            model = %model.info.model_version,
            features = model.feature_count(),
            threshold = model.info.threshold,
            store = store.kind(),
            "handler ready on {}",
            listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let state = Arc::new(AppState::new(settings, model, store));
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let router = crate::http::router(self.state);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
