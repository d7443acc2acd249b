//! Shadow scoring: when the model store names a challenger, every window of every `ScoreWindows`
//! batch is scored by it too, after the batch's own work. Its verdicts are never stored and raise
//! no alert; what is kept is how it compares with the champion, per hour of the handler's clock:
//! agreement (both anomalous, only the champion, only the challenger, neither), each model's
//! anomaly (would-be alert) rate, and the distribution of each model's score relative to its own
//! threshold. The counts go to the metrics (`shadow_windows`) and to `/api/model`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use domain::{ScoredPoint, Severity, WindowRecord};
use scoring::{Model, ModelError};

/// Hours of comparison kept (two days: a full daily cycle with room).
pub const SHADOW_HOURS: usize = 48;
/// Upper edges of the score/threshold buckets; the last bucket is everything from 4 up. A window
/// is anomalous from 1.
pub const RATIO_EDGES: [f64; 7] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0];
const BUCKETS: usize = RATIO_EDGES.len() + 1;

/// How the two models' verdicts on one window compare (the `agreement` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    Both,
    ChampionOnly,
    ChallengerOnly,
    Neither,
}

impl Agreement {
    pub const ALL: [Agreement; 4] = [Agreement::Both, Agreement::ChampionOnly, Agreement::ChallengerOnly, Agreement::Neither];

    pub fn as_str(self) -> &'static str {
        match self {
            Agreement::Both => "both",
            Agreement::ChampionOnly => "champion_only",
            Agreement::ChallengerOnly => "challenger_only",
            Agreement::Neither => "neither",
        }
    }

    fn of(champion: bool, challenger: bool) -> Self {
        match (champion, challenger) {
            (true, true) => Agreement::Both,
            (true, false) => Agreement::ChampionOnly,
            (false, true) => Agreement::ChallengerOnly,
            (false, false) => Agreement::Neither,
        }
    }
}

/// One batch compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Windows by [`Agreement`], in [`Agreement::ALL`] order.
    pub counts: [u64; 4],
    pub champion_ratios: [u64; BUCKETS],
    pub challenger_ratios: [u64; BUCKETS],
}

impl Comparison {
    pub fn count(&self, agreement: Agreement) -> u64 {
        self.counts[Agreement::ALL.iter().position(|a| *a == agreement).unwrap_or(0)]
    }

    pub fn windows(&self) -> u64 {
        self.counts.iter().sum()
    }
}

fn bucket(ratio: f64) -> usize {
    RATIO_EDGES.iter().position(|&edge| ratio < edge).unwrap_or(RATIO_EDGES.len())
}

/// Where each of the challenger's features is among the champion's (the windows are decoded for
/// the champion), or the challenger's features the champion's windows do not carry.
pub fn feature_map(champion: &[String], challenger: &[String]) -> Result<Vec<usize>, Vec<String>> {
    let mut missing = Vec::new();
    let map: Vec<usize> = challenger
        .iter()
        .filter_map(|name| {
            let at = champion.iter().position(|c| c == name);
            if at.is_none() {
                missing.push(name.clone());
            }
            at
        })
        .collect();
    if missing.is_empty() {
        Ok(map)
    } else {
        Err(missing)
    }
}

/// Scores `records` with `challenger` in one run and compares each window with the champion's
/// point for it. `points` are the champion's verdicts in record order, without the windows it
/// could not score (those, and the challenger's own non-finite scores, are left out). `map`
/// ([`feature_map`]) reorders the champion's features for the challenger; the identity order
/// costs no copy.
pub fn compare(
    champion_threshold: f64,
    points: &[ScoredPoint],
    records: &[WindowRecord],
    challenger: &Model,
    map: &[usize],
) -> Result<Comparison, ModelError> {
    let identity = map.len() == records.first().map_or(map.len(), |r| r.features.len())
        && map.iter().enumerate().all(|(i, &j)| i == j);
    let remapped: Vec<WindowRecord>;
    let records_for_challenger = if identity {
        records
    } else {
        remapped = records
            .iter()
            .map(|r| WindowRecord {
                device_id: r.device_id.clone(),
                window_end: r.window_end.clone(),
                window_end_ms: r.window_end_ms,
                features: map.iter().map(|&j| r.features.get(j).copied().unwrap_or(f32::NAN)).collect(),
            })
            .collect();
        &remapped
    };
    let verdicts = challenger.assess(records_for_challenger)?;
    let threshold = challenger.info.threshold;
    let mut out = Comparison::default();
    let mut next = points.iter().peekable();
    for (i, record) in records.iter().enumerate() {
        let Some(point) = next.next_if(|p| p.device_id == record.device_id && p.window_end_ms == record.window_end_ms) else {
            continue; // the champion could not score it
        };
        if !verdicts.is_finite(i) {
            continue;
        }
        let champion = point.severity != Severity::Normal;
        let challenger_anomalous = verdicts.severity(i) != Severity::Normal;
        let agreement = Agreement::of(champion, challenger_anomalous);
        out.counts[Agreement::ALL.iter().position(|a| *a == agreement).unwrap_or(0)] += 1;
        out.champion_ratios[bucket(point.score / champion_threshold)] += 1;
        out.challenger_ratios[bucket(verdicts.score(i) / threshold)] += 1;
    }
    Ok(out)
}

