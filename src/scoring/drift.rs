//! Drift: does the live data still look like the training data?
//!
//! The model carries per-feature training quantiles (q01, q05, q50, q95, q99). They cut each
//! feature into six bins whose training shares are known (1%, 4%, 45%, 45%, 4%, 1%). The monitor
//! keeps the bins of the last `capacity` windows (a ring: memory is `capacity × features`
//! bytes, however long the process runs) and computes the Population Stability Index per
//! feature: PSI = Σ (live − train) · ln(live / train). Below 0.1 is `ok`, from 0.1 `warn`,
//! from 0.2 `drift`.
//!
//! Windows are counted once: a re-delivered window (same device and window end) already in the
//! ring is not added again. A model reload starts a new monitor (its bins are the new model's).

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::domain::WindowRecord;

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
    pub psi: f64,
    pub status: DriftStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub status: DriftStatus,
    pub model_version: String,
    /// Windows the figures are computed on (the most recent ones), and the most kept.
    pub windows: usize,
    pub capacity: usize,
    pub first_window_end: Option<String>,
    pub last_window_end: Option<String>,
    pub warn_psi: f64,
    pub drift_psi: f64,
    pub features: Vec<FeatureDrift>,
}

struct Entry {
    key: u64,
    window_end: String,
    bins: Box<[u8]>,
}

pub struct DriftMonitor {
    model_version: String,
    names: Vec<String>,
    bins: Vec<Bins>,
    capacity: usize,
    ring: VecDeque<Entry>,
    keys: HashSet<u64>,
    /// counts[feature][bin] over the ring.
    counts: Vec<Vec<u32>>,
}

fn key_of(record: &WindowRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    record.device_id.hash(&mut hasher);
    record.window_end.hash(&mut hasher);
    hasher.finish()
}

impl DriftMonitor {
    /// `None` when the model has no usable training quantiles (drift cannot be measured).
    pub fn new(
        model_version: &str,
        feature_names: &[String],
        quantiles: &serde_json::Value,
        capacity: usize,
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
        let counts = bins.iter().map(|b| vec![0; b.expected.len()]).collect();
        Some(DriftMonitor {
            model_version: model_version.to_string(),
            names: feature_names.to_vec(),
            bins,
            capacity: capacity.max(1),
            ring: VecDeque::with_capacity(capacity.min(1 << 16)),
            keys: HashSet::new(),
            counts,
        })
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Adds scored windows; ones already in the ring (a re-delivery) are skipped.
    pub fn observe<'a>(&mut self, records: impl IntoIterator<Item = &'a WindowRecord>) {
        for record in records {
            if record.features.len() != self.bins.len() {
                continue;
            }
            let key = key_of(record);
            if !self.keys.insert(key) {
                continue;
            }
            if self.ring.len() == self.capacity {
                if let Some(old) = self.ring.pop_front() {
                    self.keys.remove(&old.key);
                    for (f, &b) in old.bins.iter().enumerate() {
                        self.counts[f][usize::from(b)] -= 1;
                    }
                }
            }
            let bins: Box<[u8]> = record
                .features
                .iter()
                .zip(&self.bins)
                .map(|(&x, b)| b.of(x))
                .collect();
            for (f, &b) in bins.iter().enumerate() {
                self.counts[f][usize::from(b)] += 1;
            }
            self.ring.push_back(Entry {
                key,
                window_end: record.window_end.clone(),
                bins,
            });
        }
    }

    /// PSI of one feature over the windows in the ring.
    fn psi(&self, feature: usize) -> f64 {
        let n = self.ring.len().max(1) as f64;
        self.counts[feature]
            .iter()
            .zip(&self.bins[feature].expected)
            .map(|(&count, &expected)| {
                let live = (f64::from(count) / n).max(FLOOR);
                let train = expected.max(FLOOR);
                (live - train) * (live / train).ln()
            })
            .sum()
    }

