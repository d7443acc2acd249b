//! Plain types every stage may import: no I/O, no framework types.
//!
//! A window arrives as a [`WindowRecord`] with its [`Lineage`], is scored into a
//! [`ScoredWindow`], and leaves as a stored [`AnomalyRow`], an [`Alert`] or, when refused, a
//! [`DeadLetter`] carrying its [`RejectionKind`]. The alert and dead-letter JSON are versioned
//! wire formats (`schemas/`, `docs/wire-formats.md`).

pub mod anomaly;
pub mod incident;
pub mod lineage;
pub mod rejection;
pub mod scored;
pub mod secret;
pub mod time;
pub mod window;
pub mod wire;

pub use anomaly::AnomalyRow;
pub use incident::{
    ChannelShare, Incident, IncidentMessage, IncidentStatus, OpenIncident, Resolution, TrackerState,
    Transition, VersionedTracker, WindowMark, INCIDENT_SCHEMA_VERSION,
};
pub use lineage::Lineage;
pub use rejection::{RecordError, RejectionKind};
pub use scored::{ChannelValues, ScoredPoint, ScoredWindow, Severity};
pub use secret::Secret;
pub use window::{device_id, name_fits, name_units, DeviceIdError, WindowRecord, MAX_NAME_UNITS};
pub use wire::{Alert, DeadLetter, Excerpt, ALERT_SCHEMA_VERSION, DEAD_LETTER_SCHEMA_VERSION, MAX_ALERT_CHANNELS, MAX_EXCERPT_BYTES, MAX_MESSAGE_BYTES};

/// FNV-1a (64-bit): the same value on every run and platform, for change detection and for
/// spreading keys over partitions; not for security.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of the FNV reference (64-bit FNV-1a).
        assert_eq!(super::fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(*b"foobar"), 0x8594_4171_f739_67e8);
    }
}
