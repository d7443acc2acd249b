//! Step 5: anomalous windows become incidents, one per episode per device, instead of one alert
//! per window. Pure rules here ([`Tracker`]); the batch step that loads and saves the trackers
//! through the store is [`track_batch`].
//!
//! **The rules** ([`IncidentPolicy`]): an incident opens when `open_after` of the device's last
//! `open_of` windows are anomalous (the current one among them), or at once on a window of
//! `open_at` severity; it starts at the first anomalous window of that span. It escalates when a
//! window is more severe than any before it in the incident, and resolves after
//! `resolve_after` normal windows in a row, or when the device's next window comes more than
//! `gap_secs` of data time after its last (it then ends at its last window before the gap).
//!
//! **At-least-once delivery.** Event Hubs keeps a device's windows in order within its partition
//! (the partition key is the device id) and a re-delivered batch replays the same sequence. A
//! tracker remembers the end of the last window it took (its watermark): a window ending at or
//! before it is a re-delivery or late and changes nothing, so a late window can never reopen a
//! resolved incident. For a re-delivery the stored messages of those windows are published
//! again (same `message_id`), so a batch that failed after its state was saved still gets its
//! messages out, and consumers drop the repeats.
//!
//! **Two instances on one device.** During a partition rebalance the old owner can still be
//! finishing a batch when the new owner reads the same events. Each tracker is saved with a
//! conditional write on the version it was read at; the loser of the race gets a conflict,
//! reads the tracker again (its windows are now at or before the watermark: a re-delivery) and
//! publishes the winner's messages. Neither store ever holds two incidents for one episode.

use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::{
    Alert, ChannelShare, Incident, IncidentMessage, IncidentStatus, OpenIncident, Resolution,
    ScoredPoint, Severity, TrackerState, Transition, VersionedTracker, WindowMark,
};
use sinks::{AnomalyStore, StoreError, TrackerRequest, TrackerSave};

/// The incident rules; defaults and their measurements are in the README (Incidents).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentPolicy {
    pub open_after: u32,
    pub open_of: u32,
    pub open_at: Severity,
    pub resolve_after: u32,
    pub gap_secs: u64,
}

impl Default for IncidentPolicy {
    fn default() -> Self {
        IncidentPolicy {
            open_after: 2,
            open_of: 3,
            open_at: Severity::High,
            resolve_after: 5,
            gap_secs: 1800,
        }
    }
}

/// A policy that cannot work, named by its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("open_after must be between 1 and open_of ({open_of}), not {open_after}")]
    OpenAfter { open_after: u32, open_of: u32 },
    #[error("open_of must be between 1 and 32, not {0}")]
    OpenOf(u32),
    #[error("resolve_after must be at least 1")]
    ResolveAfter,
    #[error("open_at must be an anomalous severity (low, medium, high, critical)")]
    OpenAt,
}

impl IncidentPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(1..=32).contains(&self.open_of) {
            return Err(PolicyError::OpenOf(self.open_of));
        }
        if !(1..=self.open_of).contains(&self.open_after) {
            return Err(PolicyError::OpenAfter {
                open_after: self.open_after,
                open_of: self.open_of,
            });
        }
        if self.resolve_after == 0 {
            return Err(PolicyError::ResolveAfter);
        }
        if self.open_at == Severity::Normal {
            return Err(PolicyError::OpenAt);
        }
        Ok(())
    }

    fn recent_mask(&self) -> u32 {
        if self.open_of >= 32 {
            u32::MAX
        } else {
            (1u32 << self.open_of) - 1
        }
    }
}

/// What one window did to its device's tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// It ended at or before the watermark: a re-delivery or a late window; nothing changed.
    Late,
    /// It was taken into account; these are the transitions it made (none, one, or a
    /// resolution by data gap and an opening).
    Taken(Vec<IncidentMessage>),
}

/// The rules applied to one device's tracker.
pub struct Tracker<'a> {
    pub policy: &'a IncidentPolicy,
    pub state: &'a mut TrackerState,
}

