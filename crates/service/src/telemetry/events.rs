//! What happens in the handler, one type per thing, each emitting its log line and its metrics
//! in one place (Vector's `internal_events`): the code that does the work says *what* happened
//! by emitting an event and never touches a metric or formats a telemetry line itself.

use std::collections::BTreeMap;

use domain::{Alert, DeadLetter, IncidentMessage, RejectionKind, Severity};
use pipeline::{BatchOutcome, StoreWrite};

use super::metrics::{
    Metrics, ANOMALIES, BATCH_DURATION, INCIDENTS, INVOCATIONS, MODEL_FOLLOW, MODEL_RELOADS, REFUSED, RETRAINING_RECOMMENDED, SHADOW_WINDOWS,
    STORE_WRITE_DURATION, STORE_WRITE_FAILURES, WINDOWS_SCORED,
};

/// Something that happened, recorded in the log and the metrics together.
pub trait InternalEvent {
    fn emit(self, metrics: &Metrics);
}

/// The functions the host invokes (the `function` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    ScoreWindows,
    Score,
    ScoreBatch,
}

impl Function {
    pub const ALL: [Function; 3] = [Function::ScoreWindows, Function::Score, Function::ScoreBatch];

    pub fn as_str(self) -> &'static str {
        match self {
            Function::ScoreWindows => "ScoreWindows",
            Function::Score => "Score",
            Function::ScoreBatch => "ScoreBatch",
        }
    }
}

/// How an invocation ended (the `outcome` label and the request's `outcome` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    BadRequest,
    TooLarge,
    StoreUnavailable,
    StoreRefused,
    ModelError,
    OutputError,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::StoreUnavailable,
        Outcome::StoreRefused,
        Outcome::ModelError,
        Outcome::OutputError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::StoreRefused => "store_refused",
            Outcome::ModelError => "model_error",
            Outcome::OutputError => "output_error",
        }
    }
}

/// An invocation answered.
pub struct InvocationFinished {
    pub function: Function,
    pub outcome: Outcome,
}

impl InternalEvent for InvocationFinished {
    fn emit(self, metrics: &Metrics) {
        tracing::debug!(
            function = self.function.as_str(),
            outcome = self.outcome.as_str(),
            "invocation finished"
        );
        tracing::Span::current().record("outcome", self.outcome.as_str());
        metrics.add(
            &INVOCATIONS,
            &[self.function.as_str(), self.outcome.as_str()],
            1,
        );
    }
}

/// Windows scored outside a batch (`/api/score`, `/api/score/batch`).
pub struct WindowsScored {
    pub windows: usize,
}

impl InternalEvent for WindowsScored {
    fn emit(self, metrics: &Metrics) {
        metrics.add(&WINDOWS_SCORED, &[], self.windows as u64);
    }
}

/// At most this many refusals are logged one by one per batch; the rest are summed by kind.
pub const MAX_REFUSAL_LOG_LINES: usize = 10;

/// Records refused: the first few logged one by one, the rest as one line by kind.
pub struct RecordsRefused<'a> {
    pub dead_letters: &'a [DeadLetter],
    pub by_kind: &'a BTreeMap<RejectionKind, u64>,
}

impl InternalEvent for RecordsRefused<'_> {
    fn emit(self, metrics: &Metrics) {
        for (kind, count) in self.by_kind {
            metrics.add(&REFUSED, &[kind.as_str()], *count);
        }
        for dead in self.dead_letters.iter().take(MAX_REFUSAL_LOG_LINES) {
            tracing::warn!(
                partition = ?dead.lineage.partition_id,
                sequence_number = ?dead.lineage.sequence_number,
                kind = dead.kind.as_str(),
                reason = %dead.reason,
                "event refused and dead-lettered"
            );
        }
        let total: u64 = self.by_kind.values().sum();
        let logged = self.dead_letters.len().min(MAX_REFUSAL_LOG_LINES) as u64;
        if total > logged {
            let by_kind: Vec<String> = self
                .by_kind
                .iter()
                .map(|(kind, n)| format!("{}={n}", kind.as_str()))
                .collect();
            tracing::warn!(
                refused = total,
                not_logged = total - logged,
                by_kind = %by_kind.join(","),
                "more refusals in this batch than are logged one by one"
            );
        }
    }
}

/// One store write (a batch's, or one row's while a permanent refusal is isolated).
pub struct StoreWritten<'a>(pub &'a StoreWrite);

