//! Drift: does the live data still look like the training data?
//!
//! The model carries per-feature training quantiles (q01, q05, q50, q95, q99). They cut each
//! feature into six bins whose training shares are known (1%, 4%, 45%, 45%, 4%, 1%). The monitor
//! counts live windows into those bins over the last `hours` hours of data time (by window end)
//! and computes the Population Stability Index per feature:
//! PSI = Σ (live − train) · ln(live / train). Below 0.1 is `ok`, from 0.1 `warn`, from 0.2
//! `drift`.
//!
//! Why hours of data rather than the last N windows: sensor readings follow daily cycles, so a
//! few hours of a healthy fleet look nothing like the days it was trained on (measured: PSI ≈ 4.4
//! on every level feature for two healthy hours). A full day (the default) compares like with
//! like. Memory is bounded whatever the volume: one row of counters per hour
//! (`hours × features × 6` counters) and a capped set of recent window keys.
//!
//! Windows are counted once: a re-delivered window (same device and window end) among the
//! recent keys is not counted again. A model reload starts a new monitor (its bins are the new
//! model's).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::Serialize;

use domain::WindowRecord;

/// The quantile levels the training pipeline writes (`anomaly.feature_quantiles`).
pub const QUANTILE_LEVELS: [(&str, f64); 5] = [
    ("q01", 0.01),
    ("q05", 0.05),
    ("q50", 0.50),
    ("q95", 0.95),
    ("q99", 0.99),
];
pub const WARN_PSI: f64 = 0.1;
pub const DRIFT_PSI: f64 = 0.2;
/// Below this many windows the figures are reported but the status is `collecting`.
pub const MIN_WINDOWS: usize = 100;
/// Shares are floored here so an empty bin gives a large, finite PSI term.
const FLOOR: f64 = 1e-4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    Collecting,
    Ok,
    Warn,
    Drift,
}

impl DriftStatus {
    pub fn of(psi: f64) -> Self {
        if psi >= DRIFT_PSI {
            DriftStatus::Drift
        } else if psi >= WARN_PSI {
            DriftStatus::Warn
        } else {
            DriftStatus::Ok
        }
    }
}

/// One feature's bins: upper edges and the training share of each bin (one more than edges).
#[derive(Debug, Clone)]
struct Bins {
    edges: Vec<f64>,
    expected: Vec<f64>,
}

impl Bins {
    /// From (edge, cumulative level) pairs in level order; equal edges merge their bins.
    fn new(quantiles: &[(f64, f64)]) -> Option<Self> {
        let mut edges: Vec<f64> = Vec::new();
        let mut levels: Vec<f64> = Vec::new();
        for &(edge, level) in quantiles {
            if !edge.is_finite() {
                return None;
            }
            match edges.last() {
                Some(&last) if edge < last => return None,
                Some(&last) if edge == last => *levels.last_mut()? = level,
                _ => {
                    edges.push(edge);
                    levels.push(level);
                }
            }
        }
        let mut expected = Vec::with_capacity(levels.len() + 1);
        let mut previous = 0.0;
        for &level in &levels {
            expected.push(level - previous);
            previous = level;
        }
        expected.push(1.0 - previous);
        Some(Bins { edges, expected })
    }

