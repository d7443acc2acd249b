//! An in-process store with the same promises as the durable ones (the contract suite runs on
//! it too). Nothing survives a restart: for tests, and for running the pipeline without a disk.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::{
    incident_activity_ms, message_at_ms, since_instant, since_ms, window_end_instants,
    AnomalyStore, HistoryQuery, IncidentQuery, LoadedTracker, SaveOutcome, StoreError,
    StoreFuture, TrackerRequest, TrackerSave,
};
use domain::time as timefmt;
use domain::{AnomalyRow, Incident, IncidentMessage, IncidentStatus, VersionedTracker};

#[derive(Default)]
struct Rows {
    /// (device, window end) of every stored row.
    keys: HashSet<(String, String)>,
    /// In insertion order, with the window end as an instant.
    rows: Vec<(i64, AnomalyRow)>,
    /// Incident trackers by device.
    trackers: HashMap<String, VersionedTracker>,
    /// Incidents by id, with their activity instant.
    incidents: BTreeMap<String, (i64, Incident)>,
    /// Messages by device, keyed by window instant and id.
    messages: HashMap<String, BTreeMap<(i64, String), IncidentMessage>>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Rows>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        // Every mutation below completes or does nothing, so a poisoned lock holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AnomalyStore for MemoryStore {
    fn kind(&self) -> crate::StoreKind {
        crate::StoreKind::Memory
    }

    fn insert(&self, rows: Vec<AnomalyRow>) -> StoreFuture<'_, usize> {
        let result = window_end_instants(&rows).map(|instants| {
            let mut stored = self.rows();
            let now = timefmt::format(timefmt::now());
            let mut inserted = 0;
            for (mut row, end_ms) in rows.into_iter().zip(instants) {
                let key = (row.device_id.clone(), row.window_end.clone());
                if stored.keys.insert(key) {
                    row.inserted_at = Some(now.clone());
                    stored.rows.push((end_ms, row));
                    inserted += 1;
                }
            }
            inserted
        });
        Box::pin(async move { result })
    }

    fn history(&self, query: HistoryQuery) -> StoreFuture<'_, Vec<AnomalyRow>> {
        let result = since_instant(&query).map(|since| {
            let stored = self.rows();
            let mut matching: Vec<(usize, &(i64, AnomalyRow))> = stored
                .rows
                .iter()
                .enumerate()
                .filter(|(_, (end_ms, row))| {
                    query.device_id.as_ref().is_none_or(|d| &row.device_id == d)
                        && since.is_none_or(|s| *end_ms >= s)
                })
                .collect();
            // Newest window first; ties by device, then newest insert (as the SQL stores do).
            matching.sort_by(|(ia, (ta, a)), (ib, (tb, b))| {
                tb.cmp(ta)
                    .then_with(|| a.device_id.cmp(&b.device_id))
                    .then_with(|| ib.cmp(ia))
            });
            matching
                .into_iter()
                .take(query.limit)
                .map(|(_, (_, row))| row.clone())
                .collect()
        });
        Box::pin(async move { result })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn load_trackers(&self, requests: Vec<TrackerRequest>) -> StoreFuture<'_, Vec<LoadedTracker>> {
        let stored = self.rows();
        let loaded = requests
            .into_iter()
            .map(|r| {
                let key = r.device_id;
                LoadedTracker {
                    tracker: stored.trackers.get(&key).cloned(),
                    messages: stored.messages.get(&key).map_or_else(Vec::new, |m| {
                        m.range((r.from_ms, String::new())..)
                            .take_while(|((at, _), _)| *at <= r.to_ms)
                            .map(|(_, message)| message.clone())
                            .collect()
                    }),
                }
            })
            .collect();
        Box::pin(async move { Ok(loaded) })
    }

    fn save_trackers(&self, saves: Vec<TrackerSave>) -> StoreFuture<'_, SaveOutcome> {
        let result = (|| {
            // Checked before anything is written: a bad save writes nothing.
            let mut checked = Vec::with_capacity(saves.len());
            for save in saves {
                let incidents = save
                    .incidents
                    .iter()
                    .map(incident_activity_ms)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let messages = save
                    .messages
                    .iter()
                    .map(message_at_ms)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                checked.push((save, incidents, messages));
            }
            let mut stored = self.rows();
            let mut outcome = SaveOutcome::default();
            for (save, incident_ms, message_ms) in checked {
                let key = save.state.device_id.clone();
                let current = stored.trackers.get(&key).map(|t| t.version);
                if current != save.expected_version {
                    outcome.conflicts.push(key);
                    continue;
                }
                let version = save.expected_version.unwrap_or(0) + 1;
                for (incident, ms) in save.incidents.into_iter().zip(incident_ms) {
                    stored.incidents.insert(incident.incident_id.clone(), (ms, incident));
                }
                let messages = stored.messages.entry(key.clone()).or_default();
                for (message, ms) in save.messages.into_iter().zip(message_ms) {
                    messages.entry((ms, message.message_id.clone())).or_insert(message);
                }
                stored.trackers.insert(key, VersionedTracker { state: save.state, version });
                outcome.saved += 1;
            }
            Ok(outcome)
        })();
        Box::pin(async move { result })
    }

    fn incidents(&self, query: IncidentQuery) -> StoreFuture<'_, Vec<Incident>> {
        let result = since_ms(query.since.as_deref()).map(|since| {
                let stored = self.rows();
                let mut matching: Vec<&(i64, Incident)> = stored
                    .incidents
                    .values()
                    .filter(|(ms, i)| {
                        query.device_id.as_ref().is_none_or(|d| &i.device_id == d)
                            && query.status.is_none_or(|s| i.status == s)
                            && since.is_none_or(|s| *ms >= s)
                    })
                    .collect();
                matching.sort_by(|(ta, a), (tb, b)| {
                    (a.status != IncidentStatus::Open)
                        .cmp(&(b.status != IncidentStatus::Open))
                        .then_with(|| tb.cmp(ta))
                        .then_with(|| a.incident_id.cmp(&b.incident_id))
                });
                matching
                    .into_iter()
                    .take(query.limit)
                    .map(|(_, i)| i.clone())
                    .collect()
            });
        Box::pin(async move { result })
    }
}