impl Tracker<'_> {
    /// Takes one scored window; `alert` is its alert when it is anomalous.
    pub fn observe(&mut self, point: &ScoredPoint, alert: Option<&Alert>) -> Step {
        let policy = self.policy;
        let state = &mut *self.state;
        if point.window_end_ms <= state.watermark_ms {
            return Step::Late;
        }
        let mut messages = Vec::new();
        let gap_ms = i64::try_from(policy.gap_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let after_gap = state.watermark_ms != i64::MIN
            && policy.gap_secs > 0
            && point.window_end_ms.saturating_sub(state.watermark_ms) > gap_ms;
        if after_gap {
            if let Some(open) = state.open.take() {
                let at = state.watermark.clone();
                messages.push(resolve(open, &at, Resolution::DataGap));
            }
            forget_recent(state);
        }
        state.watermark = point.window_end.clone();
        state.watermark_ms = point.window_end_ms;
        let mark = alert
            .filter(|_| point.severity != Severity::Normal)
            .map(|alert| WindowMark {
                window_end: point.window_end.clone(),
                window_end_ms: point.window_end_ms,
                score: point.score,
                threshold: alert.threshold,
                severity: point.severity,
                contributions: alert.contributions.clone(),
                top_channel: alert.top_channel.clone(),
                explanation: alert.explanation.clone(),
                lineage: alert.lineage.clone(),
            });
        state.recent = ((state.recent << 1) | u32::from(mark.is_some())) & policy.recent_mask();
        if let Some(mut open) = state.open.take() {
            open.incident.windows += 1;
            match mark {
                Some(mark) => {
                    open.quiet_run = 0;
                    let more_severe = mark.severity > open.incident.peak_severity;
                    add(&mut open, &mark);
                    if more_severe {
                        messages.push(IncidentMessage::new(
                            Transition::Escalated,
                            &mark.window_end,
                            &open.incident,
                        ));
                    }
                    state.open = Some(open);
                }
                None => {
                    open.quiet_run += 1;
                    if open.quiet_run >= policy.resolve_after {
                        messages.push(resolve(open, &point.window_end, Resolution::QuietWindows));
                        // The windows before the resolution belong to the incident just closed.
                        forget_recent(state);
                    } else {
                        state.open = Some(open);
                    }
                }
            }
            return Step::Taken(messages);
        }
        let severe = mark.as_ref().is_some_and(|m| m.severity >= policy.open_at);
        let anomalous = mark.is_some();
        if let Some(mark) = mark {
            state.pending.push(mark);
        }
        // `pending` holds the anomalous windows still within the last `open_of`.
        let within = state.recent.count_ones() as usize;
        if state.pending.len() > within {
            let drop = state.pending.len() - within;
            state.pending.drain(..drop);
        }
        if anomalous && (state.recent.count_ones() >= policy.open_after || severe) {
            // Windows from the first pending one to this one: the oldest set bit's position.
            let span = 32 - state.recent.leading_zeros();
            let pending = std::mem::take(&mut state.pending);
            let open = open_incident(state, pending, u64::from(span));
            messages.push(IncidentMessage::new(
                Transition::Opened,
                &point.window_end,
                &open.incident,
            ));
            state.open = Some(open);
        }
        Step::Taken(messages)
    }
}

fn forget_recent(state: &mut TrackerState) {
    state.recent = 0;
    state.pending.clear();
}

fn open_incident(state: &TrackerState, pending: Vec<WindowMark>, span: u64) -> OpenIncident {
    // The current window was just pushed and its bit is set, so `pending` keeps at least it.
    let first = &pending[0];
    let last = &pending[pending.len() - 1];
    let mut open = OpenIncident {
        incident: Incident {
            incident_id: Incident::id(&state.device_id, &first.window_end),
            device_id: state.device_id.clone(),
            model_version: state.model_version.clone(),
            status: IncidentStatus::Open,
            opened_at: first.window_end.clone(),
            detected_at: last.window_end.clone(),
            last_anomalous_at: first.window_end.clone(),
            resolved_at: None,
            resolution: None,
            peak_severity: first.severity,
            peak_score: f64::NEG_INFINITY,
            threshold: first.threshold,
            peak_window_end: first.window_end.clone(),
            peak_top_channel: first.top_channel.clone(),
            peak_explanation: first.explanation.clone(),
            anomalous_windows: 0,
            windows: span.max(1),
            channels: Vec::new(),
            first_lineage: first.lineage.clone(),
            last_lineage: first.lineage.clone(),
        },
        channel_sums: BTreeMap::new(),
        quiet_run: 0,
    };
    for mark in &pending {
        add(&mut open, mark);
    }
    open
}

