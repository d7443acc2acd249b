//! `sensor-anomaly incidents`: scored windows in (JSON lines, as `sensor-anomaly score` writes
//! them), incident messages out (JSON lines, as the handler publishes them).
//!
//! The transitions come from the handler's own rules ([`pipeline::incidents::Tracker`], the code
//! `ScoreWindows` runs), so an offline evaluation (SKAB's changepoint benchmark:
//! `scripts/benchmark-skab-nab.sh`) or a what-if on a history with other settings measures what
//! the service would have done, not a re-implementation. Each device's windows are taken in
//! window order, as one Event Hubs partition delivers them; a window repeated at or before the
//! device's last one is late and changes nothing, as in the handler.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

use domain::{
    Alert, ChannelValues, IncidentMessage, Lineage, ScoredPoint, ScoredWindow, Severity,
    TrackerState, Transition,
};
use pipeline::incidents::{Step, Tracker};
use pipeline::IncidentPolicy;

#[derive(Debug, thiserror::Error)]
pub enum TrackFileError {
    #[error("cannot read line {line}: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write incident messages: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write incident messages: {0}")]
    Json(#[from] serde_json::Error),
}

/// What one run saw and made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackSummary {
    pub windows: usize,
    pub refused: usize,
    /// Windows at or before their device's last window (repeats, or out of order).
    pub late: usize,
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    /// Incidents still open at the end of the input.
    pub open_at_end: usize,
}

/// One scored window as the tracker takes it, with its model version, or why the line cannot
/// be one.
fn point(line: &str) -> Result<(ScoredPoint, Option<Alert>, String), String> {
    let scored: ScoredWindow = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let window_end_ms = sinks::unix_ms(&scored.window_end)
        .ok_or_else(|| format!("window_end {:?} is not an RFC 3339 time", scored.window_end))?;
    if !scored.score.is_finite() {
        return Err("score is not a finite number".into());
    }
    let names: Arc<[String]> = scored.contributions.keys().cloned().collect();
    let values: Vec<f64> = scored.contributions.values().copied().collect();
    let alert = (scored.severity != Severity::Normal)
        .then(|| Alert::new(&scored, &Lineage::default()));
    let point = ScoredPoint {
        device_id: scored.device_id,
        window_end: scored.window_end,
        window_end_ms,
        score: scored.score,
        severity: scored.severity,
        contributions: ChannelValues::new(names, values),
    };
    Ok((point, alert, scored.model_version))
}

/// Runs every device's windows through the tracker (each device in window order; devices in
/// the order they first appear) and writes each transition as one JSON line. Unreadable lines
/// are reported through `refused` and skipped. One tracker per device whatever the model, as in
/// the store (an incident open when the model changes is continued by the next one).
pub fn track_lines(
    policy: &IncidentPolicy,
    input: impl BufRead,
    out: &mut impl Write,
    mut refused: impl FnMut(usize, String),
) -> Result<TrackSummary, TrackFileError> {
    let mut summary = TrackSummary::default();
    let mut order: Vec<String> = Vec::new();
    let mut by_tracker: BTreeMap<String, Vec<(ScoredPoint, Option<Alert>, String)>> =
        BTreeMap::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|source| TrackFileError::Read { line: i + 1, source })?;
        if line.trim().is_empty() {
            continue;
        }
        match point(&line) {
            Ok((point, alert, model_version)) => {
                let windows = by_tracker.entry(point.device_id.clone()).or_default();
                if windows.is_empty() {
                    order.push(point.device_id.clone());
                }
                windows.push((point, alert, model_version));
                summary.windows += 1;
            }
            Err(reason) => {
                summary.refused += 1;
                refused(i + 1, reason);
            }
        }
    }
    for key in order {
        let mut windows = by_tracker.remove(&key).unwrap_or_default();
        windows.sort_by_key(|(p, _, _)| p.window_end_ms);
        let first_model = windows.first().map_or("", |(_, _, m)| m.as_str());
        let mut state = TrackerState::new(&key, first_model);
        for (point, alert, model_version) in &windows {
            if &state.model_version != model_version {
                state.model_version.clone_from(model_version);
            }
            let mut tracker = Tracker {
                policy,
                state: &mut state,
            };
            match tracker.observe(point, alert.as_ref()) {
                Step::Late => summary.late += 1,
                Step::Taken(messages) => {
                    for message in messages {
                        count(&mut summary, &message);
                        serde_json::to_writer(&mut *out, &message)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
        }
        summary.open_at_end += usize::from(state.open.is_some());
    }
    out.flush()?;
    Ok(summary)
}

fn count(summary: &mut TrackSummary, message: &IncidentMessage) {
    match message.transition {
        Transition::Opened => summary.opened += 1,
        Transition::Escalated => summary.escalated += 1,
        Transition::Resolved => summary.resolved += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(device: &str, minute: u32, score: f64) -> String {
        let severity = Severity::from_ratio(score);
        serde_json::json!({
            "device_id": device,
            "window_end": format!("2026-01-01T00:{minute:02}:00Z"),
            "score": score, "threshold": 1.0, "is_anomaly": severity != Severity::Normal,
            "severity": severity, "contributions": {"pressure": score * 0.2, "vibration": score * 0.8},
            "top_channel": "vibration", "top_feature": "vibration_mean", "top_feature_z": 4.0,
            "explanation": format!("vibration at minute {minute}"), "model_version": "m1",
        })
        .to_string()
    }

    fn run(lines: &[String]) -> (TrackSummary, Vec<IncidentMessage>, Vec<(usize, String)>) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let summary = track_lines(
            &IncidentPolicy::default(),
            lines.join("\n").as_bytes(),
            &mut out,
            |n, why| bad.push((n, why)),
        )
        .unwrap();
        let messages = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (summary, messages, bad)
    }

    #[test]
    fn an_episode_opens_and_resolves_as_in_the_handler_and_a_repeat_changes_nothing() {
        // Minutes 3 and 4 anomalous (2 of 3 opens at minute 4), 5..=9 quiet (resolves at 9).
        let mut lines: Vec<String> = (0..12)
            .map(|m| line("pump-1", m, if (3..5).contains(&m) { 1.5 } else { 0.2 }))
            .collect();
        lines.push(line("pump-1", 4, 1.5)); // a repeat: late
        lines.push("not json".into());
        lines.reverse(); // out of order in the file: each device is taken in window order
        let (summary, messages, bad) = run(&lines);
        let kinds: Vec<(Transition, &str)> =
            messages.iter().map(|m| (m.transition, m.at.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (Transition::Opened, "2026-01-01T00:04:00Z"),
                (Transition::Resolved, "2026-01-01T00:09:00Z")
            ]
        );
        assert_eq!(messages[0].incident.opened_at, "2026-01-01T00:03:00Z");
        assert_eq!(messages[1].incident.anomalous_windows, 2);
        assert_eq!(summary.windows, 13);
        assert_eq!(summary.late, 1);
        assert_eq!((summary.opened, summary.resolved, summary.open_at_end), (1, 1, 0));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 1, "the first line of the reversed file");
    }

    #[test]
    fn devices_are_tracked_apart_and_an_unfinished_incident_is_counted_open() {
        let mut lines = Vec::new();
        for m in 0..4 {
            lines.push(line("pump-1", m, 10.0)); // critical: opens at once
            lines.push(line("pump-2", m, 0.1));
        }
        let (summary, messages, _) = run(&lines);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].incident.device_id, "pump-1");
        assert_eq!(messages[0].incident.incident_id, "pump-1/2026-01-01T00:00:00Z");
        assert_eq!(summary.open_at_end, 1);
    }
}
