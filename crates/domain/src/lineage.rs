//! Where a window came from, in one shape for stored rows, alerts and dead letters.

use serde::{Deserialize, Serialize};

/// The Event Hubs coordinates of the event that carried a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub partition_id: Option<String>,
    pub sequence_number: Option<i64>,
    /// The event's offset as text: `OffsetString` where the extension sends it (6.5.2+, the only
    /// meaningful one on geo-replicated namespaces), else the numeric `Offset`.
    pub offset: Option<String>,
    /// Canonical RFC 3339 UTC.
    pub enqueued_time: Option<String>,
}

/// The longest lineage text kept (partition id, offset, enqueued time). Event Hubs writes short
/// ones (partition ids of a few characters, offsets that are numbers); a longer text is not one
/// of them and is dropped at the door, so one event's metadata cannot be copied into every
/// alert and dead letter of its windows.
pub const MAX_LINEAGE_TEXT: usize = 64;