/// One more anomalous window in an open incident.
fn add(open: &mut OpenIncident, mark: &WindowMark) {
    let incident = &mut open.incident;
    incident.anomalous_windows += 1;
    incident.last_anomalous_at = mark.window_end.clone();
    incident.last_lineage = mark.lineage.clone();
    if mark.score > incident.peak_score {
        incident.peak_score = mark.score;
        incident.peak_severity = incident.peak_severity.max(mark.severity);
        incident.threshold = mark.threshold;
        incident.peak_window_end = mark.window_end.clone();
        incident.peak_top_channel = mark.top_channel.clone();
        incident.peak_explanation = mark.explanation.clone();
    } else {
        incident.peak_severity = incident.peak_severity.max(mark.severity);
    }
    for (channel, value) in &mark.contributions {
        if value.is_finite() && *value > 0.0 {
            *open.channel_sums.entry(channel.clone()).or_default() += value;
        }
    }
    incident.channels = shares(&open.channel_sums);
}

fn shares(sums: &BTreeMap<String, f64>) -> Vec<ChannelShare> {
    let total: f64 = sums.values().sum();
    let mut shares: Vec<ChannelShare> = sums
        .iter()
        .map(|(channel, sum)| ChannelShare {
            channel: channel.clone(),
            share: if total > 0.0 { sum / total } else { 0.0 },
        })
        .collect();
    shares.sort_by(|a, b| b.share.total_cmp(&a.share).then_with(|| a.channel.cmp(&b.channel)));
    shares
}

fn resolve(mut open: OpenIncident, at: &str, resolution: Resolution) -> IncidentMessage {
    let incident = &mut open.incident;
    incident.status = IncidentStatus::Resolved;
    incident.resolved_at = Some(at.to_string());
    incident.resolution = Some(resolution);
    IncidentMessage::new(Transition::Resolved, at, incident)
}

/// What the incident step of one batch produced.
#[derive(Debug, Clone, Default)]
pub struct IncidentOutcome {
    /// Transitions, in each device's window order: new ones and, for re-delivered windows, the
    /// stored ones again.
    pub messages: Vec<IncidentMessage>,
    /// For each of `messages`, whether this batch made it (false: a stored one published again).
    /// Telemetry counts transitions once, from these.
    pub made: Vec<bool>,
    /// Windows at or before their tracker's watermark (re-deliveries and late windows).
    pub late: usize,
    /// Conditional writes that lost to another instance and were read again.
    pub conflicts: usize,
}

impl IncidentOutcome {
    /// The transitions this batch made (not re-published ones).
    pub fn new_messages(&self) -> impl Iterator<Item = &IncidentMessage> {
        self.messages
            .iter()
            .zip(&self.made)
            .filter_map(|(m, made)| made.then_some(m))
    }
}

/// How many times a batch reads the trackers again after losing a conditional write.
pub const MAX_CONFLICT_ROUNDS: usize = 6;

/// The longest wait before the first re-read, in microseconds; it doubles each round after
/// (at most 31 ms over all rounds, against a batch's few milliseconds of work).
const CONFLICT_BACKOFF_US: u64 = 1_000;

