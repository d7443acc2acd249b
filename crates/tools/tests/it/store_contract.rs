//! The store contract, written once against `AnomalyStore` and run for every implementation:
//! idempotent inserts, all-or-nothing batches, history order and filters, ping. A new sink (Azure
//! SQL) adds one `#[tokio::test]` that hands its store to [`keeps_the_contract`].

use std::time::Duration;

use domain::{AnomalyRow, Lineage};
use sinks::{AnomalyStore, HistoryQuery, MemoryStore, SqliteStore};
use serde_json::json;

use crate::helpers::Scratch;

fn row(device: &str, window_end: &str, model_version: &str) -> AnomalyRow {
    AnomalyRow {
        device_id: device.into(),
        window_end: window_end.into(),
        model_version: model_version.into(),
        score: 2.5,
        threshold: 1.0,
        severity: domain::Severity::Medium,
        contributions: json!({"a": 2.0, "b": 0.5}),
        features: json!({"a_mean": 1.0, "b_mean": -3.25}),
        top_channel: "a".into(),
        explanation: "a mean is 4.0 sd above normal".into(),
        lineage: Lineage {
            partition_id: Some("3".into()),
            sequence_number: Some(42),
            offset: Some("4200".into()),
            enqueued_time: Some("2026-01-01T00:02:00Z".into()),
        },
        inserted_at: None,
    }
}

fn query(device: Option<&str>, since: Option<&str>, limit: usize) -> HistoryQuery {
    HistoryQuery {
        device_id: device.map(str::to_string),
        since: since.map(str::to_string),
        limit,
    }
}

async fn ends(store: &dyn AnomalyStore, q: HistoryQuery) -> Vec<(String, String)> {
    store
        .history(q)
        .await
        .expect("history")
        .into_iter()
        .map(|r| (r.device_id, r.window_end))
        .collect()
}

/// Every promise of the store trait. `store` must be empty.
pub async fn keeps_the_contract(store: &dyn AnomalyStore) {
    assert!(!store.kind().as_str().is_empty());
    store.ping().await.expect("ping on a healthy store");
    assert!(ends(store, query(None, None, 10)).await.is_empty());

    // Idempotent: the same rows again are not new; another model version is another row.
    let rows = vec![
        row("d1", "2026-01-01T00:01:00Z", "v1"),
        row("d1", "2026-01-01T00:01:00.5Z", "v1"),
        row("d2", "2026-01-01T00:00:59Z", "v1"),
    ];
    assert_eq!(store.insert(rows.clone()).await.unwrap(), 3);
    assert_eq!(store.insert(rows.clone()).await.unwrap(), 0);
    assert_eq!(store.insert(Vec::new()).await.unwrap(), 0);
    assert_eq!(
        store
            .insert(vec![
                row("d1", "2026-01-01T00:01:00Z", "v2"),
                rows[0].clone()
            ])
            .await
            .unwrap(),
        1
    );
    // The same instant written differently is the same window only when the text is canonical;
    // the pipeline canonicalises before storing, so stores compare the text they are given.

    // Stored as given, with the store's insert time.
    let stored = store.history(query(Some("d2"), None, 10)).await.unwrap();
    assert_eq!(stored.len(), 1);
    let mut back = stored[0].clone();
    assert!(back.inserted_at.take().is_some(), "inserted_at is set");
    assert_eq!(back, rows[2]);

    // All or nothing: one bad row refuses the batch, and none of its good rows are stored.
    let error = store
        .insert(vec![
            row("d3", "2026-01-01T00:03:00Z", "v1"),
            row("d3", "not a time", "v1"),
        ])
        .await
        .expect_err("a row without a valid window end is refused");
    assert!(!error.is_transient(), "bad data is permanent: {error}");
    assert!(ends(store, query(Some("d3"), None, 10)).await.is_empty());

    // Newest window first by instant, not text ("00.5Z" sorts before "00Z" as text); ties by
    // device, then newest insert.
    assert_eq!(
        ends(store, query(None, None, 10)).await,
        [
            ("d1".into(), "2026-01-01T00:01:00.5Z".into()),
            ("d1".into(), "2026-01-01T00:01:00Z".into()),
            ("d1".into(), "2026-01-01T00:01:00Z".into()),
            ("d2".into(), "2026-01-01T00:00:59Z".into()),
        ]
    );
    let newest = store.history(query(None, None, 10)).await.unwrap();
    assert_eq!(
        (
            newest[1].model_version.as_str(),
            newest[2].model_version.as_str()
        ),
        ("v2", "v1")
    );
    // Filters: since (inclusive), device, limit.
    assert_eq!(
        ends(store, query(None, Some("2026-01-01T00:01:00Z"), 10))
            .await
            .len(),
        3
    );
    assert_eq!(
        ends(store, query(Some("d2"), Some("2026-01-01T00:01:00Z"), 10)).await,
        []
    );
    assert_eq!(ends(store, query(None, None, 2)).await.len(), 2);
    let error = store
        .history(query(None, Some("yesterday"), 10))
        .await
        .expect_err("since must be a timestamp");
    assert!(!error.is_transient(), "{error}");

    // A batch larger than any single statement's parameter limit.
    let many: Vec<AnomalyRow> = (0..5000)
        .map(|i| {
            row(
                "bulk",
                &format!(
                    "2026-01-02T{:02}:{:02}:{:02}Z",
                    i / 3600,
                    (i / 60) % 60,
                    i % 60
                ),
                "v1",
            )
        })
        .collect();
    assert_eq!(store.insert(many.clone()).await.unwrap(), 5000);
    assert_eq!(store.insert(many).await.unwrap(), 0);

    keys_mean_the_same_everywhere(store).await;
    store.ping().await.expect("ping after writes");
}