/// One hour of comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShadowHour {
    /// The hour's start (RFC 3339, the handler's clock).
    pub hour: String,
    #[serde(skip)]
    hour_ms: i64,
    pub windows: u64,
    pub both: u64,
    pub champion_only: u64,
    pub challenger_only: u64,
    pub neither: u64,
    /// Anomalous windows / windows: what each would have alerted on.
    pub champion_anomaly_rate: f64,
    pub challenger_anomaly_rate: f64,
    /// Windows per score/threshold bucket (edges [`RATIO_EDGES`]).
    pub champion_score_ratio: [u64; BUCKETS],
    pub challenger_score_ratio: [u64; BUCKETS],
    /// Batches the challenger could not score.
    pub failures: u64,
}

impl ShadowHour {
    fn add(&mut self, c: &Comparison) {
        self.both += c.count(Agreement::Both);
        self.champion_only += c.count(Agreement::ChampionOnly);
        self.challenger_only += c.count(Agreement::ChallengerOnly);
        self.neither += c.count(Agreement::Neither);
        self.windows += c.windows();
        for (sum, n) in self.champion_score_ratio.iter_mut().zip(c.champion_ratios) {
            *sum += n;
        }
        for (sum, n) in self.challenger_score_ratio.iter_mut().zip(c.challenger_ratios) {
            *sum += n;
        }
        let rate = |n: u64| if self.windows == 0 { 0.0 } else { n as f64 / self.windows as f64 };
        self.champion_anomaly_rate = rate(self.both + self.champion_only);
        self.challenger_anomaly_rate = rate(self.both + self.challenger_only);
    }
}

/// What `/api/model` shows of the shadow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowReport {
    pub challenger_version: String,
    /// When this challenger's comparison started.
    pub since: String,
    pub ratio_edges: [f64; 7],
    /// Newest hour first.
    pub hours: Vec<ShadowHour>,
}

struct Log {
    challenger_version: String,
    since: String,
    hours: VecDeque<ShadowHour>,
}

/// The comparison of the current challenger, hour by hour; it starts over with each challenger.
#[derive(Default)]
pub struct Shadow {
    log: Mutex<Option<Log>>,
}

const HOUR_MS: i64 = 3_600_000;