    pub fn report(&self) -> DriftReport {
        let collecting = self.ring.len() < MIN_WINDOWS;
        let features: Vec<FeatureDrift> = (0..self.names.len())
            .map(|f| {
                let psi = self.psi(f);
                FeatureDrift {
                    feature: self.names[f].clone(),
                    psi,
                    status: if collecting {
                        DriftStatus::Collecting
                    } else {
                        DriftStatus::of(psi)
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
            windows: self.ring.len(),
            capacity: self.capacity,
            first_window_end: self.ring.iter().map(|e| &e.window_end).min().cloned(),
            last_window_end: self.ring.iter().map(|e| &e.window_end).max().cloned(),
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

    fn monitor(capacity: usize) -> DriftMonitor {
        // Two features, both trained on a standard normal.
        let q = |v: f64| json!([v, v]);
        let quantiles = json!({"q01": q(-2.326), "q05": q(-1.645), "q50": q(0.0), "q95": q(1.645), "q99": q(2.326)});
        DriftMonitor::new("m1", &["a".into(), "b".into()], &quantiles, capacity).unwrap()
    }

    /// Deterministic standard-normal-ish values: inverse CDF of evenly spread probabilities.
    fn normal_values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let p = (i as f64 + 0.5) / n as f64;
                // Acklam-free approximation, good enough for binning: logit scaled.
                (1.702f64.recip() * (p / (1.0 - p)).ln()) as f32
            })
            .collect()
    }

    fn record(i: usize, a: f32, b: f32) -> WindowRecord {
        WindowRecord {
            device_id: format!("d{}", i % 10),
            window_end: format!("2026-01-01T{:02}:{:02}:00Z", i / 60 % 24, i % 60),
            features: vec![a, b],
        }
    }

    #[test]
    fn bins_merge_equal_edges_and_shares_sum_to_one() {
        let bins = Bins::new(&[(0.0, 0.01), (0.0, 0.05), (1.0, 0.5), (2.0, 0.95), (3.0, 0.99)]).unwrap();
        assert_eq!(bins.edges, [0.0, 1.0, 2.0, 3.0]);
        assert!((bins.expected.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((bins.expected[0] - 0.05).abs() < 1e-12);
        assert_eq!((bins.of(0.0), bins.of(0.5), bins.of(9.0)), (0, 1, 4));
        assert!(Bins::new(&[(1.0, 0.1), (0.0, 0.5)]).is_none(), "decreasing edges");
    }

    #[test]
    fn a_shifted_feature_drifts_and_the_other_stays_ok() {
        let mut m = monitor(1000);
        let values = normal_values(1000);
        m.observe(
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| record(i, v, v + 1.0))
                .collect::<Vec<_>>()
                .iter(),
        );
        let report = m.report();
        assert_eq!(report.windows, 1000);
        assert_eq!(report.features[0].status, DriftStatus::Ok, "{report:?}");
        assert!(report.features[0].psi < 0.05, "{report:?}");
        assert!(report.features[1].psi >= DRIFT_PSI, "{report:?}");
        assert_eq!(report.status, DriftStatus::Drift);
    }

    #[test]
    fn memory_is_bounded_and_redeliveries_count_once() {
        let mut m = monitor(50);
        let batch: Vec<WindowRecord> = (0..40).map(|i| record(i, 0.0, 0.0)).collect();
        m.observe(batch.iter());
        m.observe(batch.iter()); // re-delivered
        assert_eq!(m.len(), 40);
        let more: Vec<WindowRecord> = (40..10_000).map(|i| record(i, 0.0, 0.0)).collect();
        m.observe(more.iter());
        assert_eq!(m.len(), 50);
        assert_eq!(m.keys.len(), 50);
        assert_eq!(m.counts[0].iter().sum::<u32>(), 50);
        assert_eq!(m.report().status, DriftStatus::Collecting, "fewer than MIN_WINDOWS");
    }

    #[test]
    fn a_model_without_quantiles_has_no_monitor() {
        assert!(DriftMonitor::new("m", &["a".into()], &serde_json::Value::Null, 10).is_none());
        let short = json!({"q01": [0.0], "q05": [0.0], "q50": [0.0], "q95": [0.0]});
        assert!(DriftMonitor::new("m", &["a".into()], &short, 10).is_none());
    }
}
