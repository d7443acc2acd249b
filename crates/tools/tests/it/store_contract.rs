//! The store contract, written once against `AnomalyStore` and run for every implementation:
//! idempotent inserts, all-or-nothing batches, history order and filters, ping. A new sink (Azure
//! SQL) adds one `#[tokio::test]` that hands its store to [`keeps_the_contract`].

use std::time::Duration;

use domain::{
    AnomalyRow, Incident, IncidentMessage, IncidentStatus, Lineage, Severity, TrackerState,
    Transition,
};
use sinks::{
    AnomalyStore, HistoryQuery, IncidentQuery, MemoryStore, SqliteStore, TrackerRequest,
    TrackerSave,
};
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

    // Idempotent: the same rows again are not new, whichever model scored them (a window
    // re-delivered while the fleet switches champions is stored once).
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
        0
    );
    let kept = store.history(query(Some("d1"), None, 10)).await.unwrap();
    assert!(kept.iter().all(|r| r.model_version == "v1"), "the first stored verdict stays");
    // The same instant written differently is the same window only when the text is canonical;
    // the pipeline canonicalises before storing, so stores compare the text they are given.
    assert_eq!(store.insert(vec![row("d1", "2026-01-01T00:01:00.000Z", "v2")]).await.unwrap(), 1);

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
            ("d1".into(), "2026-01-01T00:01:00.000Z".into()),
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
    keeps_the_incident_contract(store).await;
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

fn incident(device: &str, first: &str, last: &str, status: IncidentStatus) -> Incident {
    Incident {
        incident_id: Incident::id(device, first),
        device_id: device.into(),
        model_version: "v1".into(),
        status,
        opened_at: first.into(),
        detected_at: last.into(),
        last_anomalous_at: last.into(),
        resolved_at: (status == IncidentStatus::Resolved).then(|| last.to_string()),
        resolution: (status == IncidentStatus::Resolved).then_some(domain::Resolution::QuietWindows),
        peak_severity: Severity::High,
        peak_score: 6.5,
        threshold: 1.0,
        peak_window_end: last.into(),
        peak_top_channel: "a".into(),
        peak_explanation: "a mean is 6.5 sd above normal".into(),
        anomalous_windows: 2,
        windows: 3,
        channels: vec![domain::ChannelShare { channel: "a".into(), share: 1.0 }],
        first_lineage: Lineage::default(),
        last_lineage: Lineage::default(),
    }
}

fn tracker(device: &str, watermark: &str) -> TrackerState {
    let mut state = TrackerState::new(device, "v1");
    state.watermark = watermark.into();
    state.watermark_ms = sinks::unix_ms(watermark).unwrap();
    state.recent = 0b101;
    state
}

fn request(device: &str, from: &str, to: &str) -> TrackerRequest {
    TrackerRequest {
        device_id: device.into(),
        from_ms: sinks::unix_ms(from).unwrap(),
        to_ms: sinks::unix_ms(to).unwrap(),
    }
}

fn incidents_query(device: Option<&str>, status: Option<IncidentStatus>, since: Option<&str>) -> IncidentQuery {
    IncidentQuery {
        device_id: device.map(str::to_string),
        status,
        since: since.map(str::to_string),
        limit: 100,
    }
}

async fn incident_ids(store: &dyn AnomalyStore, q: IncidentQuery) -> Vec<String> {
    store.incidents(q).await.expect("incidents").into_iter().map(|i| i.incident_id).collect()
}

