//! A window of features, validated against the model that will score it.

/// One window, as Stream Analytics emits it, reduced to what the model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecord {
    pub device_id: String,
    /// Canonical RFC 3339 UTC (`System.Timestamp()` of the window).
    pub window_end: String,
    /// In the model's feature order.
    pub features: Vec<f32>,
}