    /// Bin of `x`: values up to and including an edge fall below it.
    fn of(&self, x: f32) -> u8 {
        let x = f64::from(x);
        self.edges.partition_point(|&e| e < x) as u8
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// `None` before the first window: nothing compared with training is no figure at all.
    pub psi: Option<f64>,
    pub status: DriftStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub status: DriftStatus,
    pub model_version: String,
    /// Windows the figures are computed on: those ending in the covered hours of data time.
    pub windows: usize,
    /// How many hours of data time are compared (`ANOMALY_DRIFT_HOURS`).
    pub hours: i64,
    /// The hours covered so far, `[from, until)` by window end.
    pub from: Option<String>,
    pub until: Option<String>,
    pub warn_psi: f64,
    pub drift_psi: f64,
    pub features: Vec<FeatureDrift>,
}

/// Counts of one hour of data: `counts[feature * BINS + bin]`.
struct Slot {
    hour: i64,
    windows: u64,
    counts: Vec<u32>,
}

/// Bins per feature (edges + 1); fewer when equal quantiles merge bins.
const BINS: usize = QUANTILE_LEVELS.len() + 1;
/// How many recent window keys are kept to recognise a re-delivery.
pub const RECENT_KEYS: usize = 50_000;

pub struct DriftMonitor {
    model_version: String,
    names: Vec<String>,
    bins: Vec<Bins>,
    hours: i64,
    slots: VecDeque<Slot>,
    recent: HashSet<u64, BuildHasherDefault<KeyHasher>>,
    recent_order: VecDeque<u64>,
}

/// The recent-key set's hasher: its keys are already SipHash outputs ([`key_of`]), so hashing
/// them again only costs time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

fn key_of(record: &WindowRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.device_id.hash(&mut hasher);
    record.window_end.hash(&mut hasher);
    hasher.finish()
}

fn hour_of(record: &WindowRecord) -> i64 {
    record.window_end_ms.div_euclid(3_600_000)
}

fn hour_text(hour: i64) -> String {
    domain::time::format(domain::time::from_unix_seconds(hour * 3600))
}

impl DriftMonitor {
    /// `None` when the model has no usable training quantiles (drift cannot be measured).
    /// `hours`: how much data time the comparison covers.
    pub fn new(
        model_version: &str,
        feature_names: &[String],
        quantiles: &serde_json::Value,
        hours: u32,
    ) -> Option<Self> {
        let per_level: Vec<Vec<f64>> = QUANTILE_LEVELS
            .iter()
            .map(|(key, _)| serde_json::from_value(quantiles.get(*key)?.clone()).ok())
            .collect::<Option<_>>()?;
        if per_level.iter().any(|v| v.len() != feature_names.len()) {
            return None;
        }
        let bins = (0..feature_names.len())
            .map(|f| {
                let pairs: Vec<(f64, f64)> = QUANTILE_LEVELS
                    .iter()
                    .zip(&per_level)
                    .map(|((_, level), values)| (values[f], *level))
                    .collect();
                Bins::new(&pairs)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(DriftMonitor {
            model_version: model_version.to_string(),
            names: feature_names.to_vec(),
            bins,
            hours: i64::from(hours.max(1)),
            slots: VecDeque::new(),
            recent: HashSet::default(),
            recent_order: VecDeque::new(),
        })
    }

    /// Windows counted in the covered hours.
    pub fn len(&self) -> usize {
        self.slots.iter().map(|s| s.windows as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn remember(&mut self, key: u64) -> bool {
        if !self.recent.insert(key) {
            return false;
        }
        self.recent_order.push_back(key);
        if self.recent_order.len() > RECENT_KEYS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
        true
    }

    /// The slot of `hour`, created in order; `None` when it is older than the covered hours.
    fn slot(&mut self, hour: i64) -> Option<&mut Slot> {
        // "Now" is the newest hour seen, but never past the clock's: one window from the future
        // must not push every later window out of the covered hours.
        let clock_hour = domain::time::now().unix_timestamp().div_euclid(3600);
        if hour > clock_hour {
            return None;
        }
        let newest = self.slots.back().map_or(hour, |s| s.hour.max(hour));
        if hour <= newest - self.hours {
            return None;
        }
        let at = self.slots.partition_point(|s| s.hour < hour);
        if self.slots.get(at).is_none_or(|s| s.hour != hour) {
            let counts = vec![0; self.bins.len() * BINS];
            self.slots.insert(
                at,
                Slot {
                    hour,
                    windows: 0,
                    counts,
                },
            );
        }
        while self
            .slots
            .front()
            .is_some_and(|s| s.hour <= newest - self.hours)
        {
            self.slots.pop_front();
        }
        let at = self.slots.partition_point(|s| s.hour < hour);
        self.slots.get_mut(at)
    }

    /// Counts windows; a re-delivered one (recently seen) or one older than the covered hours
    /// is skipped.
    pub fn observe<'a>(&mut self, records: impl IntoIterator<Item = &'a WindowRecord>) {
        for record in records {
            if record.features.len() != self.bins.len() {
                continue;
            }
            let hour = hour_of(record);
            if !self.remember(key_of(record)) {
                continue;
            }
            let bins: Vec<u8> = record
                .features
                .iter()
                .zip(&self.bins)
                .map(|(&x, b)| b.of(x))
                .collect();
            let Some(slot) = self.slot(hour) else {
                continue;
            };
            slot.windows += 1;
            for (f, b) in bins.into_iter().enumerate() {
                slot.counts[f * BINS + usize::from(b)] += 1;
            }
        }
    }

    /// PSI of one feature over the covered hours.
    fn psi(&self, feature: usize, windows: usize) -> f64 {
        let n = windows.max(1) as f64;
        let expected = &self.bins[feature].expected;
        let counts = (0..expected.len()).map(|b| {
            self.slots
                .iter()
                .map(|s| s.counts[feature * BINS + b])
                .sum::<u32>()
        });
        counts
            .zip(expected)
            .map(|(count, &expected)| {
                let live = (f64::from(count) / n).max(FLOOR);
                let train = expected.max(FLOOR);
                (live - train) * (live / train).ln()
            })
            .sum()
    }

    /// The model whose training data this monitor compares with.
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    pub fn report(&self) -> DriftReport {
        let windows = self.len();
        let collecting = windows < MIN_WINDOWS;
        let features: Vec<FeatureDrift> = (0..self.names.len())
            .map(|f| {
                let psi = (windows > 0).then(|| self.psi(f, windows));
                FeatureDrift {
                    feature: self.names[f].clone(),
                    psi,
                    status: match psi {
                        Some(psi) if !collecting => DriftStatus::of(psi),
                        _ => DriftStatus::Collecting,
                    },
                }
            })
            .collect();
        let status = if collecting {
            DriftStatus::Collecting
        } else {
            features
                .iter()
                .map(|f| f.status)
                .max()
                .unwrap_or(DriftStatus::Ok)
        };
        DriftReport {
            status,
            model_version: self.model_version.clone(),
            windows,
            hours: self.hours,
            from: self.slots.front().map(|s| hour_text(s.hour)),
            until: self.slots.back().map(|s| hour_text(s.hour + 1)),
            warn_psi: WARN_PSI,
            drift_psi: DRIFT_PSI,
            features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn monitor(hours: u32) -> DriftMonitor {
        // Two features, both trained on a standard normal.
        let q = |v: f64| json!([v, v]);
        let quantiles = json!({"q01": q(-2.326), "q05": q(-1.645), "q50": q(0.0), "q95": q(1.645), "q99": q(2.326)});
        DriftMonitor::new("m1", &["a".into(), "b".into()], &quantiles, hours).unwrap()
    }

    /// Standard-normal-ish values from evenly spread probabilities (logistic approximation).
    fn normal_values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let p = (i as f64 + 0.5) / n as f64;
                ((p / (1.0 - p)).ln() / 1.702) as f32
            })
            .collect()
    }

    /// Window `i`: one a minute, device `i % 10`.
    fn record(i: usize, a: f32, b: f32) -> WindowRecord {
        WindowRecord {
            device_id: format!("d{}", i % 10),
            window_end: domain::time::format(domain::time::from_unix_seconds(
                1_767_225_600 + 60 * i as i64,
            )),
            window_end_ms: (1_767_225_600 + 60 * i as i64) * 1000,
            features: vec![a, b],
        }
    }

    #[test]
    fn bins_merge_equal_edges_and_shares_sum_to_one() {
        let bins = Bins::new(&[
            (0.0, 0.01),
            (0.0, 0.05),
            (1.0, 0.5),
            (2.0, 0.95),
            (3.0, 0.99),
        ])
        .unwrap();
        assert_eq!(bins.edges, [0.0, 1.0, 2.0, 3.0]);
        assert!((bins.expected.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((bins.expected[0] - 0.05).abs() < 1e-12);
        assert_eq!((bins.of(0.0), bins.of(0.5), bins.of(9.0)), (0, 1, 4));
        assert!(
            Bins::new(&[(1.0, 0.1), (0.0, 0.5)]).is_none(),
            "decreasing edges"
        );
    }

    #[test]
    fn a_shifted_feature_drifts_and_the_other_stays_ok() {
        let mut m = monitor(24);
        let values = normal_values(1000);
        let records: Vec<WindowRecord> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| record(i, v, v + 1.0))
            .collect();
        m.observe(&records);
        let report = m.report();
        assert_eq!(report.windows, 1000);
        assert_eq!(report.features[0].status, DriftStatus::Ok, "{report:?}");
        assert!(report.features[0].psi.unwrap() < 0.05, "{report:?}");
        assert!(report.features[1].psi.unwrap() >= DRIFT_PSI, "{report:?}");
        assert_eq!(report.status, DriftStatus::Drift);
        assert_eq!(report.from.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn before_the_first_window_there_is_no_psi_to_report() {
        let report = monitor(2).report();
        assert_eq!(report.windows, 0);
        assert!(report.features.iter().all(|f| f.psi.is_none()), "{report:?}");
    }

    #[test]
    fn memory_is_bounded_by_hours_and_redeliveries_count_once() {
        let mut m = monitor(2);
        let batch: Vec<WindowRecord> = (0..40).map(|i| record(i, 0.0, 0.0)).collect();
        m.observe(&batch);
        m.observe(&batch); // re-delivered
        assert_eq!(m.len(), 40);
        assert_eq!(
            m.report().status,
            DriftStatus::Collecting,
            "fewer than MIN_WINDOWS"
        );
        // A week of windows, one a minute: only the last two hours are kept.
        let week: Vec<WindowRecord> = (40..7 * 24 * 60).map(|i| record(i, 0.0, 0.0)).collect();
        m.observe(&week);
        assert!(m.slots.len() <= 2, "{}", m.slots.len());
        assert!(m.len() <= 120, "{}", m.len());
        assert!(m.recent.len() <= RECENT_KEYS && m.recent_order.len() <= RECENT_KEYS);
        // A late window from before the covered hours is not counted.
        let before = m.len();
        m.observe([&record(0, 9.0, 9.0)].into_iter().map(|r| {
            let mut r = r.clone();
            r.device_id = "late".into();
            Box::leak(Box::new(r)) as &WindowRecord
        }));
        assert_eq!(m.len(), before);
    }

    #[test]
    fn a_window_from_the_future_never_becomes_now() {
        let mut m = monitor(2);
        let mut future = record(0, 0.0, 0.0);
        future.device_id = "skewed".into();
        future.window_end_ms = 253_370_764_800_000; // 9999-01-01
        m.observe([&future]);
        assert_eq!(m.len(), 0, "not counted");
        // Windows of today still count: "now" did not move to year 9999.
        let today: Vec<WindowRecord> = (0..10).map(|i| record(i, 0.0, 0.0)).collect();
        m.observe(&today);
        assert_eq!(m.len(), 10);
    }

    #[test]
    fn a_model_without_quantiles_has_no_monitor() {
        assert!(DriftMonitor::new("m", &["a".into()], &serde_json::Value::Null, 10).is_none());
        let short = json!({"q01": [0.0], "q05": [0.0], "q50": [0.0], "q95": [0.0]});
        assert!(DriftMonitor::new("m", &["a".into()], &short, 10).is_none());
    }
}