impl InternalEvent for StoreWritten<'_> {
    fn emit(self, metrics: &Metrics) {
        let write = self.0;
        let store = write.store.as_str();
        metrics.duration(&STORE_WRITE_DURATION, &[store], write.elapsed.as_secs_f64());
        if let Some(class) = write.failure {
            tracing::debug!(
                store,
                operation = write.operation.as_str(),
                rows = write.rows,
                class = class.as_str(),
                "store write failed"
            );
            metrics.add(&STORE_WRITE_FAILURES, &[store, class.as_str()], 1);
        }
    }
}

/// The store writes of a batch that failed (no [`BatchScored`] follows).
pub struct BatchFailed<'a>(pub &'a [StoreWrite]);

impl InternalEvent for BatchFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        for write in self.0 {
            StoreWritten(write).emit(metrics);
        }
    }
}

/// The trace with a batch's anomalous devices, and its properties: `devices` is a JSON array of
/// `[device_id, anomalies, critical]`. The workbook's per-device view reads it (device ids are
/// unbounded, so they are no metric dimension); a test holds the workbook to these names.
pub const ANOMALOUS_DEVICES_TRACE: (&str, &[&str]) = ("anomalous devices", &["devices", "anomalies"]);

/// The trace of one incident transition, and its properties. The workbook's incident views read
/// it (incident and device ids are unbounded: no metric dimension); a test holds the workbook to
/// these names.
pub const INCIDENT_TRACE: (&str, &[&str]) = (
    "incident",
    &[
        "incident_id",
        "device_id",
        "model_version",
        "transition",
        "at",
        "status",
        "severity",
        "top_channel",
        "opened_at",
        "anomalous_windows",
        "explanation",
    ],
);

/// An incident transition this batch made (a re-published one is not emitted again): one
/// trace ([`INCIDENT_TRACE`]) and the `incidents` counter.
pub struct IncidentChanged<'a>(pub &'a IncidentMessage);

impl InternalEvent for IncidentChanged<'_> {
    fn emit(self, metrics: &Metrics) {
        let message = self.0;
        let incident = &message.incident;
        let transition = message.transition.as_str();
        let severity = incident.peak_severity.as_str();
        tracing::info!(
            incident_id = %incident.incident_id,
            device_id = %incident.device_id,
            model_version = %incident.model_version,
            transition,
            at = %message.at,
            status = incident.status.as_str(),
            severity,
            top_channel = %incident.channels.first().map_or(incident.peak_top_channel.as_str(), |c| c.channel.as_str()),
            opened_at = %incident.opened_at,
            anomalous_windows = incident.anomalous_windows,
            explanation = %incident.peak_explanation,
            "incident"
        );
        metrics.add(&INCIDENTS, &[transition, severity], 1);
    }
}

/// A `ScoreWindows` batch handled: its summary line, its refusals, its store writes, its
/// anomalies (by severity and channel, and one trace with the devices), its incident
/// transitions and its duration.
pub struct BatchScored<'a>(pub &'a BatchOutcome);

impl InternalEvent for BatchScored<'_> {
    fn emit(self, metrics: &Metrics) {
        let outcome = self.0;
        let summary = &outcome.summary;
        for write in &outcome.store_writes {
            StoreWritten(write).emit(metrics);
        }
        RecordsRefused {
            dead_letters: &outcome.dead_letters,
            by_kind: &summary.refused_by_kind,
        }
        .emit(metrics);
        for alert in &outcome.alerts {
            metrics.add(
                &ANOMALIES,
                &[alert.severity.as_str(), alert.top_channel.as_str()],
                1,
            );
        }
        log_anomalous_devices(&outcome.alerts);
        for message in outcome.incidents.new_messages() {
            IncidentChanged(message).emit(metrics);
        }
        metrics.add(&WINDOWS_SCORED, &[], summary.windows_scored as u64);
        metrics.duration(&BATCH_DURATION, &[], summary.elapsed.as_secs_f64());
        let span = tracing::Span::current();
        span.record("windows_scored", summary.windows_scored);
        span.record("anomalies", summary.anomalies);
        span.record("refused", summary.refused());
        tracing::info!("{}", summary.line());
    }
}

/// One trace per batch with its anomalous devices ([`ANOMALOUS_DEVICES_TRACE`]), bounded by the
/// batch.
fn log_anomalous_devices(alerts: &[Alert]) {
    if alerts.is_empty() {
        return;
    }
    let mut devices: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for alert in alerts {
        let entry = devices.entry(alert.device_id.as_str()).or_default();
        entry.0 += 1;
        if alert.severity == Severity::Critical {
            entry.1 += 1;
        }
    }
    let list: Vec<(&str, u64, u64)> = devices.into_iter().map(|(d, (n, c))| (d, n, c)).collect();
    let json = serde_json::to_string(&list).unwrap_or_default();
    tracing::info!(devices = %json, anomalies = alerts.len(), "anomalous devices");
}