impl Shadow {
    fn with_hour(&self, challenger_version: &str, now_ms: i64, f: impl FnOnce(&mut ShadowHour)) {
        let mut guard = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|l| l.challenger_version != challenger_version) {
            *guard = Some(Log {
                challenger_version: challenger_version.to_string(),
                since: domain::time::format_ms(now_ms),
                hours: VecDeque::new(),
            });
        }
        let Some(log) = guard.as_mut() else { return };
        let hour_ms = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
        // Newest first. A batch that read the clock before the hour turned can record after
        // one that read it after: it adds to its own hour, wherever that is.
        let at = log.hours.iter().position(|h| h.hour_ms <= hour_ms).unwrap_or(log.hours.len());
        if log.hours.get(at).is_none_or(|h| h.hour_ms != hour_ms) {
            log.hours.insert(at, ShadowHour {
                hour: domain::time::format_ms(hour_ms),
                hour_ms,
                ..ShadowHour::default()
            });
            log.hours.truncate(SHADOW_HOURS);
        }
        if let Some(hour) = log.hours.get_mut(at) {
            f(hour);
        }
    }

    /// Starts the comparison over (the champion it compares against changed).
    pub fn reset(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn record(&self, challenger_version: &str, comparison: &Comparison, now_ms: i64) {
        self.with_hour(challenger_version, now_ms, |h| h.add(comparison));
    }

    pub fn failed(&self, challenger_version: &str, now_ms: i64) {
        self.with_hour(challenger_version, now_ms, |h| h.failures += 1);
    }

    /// The comparison of `challenger_version`, if that is the one being recorded.
    pub fn report(&self, challenger_version: &str) -> Option<ShadowReport> {
        let guard = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let log = guard.as_ref().filter(|l| l.challenger_version == challenger_version)?;
        Some(ShadowReport {
            challenger_version: log.challenger_version.clone(),
            since: log.since.clone(),
            ratio_edges: RATIO_EDGES,
            hours: log.hours.iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenger_may_read_the_champions_features_in_any_order_but_no_others() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let champion = names(&["a", "b", "c"]);
        assert_eq!(feature_map(&champion, &names(&["a", "b", "c"])), Ok(vec![0, 1, 2]));
        assert_eq!(feature_map(&champion, &names(&["c", "a"])), Ok(vec![2, 0]));
        assert_eq!(feature_map(&champion, &names(&["a", "x", "y"])), Err(names(&["x", "y"])));
    }

    /// Windows whose features are in another order than the challenger's, with the map back,
    /// compare exactly as the same windows in the challenger's own order.
    #[test]
    fn reordered_windows_compare_as_the_challengers_own() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default.onnx"));
        let model = Model::load_file(path).unwrap();
        let f = model.feature_count();
        let records: Vec<WindowRecord> = (0..40)
            .map(|i| WindowRecord {
                device_id: format!("d{}", i % 3),
                window_end: format!("w{i}"),
                window_end_ms: i,
                // The training means (normal), and every fourth window one feature 10 sd off.
                features: model
                    .info
                    .feature_mean
                    .iter()
                    .zip(&model.info.feature_std)
                    .enumerate()
                    .map(|(j, (m, sd))| (m + if i % 4 == 0 && j as i64 == i % f as i64 { 10.0 * sd } else { 0.0 }) as f32)
                    .collect(),
            })
            .collect();
        let verdicts = model.assess(&records).unwrap();
        let points: Vec<ScoredPoint> = (0..records.len())
            .map(|i| ScoredPoint {
                device_id: records[i].device_id.clone(),
                window_end: records[i].window_end.clone(),
                window_end_ms: records[i].window_end_ms,
                score: verdicts.score(i),
                severity: verdicts.severity(i),
                contributions: verdicts.channel_values(i),
            })
            .collect();
        let identity: Vec<usize> = (0..f).collect();
        let own = compare(model.info.threshold, &points, &records, &model, &identity).unwrap();
        assert!(own.count(Agreement::Both) > 0 && own.count(Agreement::Neither) > 0, "{own:?}");
        assert_eq!(own.count(Agreement::ChampionOnly) + own.count(Agreement::ChallengerOnly), 0);
        // The champion's windows carry the features reversed; the map points back.
        let reversed: Vec<WindowRecord> = records
            .iter()
            .map(|r| WindowRecord { features: r.features.iter().rev().copied().collect(), ..r.clone() })
            .collect();
        let back: Vec<usize> = (0..f).map(|j| f - 1 - j).collect();
        assert_eq!(compare(model.info.threshold, &points, &reversed, &model, &back).unwrap(), own);
        // Without the map the challenger would read them wrong.
        assert_ne!(compare(model.info.threshold, &points, &reversed, &model, &identity).unwrap(), own);
    }

    #[test]
    fn buckets_put_the_threshold_at_one() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(0.99), 3);
        assert_eq!(bucket(1.0), 4);
        assert_eq!(bucket(3.9), 6);
        assert_eq!(bucket(4.0), 7);
        assert_eq!(bucket(f64::INFINITY), 7);
    }

    #[test]
    fn hours_roll_over_and_a_new_challenger_starts_over() {
        let shadow = Shadow::default();
        let c = Comparison { counts: [1, 2, 3, 4], ..Comparison::default() };
        let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        shadow.record("c1", &c, t0 + 5);
        shadow.record("c1", &c, t0 + 10);
        shadow.failed("c1", t0 + 11);
        shadow.record("c1", &c, t0 + HOUR_MS + 1);
        let report = shadow.report("c1").unwrap();
        assert_eq!(report.hours.len(), 2);
        let older = &report.hours[1];
        assert_eq!((older.windows, older.both, older.champion_only, older.challenger_only, older.neither, older.failures), (20, 2, 4, 6, 8, 1));
        assert_eq!(older.hour, "2026-01-01T00:00:00Z");
        assert!((older.champion_anomaly_rate - 6.0 / 20.0).abs() < 1e-12);
        assert!((older.challenger_anomaly_rate - 8.0 / 20.0).abs() < 1e-12);
        assert_eq!(shadow.report("c2"), None);
        shadow.record("c2", &c, t0 + 2 * HOUR_MS);
        assert_eq!(shadow.report("c1"), None);
        assert_eq!(shadow.report("c2").unwrap().hours.len(), 1);
        for i in 0..(SHADOW_HOURS as i64 + 5) {
            shadow.record("c2", &c, t0 + i * HOUR_MS);
        }
        assert_eq!(shadow.report("c2").unwrap().hours.len(), SHADOW_HOURS);
    }

    #[test]
    fn a_batch_that_read_the_clock_before_the_hour_turned_adds_to_its_own_hour() {
        let shadow = Shadow::default();
        let c = Comparison { counts: [1, 0, 0, 0], ..Comparison::default() };
        let t0 = 1_767_225_600_000;
        shadow.record("c", &c, t0 + 10);
        shadow.record("c", &c, t0 + HOUR_MS + 5); // the next hour's batch records first
        shadow.record("c", &c, t0 + HOUR_MS - 1); // the slow batch of the hour before
        shadow.record("c", &c, t0 + HOUR_MS + 9);
        let hours = shadow.report("c").unwrap().hours;
        assert_eq!(hours.iter().map(|h| (h.hour_ms, h.windows)).collect::<Vec<_>>(), vec![(t0 + HOUR_MS, 2), (t0, 2)]);
        shadow.reset();
        assert_eq!(shadow.report("c"), None, "a new champion starts the comparison over");
    }
}