/// Incident trackers: a conditional write per device (a stale version is a conflict that writes
/// nothing of that device), one transaction per call, messages unique by id and found again by
/// window, incidents listed open first; keys binary as for anomalies.
async fn keeps_the_incident_contract(store: &dyn AnomalyStore) {
    let (t1, t2, t3) = ("2026-02-01T00:01:00Z", "2026-02-01T00:02:00Z", "2026-02-01T00:03:00Z");
    let unknown = store.load_trackers(vec![request("inc-1", t1, t3)]).await.unwrap();
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0].tracker.is_none() && unknown[0].messages.is_empty());

    let open = incident("inc-1", t1, t2, IncidentStatus::Open);
    let opened = IncidentMessage::new(Transition::Opened, t2, &open);
    let save = |state: TrackerState, expected, incidents: Vec<Incident>, messages: Vec<IncidentMessage>| TrackerSave {
        state,
        expected_version: expected,
        incidents,
        messages,
    };
    let first = save(tracker("inc-1", t2), None, vec![open.clone()], vec![opened.clone()]);
    let outcome = store.save_trackers(vec![first.clone()]).await.unwrap();
    assert_eq!((outcome.saved, outcome.conflicts.len()), (1, 0));
    let loaded = store.load_trackers(vec![request("inc-1", t1, t3)]).await.unwrap().remove(0);
    let stored = loaded.tracker.expect("saved");
    assert_eq!((stored.version, &stored.state), (1, &first.state));
    assert_eq!(loaded.messages, vec![opened.clone()], "a re-delivered window finds its message");
    let outside = store.load_trackers(vec![request("inc-1", t1, t1)]).await.unwrap().remove(0);
    assert!(outside.messages.is_empty(), "only the messages of the requested windows");

    // A second creation, or a write at a stale version, is a conflict and writes nothing.
    let resolved = incident("inc-1", t1, t3, IncidentStatus::Resolved);
    let closing = IncidentMessage::new(Transition::Resolved, t3, &resolved);
    for expected in [None, Some(7)] {
        let stale = save(tracker("inc-1", t3), expected, vec![resolved.clone()], vec![closing.clone()]);
        let outcome = store.save_trackers(vec![stale]).await.unwrap();
        assert_eq!((outcome.saved, outcome.conflicts.clone()), (0, vec!["inc-1".to_string()]));
    }
    let after = store.incidents(incidents_query(Some("inc-1"), None, None)).await.unwrap();
    assert_eq!(after, vec![open.clone()], "the conflicting writes left the incident alone");

    // At the read version it goes through, with a device beside it in the same call; the repeated
    // message is kept once.
    let next = save(tracker("inc-1", t3), Some(1), vec![resolved.clone()], vec![opened.clone(), closing.clone()]);
    let other = save(tracker("inc-2", t1), None, vec![incident("inc-2", t1, t1, IncidentStatus::Open)], vec![]);
    let outcome = store.save_trackers(vec![next, other]).await.unwrap();
    assert_eq!((outcome.saved, outcome.conflicts.len()), (2, 0));
    // An unknown device first: each device's messages land on its own tracker, whichever
    // devices around it are re-deliveries.
    let loaded = store
        .load_trackers(vec![request("inc-0", t1, t3), request("inc-2", t1, t1), request("inc-1", t1, t3)])
        .await
        .unwrap();
    assert!(loaded[0].tracker.is_none() && loaded[0].messages.is_empty());
    assert_eq!(loaded[1].tracker.as_ref().map(|t| t.version), Some(1));
    assert!(loaded[1].messages.is_empty());
    assert_eq!(loaded[2].tracker.as_ref().map(|t| t.version), Some(2));
    assert_eq!(loaded[2].messages, vec![opened.clone(), closing.clone()], "window order, each once");

    // One tracker per device whatever the model: a new champion's save moves the same tracker
    // (it continues the device's incident), and creating another under it is a conflict.
    let mut by_next_model = tracker("inc-2", t2);
    by_next_model.model_version = "v2".into();
    let created = store.save_trackers(vec![save(by_next_model.clone(), None, vec![], vec![])]).await.unwrap();
    assert_eq!((created.saved, created.conflicts), (0, vec!["inc-2".to_string()]));
    let moved = store.save_trackers(vec![save(by_next_model.clone(), Some(1), vec![], vec![])]).await.unwrap();
    assert_eq!(moved.saved, 1);
    let loaded = store.load_trackers(vec![request("inc-2", t1, t2)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((loaded.version, loaded.state.model_version.as_str()), (2, "v2"));

    // Listing: open first, then by activity; filters by device, status and activity time.
    let late = incident("inc-3", t1, t2, IncidentStatus::Resolved);
    let third = save(tracker("inc-3", t2), None, vec![late.clone()], vec![]);
    store.save_trackers(vec![third]).await.unwrap();
    assert_eq!(
        incident_ids(store, incidents_query(None, None, None)).await,
        [Incident::id("inc-2", t1), resolved.incident_id.clone(), late.incident_id.clone()]
    );
    assert_eq!(incident_ids(store, incidents_query(None, Some(IncidentStatus::Resolved), Some(t3))).await, [resolved.incident_id.clone()]);
    assert_eq!(incident_ids(store, incidents_query(Some("inc-3"), None, None)).await, [late.incident_id.clone()]);
    let one = store.incidents(IncidentQuery { limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!(store.incidents(incidents_query(None, None, Some("yesterday"))).await.is_err());

    // A bad save refuses the whole call: the good one beside it is not written either.
    let mut broken = incident("inc-4", t1, t1, IncidentStatus::Open);
    broken.last_anomalous_at = "not a time".into();
    let good = save(tracker("inc-5", t1), None, vec![], vec![]);
    let bad = save(tracker("inc-4", t1), None, vec![broken], vec![]);
    let error = store.save_trackers(vec![good, bad]).await.expect_err("refused");
    assert!(!error.is_transient(), "{error}");
    let loaded = store.load_trackers(vec![request("inc-5", t1, t1)]).await.unwrap();
    assert!(loaded[0].tracker.is_none(), "nothing of the call was written");

    // Keys are binary here too.
    let upper = save(tracker("Inc-1", t1), None, vec![], vec![]);
    assert_eq!(store.save_trackers(vec![upper]).await.unwrap().saved, 1, "Inc-1 is not inc-1");
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

/// A database written before keys left out the model version (schema version 0) is rebuilt on
/// open: of one window's rows the first stored stays, of one device's trackers the one written
/// last; what the new keys promise holds from then on.
#[tokio::test]
async fn sqlite_store_migrates_a_database_keyed_by_model_version() {
    let scratch = Scratch::new("sqlite-v0");
    let path = scratch.path("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE anomalies (
                id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, window_end TEXT NOT NULL, window_end_ms INTEGER NOT NULL,
                model_version TEXT NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL, severity TEXT NOT NULL,
                contributions TEXT NOT NULL, features TEXT NOT NULL, top_channel TEXT NOT NULL, explanation TEXT NOT NULL,
                partition_id TEXT, sequence_number INTEGER, event_offset TEXT, enqueued_time TEXT, inserted_at TEXT NOT NULL,
                UNIQUE (device_id, window_end, model_version));
             CREATE TABLE incident_trackers (device_id TEXT NOT NULL, model_version TEXT NOT NULL, version INTEGER NOT NULL,
                state TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (device_id, model_version));
             CREATE TABLE incident_messages (message_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, model_version TEXT NOT NULL,
                at_ms INTEGER NOT NULL, document TEXT NOT NULL);
             CREATE INDEX incident_messages_by_window ON incident_messages (device_id, model_version, at_ms);",
        )
        .unwrap();
        for (version, score) in [("v1", 1.5), ("v2", 2.5)] {
            conn.execute(
                "INSERT INTO anomalies (device_id, window_end, window_end_ms, model_version, score, threshold, severity,
                    contributions, features, top_channel, explanation, inserted_at)
                 VALUES ('d1', '2026-01-01T00:01:00Z', 1767225660000, ?1, ?2, 1.0, 'low', '{}', '{}', 'x', 'e', 't')",
                rusqlite::params![version, score],
            )
            .unwrap();
        }
        for (version, watermark, updated) in [("v2", "2026-01-01T00:05:00Z", "2026-01-02"), ("v1", "2026-01-01T00:03:00Z", "2026-01-01")] {
            let state = serde_json::to_string(&tracker("d1", watermark)).unwrap();
            conn.execute(
                "INSERT INTO incident_trackers VALUES ('d1', ?1, 3, ?2, ?3)",
                rusqlite::params![version, state, updated],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path, std::time::Duration::from_millis(500)).unwrap();
    let rows = store.history(query(Some("d1"), None, 10)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].model_version.as_str(), rows[0].score), ("v1", 1.5), "the first stored row stays");
    let loaded = store.load_trackers(vec![request("d1", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z")]).await.unwrap();
    assert_eq!(loaded[0].tracker.as_ref().unwrap().state.watermark, "2026-01-01T00:05:00Z", "the tracker written last stays");
    assert_eq!(store.insert(vec![row("d1", "2026-01-01T00:01:00Z", "v3")]).await.unwrap(), 0);
    drop(store);
    // Opening it again changes nothing; the schema version is recorded.
    let store = SqliteStore::open(&path, std::time::Duration::from_millis(500)).unwrap();
    assert_eq!(store.history(query(None, None, 10)).await.unwrap().len(), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    let scratch = Scratch::new("contract");
    let store = SqliteStore::open(&scratch.path("a.sqlite"), Duration::from_millis(200)).unwrap();
    keeps_the_contract(&store).await;
}

/// The connection lives on the store's own thread: dropping the store finishes what was
/// queued and closes it there and then (the last close checkpoints the WAL and removes it), so
/// a handler that stops leaves a whole database file behind, not one still being closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_closes_its_connection_when_dropped() {
    let scratch = Scratch::new("sqlite-close");
    let path = scratch.path("a.sqlite");
    let wal = scratch.path("a.sqlite-wal");
    let store = SqliteStore::open(&path, Duration::from_millis(200)).unwrap();
    let rows: Vec<AnomalyRow> = (0..50)
        .map(|i| row("d1", &format!("2026-01-01T00:{:02}:00Z", i), "m1"))
        .collect();
    assert_eq!(store.insert(rows).await.unwrap(), 50);
    assert!(wal.exists(), "WAL mode writes the -wal file first");
    drop(store);
    assert!(!wal.exists(), "the store was dropped but its connection was not closed");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stored: i64 = conn.query_row("SELECT COUNT(*) FROM anomalies", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, 50);
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    keeps_the_contract(&MemoryStore::new()).await;
}

/// Two handlers on one SQLite file: each keeps the trackers it parsed, and one's write is seen by
/// the other at its next load (the version moved, and so did SQLite's data_version), never hidden
/// by what it kept.
#[tokio::test]
async fn sqlite_stores_sharing_a_file_never_load_a_stale_tracker() {
    let scratch = Scratch::new("contract-tracker-cache");
    let path = scratch.path("a.sqlite");
    let a = SqliteStore::open(&path, Duration::from_millis(500)).unwrap();
    let b = SqliteStore::open(&path, Duration::from_millis(500)).unwrap();
    let (t1, t2, t3) = ("2026-02-01T00:01:00Z", "2026-02-01T00:02:00Z", "2026-02-01T00:03:00Z");
    let save = |state: TrackerState, expected| TrackerSave {
        state,
        expected_version: expected,
        incidents: Vec::new(),
        messages: Vec::new(),
    };
    a.save_trackers(vec![save(tracker("dev", t1), None)]).await.unwrap();
    for store in [&a, &b] {
        let loaded = store.load_trackers(vec![request("dev", t1, t1)]).await.unwrap().remove(0);
        assert_eq!(loaded.tracker.unwrap().state.watermark, t1);
    }
    // b moves it on; a, which wrote and read version 1, must see version 2.
    let outcome = b.save_trackers(vec![save(tracker("dev", t2), Some(1))]).await.unwrap();
    assert_eq!(outcome.saved, 1);
    let seen = a.load_trackers(vec![request("dev", t3, t3)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((seen.version, seen.state.watermark.as_str()), (2, t2));
    // a's write at the stale version 1 is a conflict, and a then reads b's again.
    let stale = a.save_trackers(vec![save(tracker("dev", t3), Some(1))]).await.unwrap();
    assert_eq!(stale.conflicts, vec!["dev".to_string()]);
    let again = a.load_trackers(vec![request("dev", t3, t3)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((again.version, again.state.watermark.as_str()), (2, t2));
    // And a's own write is what a reads back.
    a.save_trackers(vec![save(tracker("dev", t3), Some(2))]).await.unwrap();
    let own = a.load_trackers(vec![request("dev", t3, t3)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((own.version, own.state.watermark.as_str()), (3, t3));
    let other = b.load_trackers(vec![request("dev", t3, t3)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((other.version, other.state.watermark.as_str()), (3, t3));
    // a's own write needs no query to be read back while nobody else commits; a write from any
    // other connection (another process here) moves SQLite's data_version and is read again.
    let t4 = "2026-02-01T00:04:00Z";
    let outside = rusqlite::Connection::open(&path).unwrap();
    let state = serde_json::to_string(&tracker("dev", t4)).unwrap();
    let changed = outside
        .execute("UPDATE incident_trackers SET version = 4, state = ?1 WHERE device_id = 'dev'", [state])
        .unwrap();
    assert_eq!(changed, 1);
    let fresh = a.load_trackers(vec![request("dev", t4, t4)]).await.unwrap().remove(0).tracker.unwrap();
    assert_eq!((fresh.version, fresh.state.watermark.as_str()), (4, t4));
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
