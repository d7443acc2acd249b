//! Step 5: the batch outcome → the host's response: each alert and dead letter as one JSON
//! string per Event Hubs message, and `Logs` for the host's invocation log.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{BatchOutcome, BatchSummary, PipelineError};
use crate::domain::{Alert, DeadLetter};
use crate::ingress::host::InvocationResponse;
pub use crate::ingress::host::{ALERTS_OUTPUT, DEAD_LETTER_OUTPUT};

/// At most this many per-record lines go into the invocation's `Logs`; the rest are counted.
const MAX_LOG_LINES: usize = 50;

pub fn summary_line(s: &BatchSummary) -> String {
    let mut line = format!(
        "ScoreWindows: {} events, {} windows scored, {} anomalies ({} new), {} refused, model {}, partition {}, sequence numbers {}, {:.1} ms",
        s.events,
        s.windows_scored,
        s.anomalies,
        s.inserted,
        s.refused,
        s.model_version,
        s.batch.partition_text(),
        s.batch.sequence_text(),
        s.elapsed.as_secs_f64() * 1e3
    );
    if s.diverted > 0 {
        line.push_str(&format!(
            ", {} anomalies dead-lettered for the store",
            s.diverted
        ));
    }
    if let Some(retry) = s.batch.retry_count {
        line.push_str(&format!(", host retry {retry}"));
        if let Some(max) = s.batch.max_retry_count {
            line.push_str(&format!(" of {max}"));
        }
    }
    line
}

/// Each message as a JSON string: the Event Hubs output binding sends a string as the body.
fn messages<T: Serialize>(items: &[T], what: &'static str) -> Result<Value, PipelineError> {
    items
        .iter()
        .map(|item| {
            serde_json::to_string(item)
                .map(Value::String)
                .map_err(|source| PipelineError::Output { what, source })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

impl BatchOutcome {
    pub fn into_response(self) -> Result<InvocationResponse, PipelineError> {
        let mut logs = vec![summary_line(&self.summary)];
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
        if self.summary.refused > listed {
            logs.push(format!(
                "... and {} more refused records",
                self.summary.refused - listed
            ));
        }
        response(&self.alerts, &self.dead_letters, logs)
    }
}

/// The host's response: the alerts and dead letters on their output bindings, and `logs`.
pub fn response(
    alerts: &[Alert],
    dead_letters: &[DeadLetter],
    logs: Vec<String>,
) -> Result<InvocationResponse, PipelineError> {
    let mut outputs = Map::new();
    outputs.insert(ALERTS_OUTPUT.into(), messages(alerts, "alerts")?);
    outputs.insert(
        DEAD_LETTER_OUTPUT.into(),
        messages(dead_letters, "dead-letter")?,
    );
    Ok(InvocationResponse {
        outputs,
        logs,
        return_value: Value::Null,
    })
}
