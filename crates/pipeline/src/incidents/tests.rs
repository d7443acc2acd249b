//! The incident rules on hand-made windows, and the batch step on the in-memory store.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use domain::{ChannelValues, Lineage, ALERT_SCHEMA_VERSION};
use sinks::MemoryStore;

const MODEL: &str = "m1";

fn end(minute: i64) -> (String, i64) {
    let ms = 1_767_225_600_000 + minute * 60_000; // 2026-01-01T00:00:00Z + minutes
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    (domain::time::format(t), ms)
}

/// One window of `device` at `minute` with `severity` (score = threshold x band), its top
/// channel `channel`.
fn window(device: &str, minute: i64, severity: Severity, channel: &str) -> (ScoredPoint, Option<Alert>) {
    let (window_end, window_end_ms) = end(minute);
    let score = match severity {
        Severity::Normal => 0.5,
        Severity::Low => 1.5,
        Severity::Medium => 3.0,
        Severity::High => 6.0,
        Severity::Critical => 10.0,
    };
    let names: Arc<[String]> = vec!["pressure".to_string(), "vibration".to_string()].into();
    let values = if channel == "pressure" { vec![score * 0.75, score * 0.25] } else { vec![score * 0.25, score * 0.75] };
    let contributions = ChannelValues::new(names, values);
    let point = ScoredPoint {
        device_id: device.to_string(),
        window_end: window_end.clone(),
        window_end_ms,
        score,
        severity,
        contributions: contributions.clone(),
    };
    let alert = (severity != Severity::Normal).then(|| Alert {
        schema_version: ALERT_SCHEMA_VERSION,
        alert_id: Alert::id(device, &window_end),
        device_id: device.to_string(),
        window_end: window_end.clone(),
        model_version: MODEL.to_string(),
        score,
        threshold: 1.0,
        severity,
        contributions: contributions.to_map(),
        top_channel: channel.to_string(),
        top_feature: format!("{channel}_mean"),
        top_feature_z: 5.0,
        explanation: format!("{channel} is off at minute {minute}"),
        lineage: Lineage {
            partition_id: Some("0".into()),
            sequence_number: Some(minute),
            offset: None,
            enqueued_time: None,
        },
    });
    (point, alert)
}

/// A device's windows from minute 1, one letter each: `.` normal, `l`ow, `m`edium, `h`igh,
/// `c`ritical; a space skips a minute.
fn series(device: &str, pattern: &str) -> Vec<(ScoredPoint, Option<Alert>)> {
    pattern
        .chars()
        .enumerate()
        .filter(|(_, c)| *c != ' ')
        .map(|(i, c)| {
            let severity = match c {
                '.' => Severity::Normal,
                'l' => Severity::Low,
                'm' => Severity::Medium,
                'h' => Severity::High,
                'c' => Severity::Critical,
                other => panic!("{other}"),
            };
            window(device, i as i64 + 1, severity, "vibration")
        })
        .collect()
}

/// Every transition of `windows` through one tracker, as (kind, at minute).
fn run(policy: &IncidentPolicy, state: &mut TrackerState, windows: &[(ScoredPoint, Option<Alert>)]) -> Vec<IncidentMessage> {
    let mut out = Vec::new();
    for (point, alert) in windows {
        if let Step::Taken(messages) = (Tracker { policy, state }).observe(point, alert.as_ref()) {
            out.extend(messages);
        }
    }
    out
}

fn kinds(messages: &[IncidentMessage]) -> Vec<(Transition, String)> {
    messages.iter().map(|m| (m.transition, m.at.clone())).collect()
}

fn at(minute: i64) -> String {
    end(minute).0
}

fn policy() -> IncidentPolicy {
    IncidentPolicy {
        open_after: 2,
        open_of: 3,
        open_at: Severity::Critical,
        resolve_after: 3,
        gap_secs: 1800,
    }
}

#[test]
fn a_lone_anomalous_window_opens_nothing_two_of_three_open_one_incident() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let messages = run(&policy(), &mut state, &series("pump-1", "..l...l.l.....ll"));
    assert_eq!(
        kinds(&messages),
        [
            (Transition::Opened, at(9)),
            (Transition::Resolved, at(12)),
            (Transition::Opened, at(16)),
        ]
    );
    let first = &messages[0].incident;
    assert_eq!(first.incident_id, format!("pump-1/{}", at(7)), "it starts at its first anomalous window");
    assert_eq!((first.opened_at.as_str(), first.detected_at.as_str()), (at(7).as_str(), at(9).as_str()));
    assert_eq!((first.anomalous_windows, first.windows), (2, 3));
    let resolved = &messages[1].incident;
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert_eq!(resolved.resolution, Some(Resolution::QuietWindows));
    assert_eq!(resolved.incident_id, first.incident_id);
    assert_eq!(resolved.windows, 6);
    assert_eq!(messages[2].incident.opened_at, at(15));
}

