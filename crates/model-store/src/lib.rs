//! Models in Blob Storage: versioned model files under content-addressed names and one pointer
//! blob naming the champion (and optionally a challenger), changed only by conditional writes.
//! The handler follows the pointer; `sensor-anomaly model` changes it.

pub mod pointer;
pub mod sas;
pub mod settings;
pub mod store;

/// The version a conditional write names (the SDK's type).
pub use azure_core::http::Etag;
pub use pointer::{Change, ModelRef, Pointer, PointerError};
pub use settings::{StoreAuth, StoreSettings, StoreSettingsError};
pub use store::{sha256_hex, Caller, ModelStore, Redacted, StoreError, Versioned, MAX_MODEL_BYTES};