/// Keys compare exactly (binary), whatever the store's default collation: ids differing only by
/// case are two devices; ids outside the Basic Multilingual Plane at the length limit (128 UTF-16
/// code units, two per character here) are kept whole; a window repeated inside one batch is
/// stored once, and the survivor is the first; two identical batches at once store each row once.
async fn keys_mean_the_same_everywhere(store: &dyn AnomalyStore) {
    let end = "2026-01-03T00:00:00Z";
    let pair = vec![row("Pump-1", end, "v1"), row("pump-1", end, "v1")];
    assert_eq!(store.insert(pair).await.unwrap(), 2, "case matters");
    for device in ["Pump-1", "pump-1"] {
        let stored = ends(store, query(Some(device), None, 10)).await;
        assert_eq!(stored, [(device.to_string(), end.to_string())], "{device}");
    }
    let accented = vec![row("pompe-é", end, "v1"), row("pompe-e\u{301}", end, "v1")];
    assert_eq!(store.insert(accented).await.unwrap(), 2, "composed and decomposed differ");

    let wide: String = "𝔭".repeat(domain::MAX_NAME_UNITS / 2);
    assert_eq!(domain::name_units(&wide), 128);
    let wide_version: String = "𝔳".repeat(64);
    assert_eq!(store.insert(vec![row(&wide, end, &wide_version)]).await.unwrap(), 1);
    let back = store.history(query(Some(&wide), None, 10)).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].device_id.as_str(), back[0].model_version.as_str()), (wide.as_str(), wide_version.as_str()));

    let mut first = row("dup", end, "v1");
    first.score = 11.0;
    let mut second = row("dup", end, "v1");
    second.score = 22.0;
    assert_eq!(store.insert(vec![first, second]).await.unwrap(), 1);
    let kept = store.history(query(Some("dup"), None, 10)).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].score, 11.0, "the first of a repeated window is the one kept");

    let batch: Vec<AnomalyRow> = (0..200)
        .map(|i| row("twice", &format!("2026-01-04T00:{:02}:{:02}Z", i / 60, i % 60), "v1"))
        .collect();
    let (a, b) = futures::join!(store.insert(batch.clone()), store.insert(batch.clone()));
    assert_eq!(a.unwrap() + b.unwrap(), 200, "each row once across both writers");
    assert_eq!(ends(store, query(Some("twice"), None, 1000)).await.len(), 200);
}

/// `n` distinct rows of one device, for counting round trips.
pub fn rows_for_round_trip_count(n: usize) -> Vec<AnomalyRow> {
    (0..n)
        .map(|i| {
            row(
                "round-trip",
                &format!(
                    "2026-01-03T{:02}:{:02}:{:02}Z",
                    i / 3600,
                    (i / 60) % 60,
                    i % 60
                ),
                "v1",
            )
        })
        .collect()
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    let scratch = Scratch::new("contract");
    let store = SqliteStore::open(&scratch.path("a.sqlite"), Duration::from_millis(200)).unwrap();
    keeps_the_contract(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    keeps_the_contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_classifies_a_held_lock_as_transient() {
    let scratch = Scratch::new("contract-lock");
    let path = scratch.path("a.sqlite");
    let store = SqliteStore::open(&path, Duration::from_millis(100)).unwrap();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = store
        .insert(vec![row("d1", "2026-01-01T00:01:00Z", "v1")])
        .await
        .expect_err("locked");
    assert!(error.is_transient(), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "source kept");
    assert!(store.ping().await.unwrap_err().is_transient());
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        store
            .insert(vec![row("d1", "2026-01-01T00:01:00Z", "v1")])
            .await
            .unwrap(),
        1
    );
}
