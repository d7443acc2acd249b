//! Why an event, or one record in it, is refused. Each refusal is dead-lettered with its
//! [`RejectionKind`]; metrics and dashboards group by the kind, never by message text.

use serde::{Deserialize, Serialize};

/// How many layers of string encoding a body may carry before it is refused.
pub const MAX_ENCODING_DEPTH: usize = 8;

/// The closed set of refusal reasons: a metric label and the dead letter's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    NotJson,
    NotObject,
    TooDeep,
    MissingField,
    InvalidField,
    MissingFeature,
    InvalidFeature,
    NonFiniteScore,
    /// The window ends further ahead of the handler's clock than the allowed skew.
    FutureWindow,
    /// A valid anomalous window the store could not take on the host's last attempt.
    StoreUnavailable,
    /// A valid anomalous window the store refused permanently.
    StoreRejected,
    /// An invocation larger than the handler accepts; its events are still in the source hub.
    InvocationTooLarge,
}

impl RejectionKind {
    pub const ALL: [RejectionKind; 12] = [
        RejectionKind::NotJson,
        RejectionKind::NotObject,
        RejectionKind::TooDeep,
        RejectionKind::MissingField,
        RejectionKind::InvalidField,
        RejectionKind::MissingFeature,
        RejectionKind::InvalidFeature,
        RejectionKind::NonFiniteScore,
        RejectionKind::FutureWindow,
        RejectionKind::StoreUnavailable,
        RejectionKind::StoreRejected,
        RejectionKind::InvocationTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::NotJson => "not_json",
            RejectionKind::NotObject => "not_object",
            RejectionKind::TooDeep => "too_deep",
            RejectionKind::MissingField => "missing_field",
            RejectionKind::InvalidField => "invalid_field",
            RejectionKind::MissingFeature => "missing_feature",
            RejectionKind::InvalidFeature => "invalid_feature",
            RejectionKind::NonFiniteScore => "non_finite_score",
            RejectionKind::FutureWindow => "future_window",
            RejectionKind::StoreUnavailable => "store_unavailable",
            RejectionKind::StoreRejected => "store_rejected",
            RejectionKind::InvocationTooLarge => "invocation_too_large",
        }
    }

    /// Kinds whose record was valid and was refused for a reason outside it (the store, the
    /// clock): `sensor-anomaly replay` re-submits these by default.
    pub fn is_replayable(self) -> bool {
        matches!(
            self,
            RejectionKind::FutureWindow
                | RejectionKind::StoreUnavailable
                | RejectionKind::StoreRejected
        )
    }
}

/// A refused event or record, with a message for people and a kind for machines.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("event body is not JSON: {0}")]
    NotJson(String),
    #[error("event body is a JSON {0}, not a window object")]
    NotAnObject(&'static str),
    #[error("event body is nested more than {MAX_ENCODING_DEPTH} encodings deep")]
    TooDeep,
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("field `{field}` {problem}")]
    InvalidField { field: String, problem: String },
    #[error("missing feature `{0}`")]
    MissingFeature(String),
    #[error("feature `{feature}` is {problem}")]
    InvalidFeature { feature: String, problem: String },
    #[error("the model's score is not finite for this window (features far outside the training range?)")]
    NonFiniteScore,
    #[error("window ends at {window_end}, more than {skew_secs} s ahead of the handler's clock")]
    FutureWindow { window_end: String, skew_secs: u64 },
    #[error("the anomaly store was unavailable on the host's last attempt: {0}")]
    StoreUnavailable(String),
    #[error("the anomaly store refused this window: {0}")]
    StoreRejected(String),
    #[error("invocation of {bytes} bytes is over the {limit}-byte limit (ANOMALY_MAX_INVOCATION_BYTES); its events are still in the source hub at this lineage")]
    InvocationTooLarge { bytes: u64, limit: u64 },
}

impl RecordError {
    pub fn kind(&self) -> RejectionKind {
        match self {
            RecordError::NotJson(_) => RejectionKind::NotJson,
            RecordError::NotAnObject(_) => RejectionKind::NotObject,
            RecordError::TooDeep => RejectionKind::TooDeep,
            RecordError::MissingField(_) => RejectionKind::MissingField,
            RecordError::InvalidField { .. } => RejectionKind::InvalidField,
            RecordError::MissingFeature(_) => RejectionKind::MissingFeature,
            RecordError::InvalidFeature { .. } => RejectionKind::InvalidFeature,
            RecordError::NonFiniteScore => RejectionKind::NonFiniteScore,
            RecordError::FutureWindow { .. } => RejectionKind::FutureWindow,
            RecordError::StoreUnavailable(_) => RejectionKind::StoreUnavailable,
            RecordError::StoreRejected(_) => RejectionKind::StoreRejected,
            RecordError::InvocationTooLarge { .. } => RejectionKind::InvocationTooLarge,
        }
    }

    /// The field the error is about, for HTTP error bodies and dead letters.
    pub fn field(&self) -> Option<&str> {
        match self {
            RecordError::MissingField(f) | RecordError::MissingFeature(f) => Some(f),
            RecordError::InvalidField { field, .. } => Some(field),
            RecordError::InvalidFeature { feature, .. } => Some(feature),
            RecordError::FutureWindow { .. } => Some("window_end"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_metric_labels() {
        for kind in RejectionKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
            assert_eq!(serde_json::from_value::<RejectionKind>(json).unwrap(), kind);
        }
        let missing = RecordError::MissingFeature("a_std".into());
        assert_eq!(missing.kind(), RejectionKind::MissingFeature);
        assert_eq!(missing.field(), Some("a_std"));
    }
}