/// A model reload, whether it put a new model in service or was refused.
pub enum ModelReloaded<'a> {
    Replaced {
        from: &'a str,
        to: &'a str,
        source: &'a str,
    },
    Refused {
        serving: &'a str,
        error: &'a dyn std::error::Error,
    },
}

impl InternalEvent for ModelReloaded<'_> {
    fn emit(self, metrics: &Metrics) {
        let outcome = match self {
            ModelReloaded::Replaced { from, to, source } => {
                tracing::info!(%from, %to, %source, "model reloaded");
                "ok"
            }
            ModelReloaded::Refused { serving, error } => {
                tracing::warn!(%error, %serving, "model reload refused; the serving model is unchanged");
                "refused"
            }
        };
        metrics.add(&MODEL_RELOADS, &[outcome], 1);
    }
}

/// A batch scored by the challenger in shadow: its windows by agreement with the champion.
pub struct ShadowScored<'a> {
    pub challenger_version: &'a str,
    pub comparison: &'a crate::shadow::Comparison,
}

impl InternalEvent for ShadowScored<'_> {
    fn emit(self, metrics: &Metrics) {
        for agreement in crate::shadow::Agreement::ALL {
            let n = self.comparison.count(agreement);
            if n > 0 {
                metrics.add(&SHADOW_WINDOWS, &[agreement.as_str(), self.challenger_version], n);
            }
        }
    }
}

/// The challenger could not score a batch (the champion's work is unaffected).
pub struct ShadowFailed<'a> {
    pub challenger_version: &'a str,
    pub error: &'a dyn std::error::Error,
}

impl InternalEvent for ShadowFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::warn!(challenger = %self.challenger_version, error = %self.error, "the challenger could not score a batch in shadow");
        metrics.add(&SHADOW_WINDOWS, &["failed", self.challenger_version], 1);
    }
}

/// Drift lasted long enough: retraining the champion is recommended (the handler does not
/// retrain by itself).
pub struct RetrainingRecommended<'a>(pub &'a crate::retrain::Recommendation);

impl InternalEvent for RetrainingRecommended<'_> {
    fn emit(self, metrics: &Metrics) {
        let r = self.0;
        let features: Vec<String> = r.features.iter().take(5).map(|(f, psi)| format!("{f} (PSI {psi:.2})")).collect();
        tracing::warn!(
            model_version = %r.model_version,
            drifting_since = %domain::time::format_ms(r.drifting_since_ms),
            features = %features.join(", "),
            "retraining recommended: the live windows have drifted from the training data for ANOMALY_RETRAIN_AFTER_HOURS (README, Updating the model)"
        );
        metrics.add(&RETRAINING_RECOMMENDED, &[&r.model_version], 1);
    }
}

/// Which model a follow event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Champion,
    Challenger,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Champion => "champion",
            Role::Challenger => "challenger",
        }
    }
}

/// What following the model store's pointer did (`model_follow`).
pub enum ModelFollowed<'a> {
    /// A new champion serves on this instance; `took`: its download, verification and load.
    Switched { from: &'a str, to: &'a str, source: &'a str, took: std::time::Duration },
    ChallengerSet { model_version: &'a str, blob: &'a str },
    ChallengerCleared,
    /// A named model was not put in service; the serving one stays.
    Refused {
        role: Role,
        model_version: &'a str,
        error: &'a dyn std::error::Error,
    },
    /// The pointer could not be read; the serving models stay and the next poll tries again.
    Unreachable { store: &'a str, error: &'a dyn std::error::Error },
}

impl InternalEvent for ModelFollowed<'_> {
    fn emit(self, metrics: &Metrics) {
        let (role, outcome) = match self {
            ModelFollowed::Switched { from, to, source, took } => {
                tracing::info!(%from, %to, %source, took_ms = took.as_millis() as u64, "champion switched: following the model store");
                ("champion", "switched")
            }
            ModelFollowed::ChallengerSet { model_version, blob } => {
                tracing::info!(%model_version, %blob, "challenger set: scored in shadow from now on");
                ("challenger", "set")
            }
            ModelFollowed::ChallengerCleared => {
                tracing::info!("challenger cleared");
                ("challenger", "cleared")
            }
            ModelFollowed::Refused { role, model_version, error } => {
                tracing::error!(role = role.as_str(), %model_version, %error, "the model store names a model that was refused; the serving model stays");
                (role.as_str(), "refused")
            }
            ModelFollowed::Unreachable { store, error } => {
                tracing::warn!(%store, %error, "the model store's pointer could not be read; the serving model stays");
                ("pointer", "unreachable")
            }
        };
        metrics.add(&MODEL_FOLLOW, &[role, outcome], 1);
    }
}

#[cfg(test)]
mod tests;
