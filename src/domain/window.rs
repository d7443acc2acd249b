//! A window of features, validated against the model that will score it.

/// The longest device id, model version or channel name a window may carry: what every store
/// keeps in its key columns (`nvarchar(128)` in Azure SQL). Longer ids are refused at the door.
pub const MAX_NAME_CHARS: usize = 128;

/// One window, as Stream Analytics emits it, reduced to what the model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecord {
    pub device_id: String,
    /// Canonical RFC 3339 UTC (`System.Timestamp()` of the window).
    pub window_end: String,
    /// The same instant in milliseconds since the epoch (parsed once, at the door).
    pub window_end_ms: i64,
    /// In the model's feature order.
    pub features: Vec<f32>,
}
