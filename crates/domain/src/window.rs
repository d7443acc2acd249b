//! A window of features, validated against the model that will score it.

/// The longest device id, model version or channel name a window may carry, in UTF-16 code
/// units: what every store keeps in its key columns (`nvarchar(128)` in Azure SQL counts UTF-16
/// code units, so a character outside the Basic Multilingual Plane takes two). Longer ids are
/// refused at the door, the same way for every store.
pub const MAX_NAME_UNITS: usize = 128;

/// Length in the unit key columns use (UTF-16 code units).
pub fn name_units(name: &str) -> usize {
    name.encode_utf16().count()
}

/// Whether `name` fits a key column.
pub fn name_fits(name: &str) -> bool {
    // Every char is at most two units, so short names need no count.
    name.len() <= MAX_NAME_UNITS || name_units(name) <= MAX_NAME_UNITS
}

/// Why a text cannot be a device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_NAME_UNITS} UTF-16 code units")]
    TooLong,
}

/// A device id as every reader takes it (the handler's decoder, the CLI's windowing): trimmed,
/// not empty, and fitting the key columns.
pub fn device_id(text: &str) -> Result<&str, DeviceIdError> {
    let id = text.trim();
    if id.is_empty() {
        Err(DeviceIdError::Empty)
    } else if !name_fits(id) {
        Err(DeviceIdError::TooLong)
    } else {
        Ok(id)
    }
}

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
