//! Timestamps: parsed leniently (RFC 3339 with any fraction, as Stream Analytics and the host
//! write them), written canonically so that equal instants are equal keys in the store.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Parses an RFC 3339 timestamp (`2026-11-21T10:00:00.0000000Z`, `...+01:00`). A timestamp
/// without an offset is taken as UTC: that is how the Functions host writes Event Hubs
/// `EnqueuedTimeUtc` (a .NET `DateTime` of unspecified kind, `2024-05-01T12:34:56.789`).
/// A space may stand for the `T` (`2020-03-09 10:14:33`), as CSV exports and databases write it.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.as_bytes().get(10) == Some(&b' ') {
        let mut with_t = text.to_string();
        with_t.replace_range(10..11, "T");
        return parse_rfc3339(&with_t);
    }
    parse_rfc3339(text)
}

fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        let has_offset = text
            .get(19..)
            .is_none_or(|rest| rest.contains(['Z', 'z', '+', '-']));
        (!has_offset)
            .then(|| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).ok())
            .flatten()
    })
}

/// Canonical UTC form: `2026-11-21T10:00:00Z`, with a fraction only when there is one; `None`
/// outside the years RFC 3339 can write (0-9999 in UTC).
fn write_utc(t: OffsetDateTime) -> Option<String> {
    // `checked_`: an offset can carry an instant past 9999-12-31 in UTC (`9999-12-31T23:59:59-01:00`).
    t.checked_to_offset(UtcOffset::UTC)?.format(&Rfc3339).ok()
}

/// Canonical form of an instant the program made itself (always in range in practice).
pub fn format(t: OffsetDateTime) -> String {
    write_utc(t).unwrap_or_else(|| t.unix_timestamp().to_string())
}

/// Canonical form of a timestamp text, or `None` when it does not parse or cannot be written
/// back: input-derived times get no fallback form.
pub fn canonical(text: &str) -> Option<String> {
    parse(text).and_then(write_utc)
}

/// The canonical form and the instant in milliseconds since the epoch, from one parse.
pub fn canonical_with_ms(text: &str) -> Option<(String, i64)> {
    let t = parse(text)?;
    Some((write_utc(t)?, (t.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// Canonical form of an instant in milliseconds since the epoch.
pub fn format_ms(ms: i64) -> String {
    format(OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The clock in milliseconds since the epoch, the unit window ends are compared in.
pub fn now_ms() -> i64 {
    (now().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_unix_seconds(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_past_9999_in_utc_has_no_canonical_form_and_does_not_panic() {
        // Found by the `timestamp` fuzz target: the offset carries it into year 10000.
        for text in ["9999-12-31T23:59:59.999999999-00:30", "9999-12-31T23:30:00-01:00"] {
            assert!(parse(text).is_some(), "{text}");
            assert_eq!(canonical(text), None, "{text}");
            assert_eq!(canonical_with_ms(text), None, "{text}");
        }
    }

    #[test]
    fn canonical_form_ignores_fraction_zeros_and_offsets() {
        for (text, want) in [
            ("2026-11-21T10:00:00.0000000Z", Some("2026-11-21T10:00:00Z")),
            ("2026-11-21T11:00:00+01:00", Some("2026-11-21T10:00:00Z")),
            ("2026-11-21T10:00:00.5Z", Some("2026-11-21T10:00:00.5Z")),
            ("2024-05-01T12:34:56.789", Some("2024-05-01T12:34:56.789Z")),
            ("2024-05-01T12:34:56", Some("2024-05-01T12:34:56Z")),
            ("2020-03-09 10:14:33", Some("2020-03-09T10:14:33Z")),
            ("2020-03-09  10:14:33", None),
            ("yesterday", None),
            ("0000-01-01T00:00:00+01:00", None),
            ("2024-05-01", None),
        ] {
            assert_eq!(canonical(text).as_deref(), want, "{text:?}");
        }
    }
}
