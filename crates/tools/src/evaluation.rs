//! Detection quality against labelled windows, and latency percentiles.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// What the labels say about one window.
#[derive(Debug, Clone)]
pub struct Truth {
    pub anomalous: bool,
    pub fault_kind: Option<String>,
    pub fault_channel: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindReport {
    pub windows: usize,
    pub detected: usize,
    pub recall: f64,
    pub top_channel_accuracy: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Quality {
    pub labelled_anomalous: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Among detected faulty windows, how often the top contribution names the faulty channel.
    pub top_channel_accuracy: f64,
    pub per_fault_kind: BTreeMap<String, KindReport>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// `truth` and `predicted` are keyed by (device, window end); `predicted` maps each window
/// flagged anomalous to its top channel.
pub fn evaluate(
    truth: &HashMap<(String, String), Truth>,
    predicted: &HashMap<(String, String), String>,
) -> Quality {
    let mut q = Quality::default();
    let mut channel_hits = 0;
    let mut channel_total = 0;
    let mut kinds: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    for (key, t) in truth {
        let flagged = predicted.get(key);
        if t.anomalous {
            q.labelled_anomalous += 1;
            let kind = kinds
                .entry(t.fault_kind.clone().unwrap_or_else(|| "unknown".into()))
                .or_default();
            kind.0 += 1;
            match flagged {
                Some(top) => {
                    q.true_positives += 1;
                    kind.1 += 1;
                    if let Some(channel) = &t.fault_channel {
                        channel_total += 1;
                        kind.3 += 1;
                        if channel == top {
                            channel_hits += 1;
                            kind.2 += 1;
                        }
                    }
                }
                None => q.false_negatives += 1,
            }
        } else if flagged.is_some() {
            q.false_positives += 1;
        }
    }
    q.precision = ratio(q.true_positives, q.true_positives + q.false_positives);
    q.recall = ratio(q.true_positives, q.true_positives + q.false_negatives);
    q.f1 = if q.precision + q.recall > 0.0 {
        2.0 * q.precision * q.recall / (q.precision + q.recall)
    } else {
        0.0
    };
    q.top_channel_accuracy = ratio(channel_hits, channel_total);
    q.per_fault_kind = kinds
        .into_iter()
        .map(|(k, (windows, detected, hits, total))| {
            (
                k,
                KindReport {
                    windows,
                    detected,
                    recall: ratio(detected, windows),
                    top_channel_accuracy: ratio(hits, total),
                },
            )
        })
        .collect();
    q
}

/// How incidents line up with the injected fault episodes (runs of labelled windows per device).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IncidentQuality {
    pub episodes: usize,
    /// Episodes with exactly one incident overlapping them.
    pub exactly_one: usize,
    /// Episodes with more than one (the fault was split).
    pub split: usize,
    /// Episodes no incident overlaps.
    pub missed: usize,
    /// Episodes sharing their incident with another episode (two faults close together).
    pub merged: usize,
    pub incidents: usize,
    /// Incidents overlapping no episode.
    pub false_incidents: usize,
    pub false_incidents_per_device_day: f64,
    /// From an episode's first window to the window that opened its incident, for episodes whose
    /// incident opened within them: median and p90, in windows and seconds.
    pub delay_windows_p50: f64,
    pub delay_windows_p90: f64,
    pub delay_secs_p50: f64,
    pub delay_secs_p90: f64,
}

/// One incident as the evaluation needs it: device and instants (ms) of its first anomalous,
/// detecting and last anomalous windows.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSpan {
    pub device_id: String,
    pub opened_ms: i64,
    pub detected_ms: i64,
    pub last_ms: i64,
}

/// `truth` keyed by (device, window end); `window_secs` the window length; `device_days` the
/// fleet's observed time.
pub fn evaluate_incidents(
    truth: &HashMap<(String, String), Truth>,
    incidents: &[IncidentSpan],
    window_secs: i64,
    device_days: f64,
) -> IncidentQuality {
    // Episodes: runs of consecutive labelled windows of one device, as (device, first, last) ms.
    let mut by_device: BTreeMap<&str, Vec<(i64, bool)>> = BTreeMap::new();
    for ((device, end), t) in truth {
        if let Some(ms) = sinks::unix_ms(end) {
            by_device.entry(device).or_default().push((ms, t.anomalous));
        }
    }
    let mut episodes: Vec<(&str, i64, i64)> = Vec::new();
    for (device, windows) in &mut by_device {
        windows.sort_unstable();
        let mut run: Option<(i64, i64)> = None;
        for &(ms, anomalous) in windows.iter() {
            run = match (run, anomalous) {
                (None, true) => Some((ms, ms)),
                (Some((start, _)), true) => Some((start, ms)),
                (Some((start, stop)), false) => {
                    episodes.push((device, start, stop));
                    None
                }
                (None, false) => None,
            };
        }
        if let Some((start, stop)) = run {
            episodes.push((device, start, stop));
        }
    }
    let overlaps = |i: &IncidentSpan, e: &(&str, i64, i64)| {
        i.device_id == e.0 && i.opened_ms <= e.2 && i.last_ms >= e.1
    };
    let mut q = IncidentQuality {
        episodes: episodes.len(),
        incidents: incidents.len(),
        ..IncidentQuality::default()
    };
    let mut delays = Vec::new();
    for e in &episodes {
        let matching: Vec<&IncidentSpan> = incidents.iter().filter(|i| overlaps(i, e)).collect();
        match matching.len() {
            0 => q.missed += 1,
            1 => q.exactly_one += 1,
            _ => q.split += 1,
        }
        if let Some(first) = matching.iter().min_by_key(|i| i.opened_ms) {
            if episodes.iter().filter(|other| overlaps(first, other)).count() > 1 {
                q.merged += 1;
            }
            if first.detected_ms >= e.1 {
                delays.push((first.detected_ms - e.1) as f64 / 1000.0);
            }
        }
    }
    q.false_incidents = incidents
        .iter()
        .filter(|i| !episodes.iter().any(|e| overlaps(i, e)))
        .count();
    q.false_incidents_per_device_day = if device_days > 0.0 {
        q.false_incidents as f64 / device_days
    } else {
        0.0
    };
    // A window is counted from its end: the first faulty window detected at once is 1 window.
    let mut windows: Vec<f64> = delays.iter().map(|s| s / window_secs.max(1) as f64 + 1.0).collect();
    q.delay_windows_p50 = percentile(&mut windows, 50.0);
    q.delay_windows_p90 = percentile(&mut windows, 90.0);
    let mut secs: Vec<f64> = delays.iter().map(|s| s + window_secs as f64).collect();
    q.delay_secs_p50 = percentile(&mut secs, 50.0);
    q.delay_secs_p90 = percentile(&mut secs, 90.0);
    q
}

/// Nearest-rank percentile of `values` (sorted in place); 0 when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(d: &str, w: &str) -> (String, String) {
        (d.to_string(), w.to_string())
    }

    #[test]
    fn confusion_counts_and_channel_accuracy() {
        let mut truth = HashMap::new();
        let faulty = |kind: &str, ch: &str| Truth {
            anomalous: true,
            fault_kind: Some(kind.into()),
            fault_channel: Some(ch.into()),
        };
        truth.insert(key("a", "1"), faulty("spike", "vibration"));
        truth.insert(key("a", "2"), faulty("spike", "vibration"));
        truth.insert(key("a", "3"), faulty("drift", "pressure"));
        truth.insert(
            key("a", "4"),
            Truth {
                anomalous: false,
                fault_kind: None,
                fault_channel: None,
            },
        );
        truth.insert(
            key("a", "5"),
            Truth {
                anomalous: false,
                fault_kind: None,
                fault_channel: None,
            },
        );
        let mut predicted = HashMap::new();
        predicted.insert(key("a", "1"), "vibration".to_string());
        predicted.insert(key("a", "3"), "sound".to_string());
        predicted.insert(key("a", "4"), "sound".to_string());
        let q = evaluate(&truth, &predicted);
        assert_eq!(
            (q.true_positives, q.false_positives, q.false_negatives),
            (2, 1, 1)
        );
        assert!((q.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((q.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((q.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(q.top_channel_accuracy, 0.5);
        assert_eq!(
            q.per_fault_kind["spike"],
            KindReport {
                windows: 2,
                detected: 1,
                recall: 0.5,
                top_channel_accuracy: 1.0
            }
        );
        assert_eq!(q.per_fault_kind["drift"].top_channel_accuracy, 0.0);
    }

    #[test]
    fn incidents_are_matched_to_fault_episodes() {
        let normal = Truth { anomalous: false, fault_kind: None, fault_channel: None };
        let faulty = Truth { anomalous: true, fault_kind: Some("spike".into()), fault_channel: None };
        let minute = |m: i64| format!("2026-01-01T00:{m:02}:00Z");
        let ms = |m: i64| 1_767_225_600_000 + m * 60_000;
        let mut truth = HashMap::new();
        // Device a: faults at minutes 3-5 and 20-22; device b: none.
        for m in 0..40 {
            let t = if (3..=5).contains(&m) || (20..=22).contains(&m) { faulty.clone() } else { normal.clone() };
            truth.insert(key("a", &minute(m)), t);
            truth.insert(key("b", &minute(m)), normal.clone());
        }
        let span = |d: &str, open: i64, detect: i64, last: i64| IncidentSpan {
            device_id: d.into(),
            opened_ms: ms(open),
            detected_ms: ms(detect),
            last_ms: ms(last),
        };
        let incidents = vec![span("a", 3, 4, 5), span("b", 10, 11, 11)];
        let q = evaluate_incidents(&truth, &incidents, 60, 2.0);
        assert_eq!((q.episodes, q.exactly_one, q.missed, q.split, q.merged), (2, 1, 1, 0, 0));
        assert_eq!((q.incidents, q.false_incidents), (2, 1));
        assert_eq!(q.false_incidents_per_device_day, 0.5);
        assert_eq!((q.delay_windows_p50, q.delay_secs_p50), (2.0, 120.0));
        let one_for_both = vec![span("a", 3, 3, 22)];
        let q = evaluate_incidents(&truth, &one_for_both, 60, 2.0);
        assert_eq!((q.exactly_one, q.merged), (2, 2));
        let split = vec![span("a", 3, 4, 3), span("a", 5, 5, 5)];
        assert_eq!(evaluate_incidents(&truth, &split, 60, 2.0).split, 1);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }
}
