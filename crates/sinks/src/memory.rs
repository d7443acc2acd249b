//! An in-process store with the same promises as the durable ones (the contract suite runs on
//! it too). Nothing survives a restart: for tests, and for running the pipeline without a disk.

use std::collections::HashSet;
use std::sync::Mutex;

use super::{since_instant, window_end_instants, AnomalyStore, HistoryQuery, StoreFuture};
use domain::time as timefmt;
use domain::AnomalyRow;

#[derive(Default)]
struct Rows {
    /// (device, window end, model version) of every stored row.
    keys: HashSet<(String, String, String)>,
    /// In insertion order, with the window end as an instant.
    rows: Vec<(i64, AnomalyRow)>,
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
                let key = (
                    row.device_id.clone(),
                    row.window_end.clone(),
                    row.model_version.clone(),
                );
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
}
