//! Building the application: settings → function.json check → model → store (Azure SQL when
//! its settings are present, else the embedded SQLite) → pipeline →
//! router → listener. The caller passes the shutdown signal in (`main` passes SIGTERM/Ctrl-C,
//! tests a channel), so stopping is the same code path everywhere.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::configuration::Settings;
use crate::http::{self, AppState};
use ingress::function_json::{self, FunctionJsonError};
use pipeline::{Pipeline, PipelineOptions};
use scoring::{Model, ModelError};
use sinks::azure_sql::AzureSqlStore;
use sinks::{AnomalyStore, SqliteStore, StoreError};
use crate::live::LiveView;
use crate::model::{InService, Origin};
use crate::model_follow::Follower;
use model_store::{Caller, ModelStore};
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Bindings(#[from] FunctionJsonError),
    #[error("cannot load model {path}: {source}")]
    Model {
        path: String,
        #[source]
        source: ModelError,
    },
    #[error("cannot open the anomaly store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot set up the model store: {0}")]
    ModelStore(#[from] model_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Checks the trigger binding against `function.json` (when the working directory is a
    /// Functions app), loads the model, opens the store named by `settings`, and binds
    /// `127.0.0.1:port` (port 0 picks a free one, for tests and the demo).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_telemetry(settings, &Telemetry::disabled()).await
    }

    /// As [`Application::build`], with the metrics of `telemetry` (OpenTelemetry instruments
    /// when Application Insights export is on).
    pub async fn build_with_telemetry(
        settings: Settings,
        telemetry: &Telemetry,
    ) -> Result<Self, StartupError> {
        if let Some(checked) =
            function_json::check_score_windows(Path::new("."), &settings.trigger_binding)?
        {
            tracing::debug!(path = %checked.display(), "trigger and output bindings match function.json");
        }
        let model = load_model(&settings)?;
        let store: Arc<dyn AnomalyStore> = match &settings.sql {
            Some(sql) => {
                let (store, _) = AzureSqlStore::connect(sql)?;
                tracing::info!(target = store.target(), "anomalies go to Azure SQL");
                Arc::new(store)
            }
            None => Arc::new(SqliteStore::open(
                &settings.sqlite_path,
                settings.store_timeout,
            )?),
        };
        Self::assemble(settings, model, store, telemetry).await
    }

    /// As [`Application::build`], writing to `store` (one you opened yourself) instead of the
    /// store the settings name.
    pub async fn build_with_store(
        settings: Settings,
        store: Arc<dyn AnomalyStore>,
    ) -> Result<Self, StartupError> {
        let model = load_model(&settings)?;
        Self::assemble(settings, model, store, &Telemetry::disabled()).await
    }

    async fn assemble(
        settings: Settings,
        (model, origin): (Model, Origin),
        store: Arc<dyn AnomalyStore>,
        telemetry: &Telemetry,
    ) -> Result<Self, StartupError> {
        // A store that is away at start-up is reported, not fatal: invocations answer 503 (the
        // host retries) and /api/health says why, until it is back.
        if let Err(error) = store.ping().await {
            tracing::warn!(store = %store.kind(), %error, "the anomaly store is not ready yet");
        }
        let model = Arc::new(InService::with_retrain_after(model, origin, settings.drift_hours, settings.retrain_after));
        let metrics = telemetry.metrics(Arc::clone(&model));
        // With a model store, the champion it names serves from the first invocation: one poll
        // before listening. If the store is away, the packaged model serves until a poll succeeds.
        let follower = match &settings.model_store {
            Some(store_settings) => {
                let follower = Arc::new(Follower::new(
                    ModelStore::new(store_settings.clone(), Caller::Handler)?,
                    Arc::clone(&model),
                    settings.model_path.clone(),
                    settings.model_poll,
                ));
                follower.poll_once(&metrics).await;
                Some(follower)
            }
            None => None,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], settings.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let serving = model.get();
        tracing::info!(
            model = %serving.info.model_version,
            features = serving.feature_count(),
            threshold = serving.info.threshold,
            model_store = follower.as_ref().map(|f| f.target()).unwrap_or_default(),
            store = %store.kind(),
            app_insights = telemetry.exporting(),
            "handler ready on {}",
            listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let pipeline = Pipeline::new(
            Arc::clone(&store),
            PipelineOptions {
                trigger_binding: settings.trigger_binding.clone(),
                max_future_skew_secs: settings.max_future_skew_secs,
                incident_policy: settings.incident_policy,
            },
        );
        let state = Arc::new(AppState {
            metrics,
            model,
            follower,
            store,
            pipeline,
            live: LiveView::new(),
            settings,
            started: std::time::Instant::now(),
            dashboard: Default::default(),
            store_probe: Default::default(),
        });
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, then stops accepting connections and waits for the
    /// requests in flight: their store writes commit and their responses are sent before this
    /// returns, so the host does not re-deliver a batch that was handled.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop_following = tokio_util::sync::CancellationToken::new();
        if let Some(follower) = &self.state.follower {
            tokio::spawn(Arc::clone(follower).run(Arc::clone(&self.state), stop_following.clone()));
        }
        let router = http::router(self.state);
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: finishing the requests in flight");
            })
            .await;
        stop_following.cancel();
        served
    }
}

/// The packaged model (`ANOMALY_MODEL_PATH`) and its SHA-256.
fn load_model(settings: &Settings) -> Result<(Model, Origin), StartupError> {
    crate::model_follow::packaged(&settings.model_path).map_err(|source| StartupError::Model {
        path: settings.model_path.display().to_string(),
        source,
    })
}

/// Resolves on SIGTERM (how the Functions host stops a worker when it scales in) or Ctrl-C.
pub async fn shutdown_signal() {
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
