//! Drift as a retraining trigger: when the live windows have drifted from the training data
//! (some feature's PSI at or above the drift threshold) for `ANOMALY_RETRAIN_AFTER_HOURS` of the
//! handler's clock without a break, the handler says once that retraining is recommended (a log
//! line, the `retraining_recommended` metric, the alert rule of the same name). It does not
//! retrain: the README shows the retrain → upload → shadow → promote loop. The watch starts over
//! when drift ends or the champion changes.
//!
//! Drift only counts once the monitor covers its whole period (`ANOMALY_DRIFT_HOURS` of data):
//! a few hours of a daily cycle read as drift against a training set that saw the whole day (a
//! healthy simulated feed does after a restart), and would recommend retraining after every cold
//! start.

use std::sync::Mutex;
use std::time::Duration;

use scoring::drift::{DriftReport, DriftStatus};

/// Drift is looked at no more often than this (a report walks every feature's bins), and at
/// least ten times within the configured run.
pub const CHECK_EVERY_MS: i64 = 60_000;

/// What the signal carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub model_version: String,
    /// When drift was first seen in this unbroken run (the handler's clock, ms).
    pub drifting_since_ms: i64,
    /// The drifting features, most drifted first, with their PSI.
    pub features: Vec<(String, f64)>,
}

#[derive(Debug, Default)]
struct State {
    model_version: String,
    last_check_ms: Option<i64>,
    drifting_since_ms: Option<i64>,
    signalled: bool,
}

pub struct RetrainWatch {
    after: Duration,
    check_every_ms: i64,
    state: Mutex<State>,
}

/// Hours of data the report covers, from its first hour to the end of its last.
fn covered_hours(report: &DriftReport) -> i64 {
    let at = |t: &Option<String>| t.as_deref().and_then(domain::time::parse);
    match (at(&report.from), at(&report.until)) {
        (Some(from), Some(until)) => (until - from).whole_hours(),
        _ => 0,
    }
}

impl RetrainWatch {
    pub fn new(after: Duration) -> Self {
        let tenth = i64::try_from(after.as_millis() / 10).unwrap_or(i64::MAX);
        RetrainWatch {
            after,
            check_every_ms: tenth.min(CHECK_EVERY_MS),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether it is time to look at drift again.
    pub fn due(&self, now_ms: i64) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.last_check_ms.is_none_or(|t| now_ms - t >= self.check_every_ms)
    }

    /// Takes the drift `report` seen at `now_ms`; returns the recommendation when this look
    /// completes an unbroken drift of the configured length (once per run of drift).
    pub fn observe(&self, report: &DriftReport, now_ms: i64) -> Option<Recommendation> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.last_check_ms = Some(now_ms);
        if state.model_version != report.model_version {
            *state = State {
                model_version: report.model_version.clone(),
                last_check_ms: Some(now_ms),
                ..State::default()
            };
        }
        if report.status != DriftStatus::Drift || covered_hours(report) < report.hours {
            state.drifting_since_ms = None;
            state.signalled = false;
            return None;
        }
        let since = *state.drifting_since_ms.get_or_insert(now_ms);
        let lasted = u128::try_from(now_ms - since).unwrap_or(0);
        if state.signalled || lasted < self.after.as_millis() {
            return None;
        }
        state.signalled = true;
        let mut features: Vec<(String, f64)> = report
            .features
            .iter()
            .filter_map(|f| Some((f.feature.clone(), f.psi?)))
            .filter(|(_, psi)| *psi >= report.drift_psi)
            .collect();
        features.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(Recommendation {
            model_version: report.model_version.clone(),
            drifting_since_ms: since,
            features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoring::drift::FeatureDrift;

    fn report(model: &str, psi: f64) -> DriftReport {
        DriftReport {
            status: DriftStatus::of(psi),
            model_version: model.into(),
            windows: 500,
            hours: 24,
            from: Some("2026-01-01T00:00:00Z".into()),
            until: Some("2026-01-02T00:00:00Z".into()),
            warn_psi: scoring::drift::WARN_PSI,
            drift_psi: scoring::drift::DRIFT_PSI,
            features: vec![
                FeatureDrift { feature: "a".into(), psi: Some(psi), status: DriftStatus::of(psi) },
                FeatureDrift { feature: "b".into(), psi: Some(psi * 2.0), status: DriftStatus::of(psi * 2.0) },
            ],
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn signals_once_after_an_unbroken_run_of_drift_and_again_after_a_break() {
        let watch = RetrainWatch::new(Duration::from_secs(2 * 3600));
        assert_eq!(watch.observe(&report("m", 0.3), 0), None);
        assert_eq!(watch.observe(&report("m", 0.3), HOUR), None);
        let signal = watch.observe(&report("m", 0.3), 2 * HOUR).expect("two hours of drift");
        assert_eq!(signal.drifting_since_ms, 0);
        assert_eq!(signal.features.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(watch.observe(&report("m", 0.3), 3 * HOUR), None, "once per run");
        // A break (warn only) starts over.
        assert_eq!(watch.observe(&report("m", 0.15), 4 * HOUR), None);
        assert_eq!(watch.observe(&report("m", 0.3), 5 * HOUR), None);
        assert!(watch.observe(&report("m", 0.3), 7 * HOUR).is_some());
        // A new champion starts over too.
        assert_eq!(watch.observe(&report("m2", 0.3), 8 * HOUR), None);
        assert!(watch.observe(&report("m2", 0.3), 10 * HOUR).is_some());
    }

    #[test]
    fn drift_over_part_of_the_period_does_not_count() {
        let watch = RetrainWatch::new(Duration::ZERO);
        let mut partial = report("m", 0.5);
        partial.until = Some("2026-01-01T06:00:00Z".into());
        assert_eq!(watch.observe(&partial, 0), None, "6 of 24 hours covered");
        assert!(watch.observe(&report("m", 0.5), 1).is_some());
    }

    #[test]
    fn looks_at_most_once_a_minute() {
        let watch = RetrainWatch::new(Duration::from_secs(3600));
        assert!(watch.due(0));
        watch.observe(&report("m", 0.0), 0);
        assert!(!watch.due(CHECK_EVERY_MS - 1));
        assert!(watch.due(CHECK_EVERY_MS));
        // A short run is looked at ten times within it.
        let quick = RetrainWatch::new(Duration::from_secs(100));
        quick.observe(&report("m", 0.0), 0);
        assert!(quick.due(10_000) && !quick.due(9_999));
    }
}