#[test]
fn a_critical_window_opens_at_once_and_a_more_severe_one_escalates() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let messages = run(&policy(), &mut state, &series("pump-1", "..c"));
    assert_eq!(kinds(&messages), [(Transition::Opened, at(3))]);
    let mut state = TrackerState::new("pump-1", MODEL);
    let messages = run(&policy(), &mut state, &series("pump-1", ".lmmlhch..."));
    assert_eq!(
        kinds(&messages),
        [
            (Transition::Opened, at(3)),
            (Transition::Escalated, at(6)),
            (Transition::Escalated, at(7)),
            (Transition::Resolved, at(11)),
        ]
    );
    let last = &messages[3].incident;
    assert_eq!(last.peak_severity, Severity::Critical);
    assert_eq!(last.peak_window_end, at(7));
    assert_eq!(last.peak_explanation, "vibration is off at minute 7");
    assert_eq!(last.anomalous_windows, 7);
    assert_eq!(last.first_lineage.sequence_number, Some(2));
    assert_eq!(last.last_lineage.sequence_number, Some(8));
    assert_eq!(last.channels[0].channel, "vibration");
    assert!((last.channels[0].share - 0.75).abs() < 1e-9, "{:?}", last.channels);
    let total: f64 = last.channels.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn short_gaps_inside_a_fault_do_not_split_it() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let messages = run(&policy(), &mut state, &series("pump-1", "mm.m..m.mm...."));
    assert_eq!(kinds(&messages), [(Transition::Opened, at(2)), (Transition::Resolved, at(13))]);
    assert_eq!(messages[1].incident.anomalous_windows, 6);
}

#[test]
fn a_gap_in_the_data_resolves_at_the_last_window_before_it() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let mut windows = series("pump-1", "mm");
    windows.extend(series("pump-1", &format!("{}m.", " ".repeat(60))));
    let messages = run(&policy(), &mut state, &windows);
    assert_eq!(kinds(&messages), [(Transition::Opened, at(2)), (Transition::Resolved, at(2))]);
    assert_eq!(messages[1].incident.resolution, Some(Resolution::DataGap));
    assert!(state.open.is_none(), "one window after the gap does not open a second incident");
}

#[test]
fn late_and_repeated_windows_change_nothing_and_never_reopen() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let windows = series("pump-1", "mm...");
    let first = run(&policy(), &mut state, &windows);
    assert_eq!(kinds(&first), [(Transition::Opened, at(2)), (Transition::Resolved, at(5))]);
    let before = state.clone();
    assert!(run(&policy(), &mut state, &windows).is_empty(), "a replay makes nothing");
    let late = series("pump-1", "mmmm");
    assert!(run(&policy(), &mut state, &late).is_empty(), "late anomalies cannot reopen it");
    assert_eq!(state, before);
}

#[test]
fn pending_windows_that_leave_the_span_are_forgotten() {
    let mut state = TrackerState::new("pump-1", MODEL);
    let messages = run(&policy(), &mut state, &series("pump-1", "l..l"));
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(state.pending.len(), 1);
    assert_eq!(state.pending[0].window_end, at(4));
}

#[test]
fn policies_that_cannot_work_are_refused() {
    assert!(IncidentPolicy::default().validate().is_ok());
    let bad = [
        IncidentPolicy { open_after: 4, ..policy() },
        IncidentPolicy { open_after: 0, ..policy() },
        IncidentPolicy { open_of: 33, ..policy() },
        IncidentPolicy { resolve_after: 0, ..policy() },
        IncidentPolicy { open_at: Severity::Normal, ..policy() },
    ];
    for p in bad {
        assert!(p.validate().is_err(), "{p:?}");
    }
    let wide = IncidentPolicy { open_after: 32, open_of: 32, ..policy() };
    assert!(wide.validate().is_ok());
    let mut state = TrackerState::new("pump-1", MODEL);
    let all: String = "l".repeat(40);
    assert_eq!(kinds(&run(&wide, &mut state, &series("pump-1", &all))), [(Transition::Opened, at(32))]);
}

fn split(windows: &[(ScoredPoint, Option<Alert>)]) -> (Vec<ScoredPoint>, Vec<Alert>) {
    let points = windows.iter().map(|(p, _)| p.clone()).collect();
    let alerts = windows.iter().filter_map(|(_, a)| a.clone()).collect();
    (points, alerts)
}

async fn track(store: &dyn AnomalyStore, windows: &[(ScoredPoint, Option<Alert>)]) -> IncidentOutcome {
    let (points, alerts) = split(windows);
    track_batch(store, &policy(), MODEL, &points, &alerts).await.unwrap()
}