/// The incident step of one batch: `points` are every scored window, `alerts` the alerts of the
/// anomalous ones in the same order.
pub async fn track_batch(
    store: &dyn AnomalyStore,
    policy: &IncidentPolicy,
    model_version: &str,
    points: &[ScoredPoint],
    alerts: &[Alert],
) -> Result<IncidentOutcome, StoreError> {
    // Each device's windows in window order, with their alerts.
    let mut by_device: BTreeMap<&str, Vec<(&ScoredPoint, Option<&Alert>)>> = BTreeMap::new();
    let mut next_alert = alerts.iter();
    for point in points {
        let alert = if point.severity == Severity::Normal {
            None
        } else {
            next_alert.next()
        };
        by_device.entry(&point.device_id).or_default().push((point, alert));
    }
    for windows in by_device.values_mut() {
        windows.sort_by_key(|(point, _)| point.window_end_ms);
    }
    let mut outcome = IncidentOutcome::default();
    let mut todo: Vec<&str> = by_device.keys().copied().collect();
    for round in 0.. {
        if todo.is_empty() {
            break;
        }
        if round == MAX_CONFLICT_ROUNDS {
            return Err(StoreError::Transient {
                context: format!(
                    "incident trackers of {} device(s) kept changing under this batch ({MAX_CONFLICT_ROUNDS} rounds)",
                    todo.len()
                ),
                source: None,
            });
        }
        if round > 0 {
            // Batches that lost to each other read again at once and collide again: a short
            // random wait, doubling per round, lets one of them finish first.
            let ceiling_us = CONFLICT_BACKOFF_US << (round - 1);
            let wait = rand::rng().random_range(ceiling_us / 2..=ceiling_us);
            tokio::time::sleep(std::time::Duration::from_micros(wait)).await;
        }
        let requests: Vec<TrackerRequest> = todo
            .iter()
            .map(|device| {
                let windows = &by_device[device];
                TrackerRequest {
                    device_id: device.to_string(),
                    from_ms: windows.first().map_or(0, |(p, _)| p.window_end_ms),
                    to_ms: windows.last().map_or(0, |(p, _)| p.window_end_ms),
                }
            })
            .collect();
        let loaded = store.load_trackers(requests).await?;
        let mut saves = Vec::new();
        let mut results: HashMap<&str, DeviceResult> = HashMap::new();
        for (&device, loaded) in todo.iter().zip(loaded) {
            let (mut state, expected_version) = match loaded.tracker {
                Some(VersionedTracker { state, version }) => (state, Some(version)),
                None => (TrackerState::new(device, model_version), None),
            };
            // The tracker is the device's, whichever model scored its windows so far; what it
            // opens from now on names the model scoring this batch.
            if state.model_version != model_version {
                state.model_version = model_version.to_string();
            }
            // A message's `at` is the window end it was made at, as that window carried it.
            let mut stored: HashMap<String, Vec<IncidentMessage>> = HashMap::new();
            for message in loaded.messages {
                stored.entry(message.at.clone()).or_default().push(message);
            }
            let watermark_before = state.watermark_ms;
            let mut result = DeviceResult::default();
            let mut fresh = Vec::new();
            let mut touched: BTreeMap<String, Incident> = BTreeMap::new();
            for (point, alert) in &by_device[device] {
                let mut tracker = Tracker {
                    policy,
                    state: &mut state,
                };
                match tracker.observe(point, *alert) {
                    Step::Late => {
                        result.late += 1;
                        if let Some(again) = stored.remove(point.window_end.as_str()) {
                            result.made.extend(again.iter().map(|_| false));
                            result.messages.extend(again);
                        }
                    }
                    Step::Taken(made) => {
                        for message in made {
                            touched.insert(
                                message.incident.incident_id.clone(),
                                message.incident.clone(),
                            );
                            result.made.push(true);
                            fresh.push(message.clone());
                            result.messages.push(message);
                        }
                    }
                }
            }
            if state.watermark_ms != watermark_before {
                if let Some(open) = &state.open {
                    touched.insert(open.incident.incident_id.clone(), open.incident.clone());
                }
                saves.push(TrackerSave {
                    state,
                    expected_version,
                    incidents: touched.into_values().collect(),
                    messages: fresh,
                });
            }
            results.insert(device, result);
        }
        let saved = store.save_trackers(saves).await?;
        let conflicted: BTreeSet<&str> = saved.conflicts.iter().map(String::as_str).collect();
        let mut again = Vec::new();
        for device in todo {
            if conflicted.contains(device) {
                again.push(device);
                continue;
            }
            let result = results.remove(device).unwrap_or_default();
            outcome.messages.extend(result.messages);
            outcome.made.extend(result.made);
            outcome.late += result.late;
        }
        if !again.is_empty() {
            outcome.conflicts += again.len();
            tracing::info!(
                devices = again.len(),
                round,
                "incident trackers changed under this batch (another instance); reading them again"
            );
        }
        todo = again;
    }
    Ok(outcome)
}

/// One device's part of a round.
#[derive(Default)]
struct DeviceResult {
    messages: Vec<IncidentMessage>,
    made: Vec<bool>,
    late: usize,
}

#[cfg(test)]
mod tests;
