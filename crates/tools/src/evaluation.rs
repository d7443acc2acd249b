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
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }
}