#[tokio::test]
async fn a_redelivered_batch_republishes_the_same_messages_and_opens_no_second_incident() {
    let store = MemoryStore::new();
    let mut windows = series("pump-1", "..mm.....");
    windows.extend(series("pump-2", "c"));
    // Out of order within the batch: each device's windows are taken in window order.
    windows.reverse();
    let first = track(&store, &windows).await;
    assert_eq!(first.new_messages().count(), 3);
    assert_eq!(first.late, 0);
    let again = track(&store, &windows).await;
    assert_eq!(again.new_messages().count(), 0);
    assert_eq!(again.late, windows.len());
    let ids = |o: &IncidentOutcome| {
        let mut ids: Vec<String> = o.messages.iter().map(|m| m.message_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again), ids(&first), "the same messages, the same ids");
    let incidents = store.incidents(sinks::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    let states: Vec<(&str, IncidentStatus)> = incidents.iter().map(|i| (i.device_id.as_str(), i.status)).collect();
    assert_eq!(states, [("pump-2", IncidentStatus::Open), ("pump-1", IncidentStatus::Resolved)]);
    // A batch that overlaps the last one: old windows republish, new ones move on.
    let overlap: Vec<_> = series("pump-2", "c..........").into_iter().collect();
    let next = track(&store, &overlap).await;
    assert_eq!(next.late, 1);
    assert_eq!(kinds(&next.messages), [(Transition::Opened, at(1)), (Transition::Resolved, at(4))]);
    assert_eq!(next.new_messages().count(), 1);
}

#[tokio::test]
async fn a_new_champion_continues_the_open_incident_and_a_redelivery_under_it_republishes() {
    // The fleet switches models while pump-1 is in an incident: the windows the new model
    // scores continue (and resolve) the same incident; nothing opens twice.
    let store = MemoryStore::new();
    let all = series("pump-1", "..mmm.....");
    let (before, after) = all.split_at(5);
    let (points, alerts) = split(before);
    let opened = track_batch(&store, &policy(), "m1", &points, &alerts).await.unwrap();
    assert_eq!(kinds(&opened.messages), [(Transition::Opened, at(4))]);
    let (points, alerts) = split(after);
    let resolved = track_batch(&store, &policy(), "m2", &points, &alerts).await.unwrap();
    assert_eq!(kinds(&resolved.messages), [(Transition::Resolved, at(8))]);
    assert_eq!(resolved.messages[0].incident.incident_id, opened.messages[0].incident.incident_id);
    assert_eq!(resolved.messages[0].incident.model_version, "m1", "named by the model that opened it");
    // The first batch re-delivered to an instance on m2: the same message again, no new incident.
    let (points, alerts) = split(before);
    let again = track_batch(&store, &policy(), "m2", &points, &alerts).await.unwrap();
    assert_eq!(again.new_messages().count(), 0);
    assert_eq!(again.messages.iter().map(|m| &m.message_id).collect::<Vec<_>>(), opened.messages.iter().map(|m| &m.message_id).collect::<Vec<_>>());
    let incidents = store.incidents(sinks::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].status, IncidentStatus::Resolved);
}

/// A store double: the first conditional write of each device loses to "another instance" that
/// took the same windows a moment before.
struct RacingStoreDouble {
    inner: MemoryStore,
    raced: std::sync::Mutex<BTreeMap<String, bool>>,
}

impl AnomalyStore for RacingStoreDouble {
    fn kind(&self) -> sinks::StoreKind {
        sinks::StoreKind::Memory
    }
    fn insert(&self, rows: Vec<domain::AnomalyRow>) -> sinks::StoreFuture<'_, usize> {
        self.inner.insert(rows)
    }
    fn history(&self, query: sinks::HistoryQuery) -> sinks::StoreFuture<'_, Vec<domain::AnomalyRow>> {
        self.inner.history(query)
    }
    fn ping(&self) -> sinks::StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn load_trackers(&self, requests: Vec<sinks::TrackerRequest>) -> sinks::StoreFuture<'_, Vec<sinks::LoadedTracker>> {
        self.inner.load_trackers(requests)
    }
    fn save_trackers(&self, saves: Vec<sinks::TrackerSave>) -> sinks::StoreFuture<'_, sinks::SaveOutcome> {
        Box::pin(async move {
            let first: Vec<sinks::TrackerSave> = {
                let mut raced = self.raced.lock().unwrap();
                saves
                    .iter()
                    .filter(|s| raced.insert(s.state.device_id.clone(), true).is_none())
                    .cloned()
                    .collect()
            };
            // The other instance's write lands first...
            self.inner.save_trackers(first).await?;
            // ...so this one's conditional write finds a newer version.
            self.inner.save_trackers(saves).await
        })
    }
    fn incidents(&self, query: sinks::IncidentQuery) -> sinks::StoreFuture<'_, Vec<domain::Incident>> {
        self.inner.incidents(query)
    }
}

#[tokio::test]
async fn losing_the_race_to_another_instance_publishes_its_messages_not_new_ones() {
    let store = RacingStoreDouble {
        inner: MemoryStore::new(),
        raced: Default::default(),
    };
    let windows = series("pump-1", "..mm.....");
    let outcome = track(&store, &windows).await;
    assert_eq!(outcome.conflicts, 1);
    assert_eq!(outcome.new_messages().count(), 0, "the other instance made them");
    assert_eq!(kinds(&outcome.messages), [(Transition::Opened, at(4)), (Transition::Resolved, at(7))]);
    let incidents = store.incidents(sinks::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
}
