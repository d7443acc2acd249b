//! The live view: the most recent scores of each device, in memory, for the dashboard.
//!
//! The durable stores keep anomalies; the dashboard also needs the normal scores around them
//! (a device's score against the threshold over time). This keeps the last [`POINTS_PER_DEVICE`]
//! scored windows of at most [`MAX_DEVICES`] devices: memory is bounded whatever the traffic,
//! and reading it costs one lock and a copy of what is shown. A re-delivered window replaces its
//! earlier point instead of adding one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use domain::{ScoredPoint, Severity};

/// Scored windows kept per device (two hours of one-minute windows).
pub const POINTS_PER_DEVICE: usize = 120;
/// Devices tracked; past this the least recently seen device makes room.
pub const MAX_DEVICES: usize = 2000;

/// A kept point: the scored window as the pipeline reported it.
pub type LivePoint = ScoredPoint;

#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    pub device_id: String,
    pub windows: u64,
    pub last_window_end: String,
    pub last_score: f64,
    pub last_severity: Severity,
    /// Anomalous points among the kept ones.
    pub recent_anomalies: usize,
}

#[derive(Default)]
struct Device {
    windows: u64,
    points: VecDeque<LivePoint>,
    /// Order of last update, for evicting the least recently seen device.
    touched: u64,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<String, Device>,
    clock: u64,
    newest_ms: Option<i64>,
}

#[derive(Default)]
pub struct LiveView {
    inner: Mutex<Inner>,
}

impl LiveView {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a batch of scored windows.
    pub fn record(&self, batch: impl IntoIterator<Item = ScoredPoint>) {
        let mut inner = self.lock();
        for point in batch {
            inner.clock += 1;
            let clock = inner.clock;
            inner.newest_ms = Some(
                inner
                    .newest_ms
                    .map_or(point.window_end_ms, |n| n.max(point.window_end_ms)),
            );
            let known = inner.devices.contains_key(&point.device_id);
            if !known && inner.devices.len() >= MAX_DEVICES {
                if let Some(oldest) = inner
                    .devices
                    .iter()
                    .min_by_key(|(_, d)| d.touched)
                    .map(|(k, _)| k.clone())
                {
                    inner.devices.remove(&oldest);
                }
            }
            if !known {
                // The id is copied only for a device not seen yet.
                inner.devices.insert(point.device_id.clone(), Device::default());
            }
            let Some(device) = inner.devices.get_mut(&point.device_id) else {
                continue;
            };
            device.touched = clock;
            // Points are kept in window order: a binary search finds the window or its place.
            let at = device
                .points
                .partition_point(|p| p.window_end_ms < point.window_end_ms);
            match device.points.get(at) {
                Some(kept) if kept.window_end_ms == point.window_end_ms => device.points[at] = point,
                _ => {
                    device.windows += 1;
                    device.points.insert(at, point);
                    if device.points.len() > POINTS_PER_DEVICE {
                        device.points.pop_front();
                    }
                }
            }
        }
    }

    /// The newest window end seen (ms), the dashboard's "now" for data-time figures; never
    /// past the clock, so a window from the future cannot blind the "last hour" figures.
    pub fn newest_ms(&self) -> Option<i64> {
        let clock = domain::time::now_ms();
        self.lock().newest_ms.map(|newest| newest.min(clock))
    }

    /// Every device, most recently updated first.
    pub fn devices(&self) -> Vec<DeviceSummary> {
        let inner = self.lock();
        let mut devices: Vec<(&String, &Device)> = inner.devices.iter().collect();
        devices.sort_by_key(|d| std::cmp::Reverse(d.1.touched));
        devices
            .into_iter()
            .filter_map(|(id, d)| {
                let last = d.points.back()?;
                Some(DeviceSummary {
                    device_id: id.clone(),
                    windows: d.windows,
                    last_window_end: last.window_end.clone(),
                    last_score: last.score,
                    last_severity: last.severity,
                    recent_anomalies: d.points.iter().filter(|p| p.severity != Severity::Normal).count(),
                })
            })
            .collect()
    }

    /// A device's kept points, oldest first.
    pub fn points(&self, device_id: &str) -> Option<Vec<LivePoint>> {
        self.lock()
            .devices
            .get(device_id)
            .map(|d| d.points.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(device: &str, minute: i64, score: f64) -> LivePoint {
        LivePoint {
            device_id: device.to_string(),
            window_end: format!("m{minute}"),
            window_end_ms: minute * 60_000,
            score,
            severity: if score >= 1.0 { Severity::Low } else { Severity::Normal },
            contributions: domain::ChannelValues::new(vec!["a".to_string()].into(), vec![score]),
        }
    }

    #[test]
    fn points_are_bounded_ordered_and_replaced_on_redelivery() {
        let view = LiveView::new();
        view.record((0..500).rev().map(|m| point("d1", m, 0.5)));
        view.record([point("d1", 499, 3.0)]); // re-delivered, now scored higher
        let points = view.points("d1").unwrap();
        assert_eq!(points.len(), POINTS_PER_DEVICE);
        assert!(points
            .windows(2)
            .all(|w| w[0].window_end_ms < w[1].window_end_ms));
        assert_eq!(points.last().unwrap().score, 3.0);
        let d = &view.devices()[0];
        assert_eq!((d.windows, d.recent_anomalies), (500, 1));
        assert_eq!(view.newest_ms(), Some(499 * 60_000));
    }

    #[test]
    fn the_newest_window_is_never_past_the_clock() {
        let view = LiveView::new();
        view.record([point("d1", 1, 0.5)]);
        assert_eq!(view.newest_ms(), Some(60_000));
        view.record([point("d1", i64::MAX / 60_001, 0.5)]);
        assert!(view.newest_ms().unwrap() <= domain::time::now_ms());
    }

    #[test]
    fn devices_are_bounded() {
        let view = LiveView::new();
        view.record((0..MAX_DEVICES + 10).map(|i| point(&format!("d{i}"), 1, 0.1)));
        let devices = view.devices();
        assert_eq!(devices.len(), MAX_DEVICES);
        assert_eq!(devices[0].device_id, format!("d{}", MAX_DEVICES + 9));
        assert!(
            view.points("d0").is_none(),
            "the least recently seen made room"
        );
    }
}
