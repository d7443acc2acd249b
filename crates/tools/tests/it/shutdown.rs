//! Graceful shutdown: an invocation in flight when the stop signal arrives completes, its write
//! commits and its response is sent before the server stops (the Functions host scales in with
//! SIGTERM; a batch answered 2xx is checkpointed, so it must be stored). The SIGTERM path of the
//! deployed binary is tested in `crates/service/tests/handler.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::helpers::{encoded, invocation, many_metadata, spawn_app_with_store, texts, windows};
use domain::{AnomalyRow, Incident};
use sinks::{
    AnomalyStore, HistoryQuery, IncidentQuery, LoadedTracker, SaveOutcome, SqliteStore,
    StoreFuture, StoreKind, TrackerRequest, TrackerSave,
};

/// A test double around the real SQLite store: every insert announces itself and then waits
/// until the test releases it, so "in flight" is a fact, not a guess about timing.
struct GatedStoreDouble {
    inner: SqliteStore,
    entered: Notify,
    release: Semaphore,
}

impl AnomalyStore for GatedStoreDouble {
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            self.entered.notify_one();
            let _permit = self.release.acquire().await.expect("gate open");
            self.inner.insert(rows).await
        })
    }
    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>> {
        self.inner.history(query)
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn load_trackers(&self, requests: Vec<TrackerRequest>) -> StoreFuture<'_, Vec<LoadedTracker>> {
        self.inner.load_trackers(requests)
    }
    fn save_trackers(&self, saves: Vec<TrackerSave>) -> StoreFuture<'_, SaveOutcome> {
        self.inner.save_trackers(saves)
    }
    fn incidents(&self, query: IncidentQuery) -> StoreFuture<'_, Vec<Incident>> {
        self.inner.incidents(query)
    }
}

#[tokio::test]
async fn the_shutdown_signal_lets_the_invocation_in_flight_commit() {
    let scratch = crate::helpers::Scratch::new("gated");
    let db = scratch.path("anomalies.sqlite");
    let store = Arc::new(GatedStoreDouble {
        inner: SqliteStore::open(&db, Duration::from_secs(5)).unwrap(),
        entered: Notify::new(),
        release: Semaphore::new(0),
    });
    let mut app = spawn_app_with_store(Arc::clone(&store) as Arc<dyn AnomalyStore>).await;
    let w = windows(10, 5);
    let body = invocation(encoded(json!(texts(&w))), many_metadata(10, 1));
    let in_flight = {
        let (client, url) = (app.client.clone(), format!("{}/ScoreWindows", app.base));
        tokio::spawn(async move { client.post(url).json(&body).send().await })
    };
    store.entered.notified().await; // the invocation is writing, and waits on the gate

    let base = app.base.clone();
    let stopping = tokio::spawn(async move {
        let result = app.shutdown().await;
        result.map(|_| app)
    });
    // Stopping: the listener closes (awaited, with a deadline)...
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{base}/")).await.is_ok() {
        assert!(Instant::now() < deadline, "still taking connections while stopping");
        tokio::task::yield_now().await;
    }
    // ...while the server waits for the invocation, which cannot end before the gate opens.
    assert!(!stopping.is_finished(), "the server waits for the invocation in flight");
    assert!(!in_flight.is_finished());

    store.release.add_permits(1);
    let response = in_flight
        .await
        .unwrap()
        .expect("response sent before the server stopped");
    assert_eq!(response.status().as_u16(), 200);
    let app = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("server stops once the invocation is done")
        .unwrap()
        .expect("clean stop");
    let stored = store
        .history(HistoryQuery { limit: 100, ..HistoryQuery::default() })
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    drop(app);
}
