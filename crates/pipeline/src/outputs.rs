//! What a batch says about itself: its summary line (the handler's log and the host's), and the
//! lines for the host's invocation log (`Logs`). The response itself is the host protocol's
//! (`ingress::host::response`).

use super::{BatchOutcome, BatchSummary};

/// At most this many per-record lines go into the invocation's `Logs`; the rest are counted.
const MAX_LOG_LINES: usize = 50;

impl BatchSummary {
    /// One line with the batch's figures and coordinates.
    pub fn line(&self) -> String {
        let mut line = format!(
            "ScoreWindows: {} events, {} windows scored, {} anomalies ({} new), {} refused, model {}, partition {}, sequence numbers {}, {:.1} ms",
            self.events,
            self.windows_scored,
            self.anomalies,
            self.inserted,
            self.refused(),
            self.model_version,
            self.batch.partition_text(),
            self.batch.sequence_text(),
            self.elapsed.as_secs_f64() * 1e3
        );
        if self.incident_messages > 0 {
            line.push_str(&format!(", {} incident messages", self.incident_messages));
        }
        if self.incidents_skipped {
            line.push_str(", incident trackers not moved (store unavailable)");
        }
        if self.diverted > 0 {
            line.push_str(&format!(
                ", {} anomalies dead-lettered for the store",
                self.diverted
            ));
        }
        if let Some(retry) = self.batch.retry_count {
            line.push_str(&format!(", host retry {retry}"));
            if let Some(max) = self.batch.max_retry_count {
                line.push_str(&format!(" of {max}"));
            }
        }
        line
    }
}

impl BatchOutcome {
    /// The host's `Logs`: the summary, then the first refusals one by one and a count of the rest.
    pub fn host_logs(&self) -> Vec<String> {
        let mut logs = vec![self.summary.line()];
        for dead in self.dead_letters.iter().take(MAX_LOG_LINES) {
            logs.push(format!(
                "refused event {} (partition {}, sequence number {}): {}",
                dead.event_index,
                dead.lineage.partition_id.as_deref().unwrap_or("?"),
                dead.lineage
                    .sequence_number
                    .map_or("?".to_string(), |n| n.to_string()),
                dead.reason
            ));
        }
        let listed = self.dead_letters.len().min(MAX_LOG_LINES) as u64;
        let refused = self.summary.refused();
        if refused > listed {
            logs.push(format!("... and {} more refused records", refused - listed));
        }
        logs
    }
}
