//! The timestamp parser every window end, enqueued time and CSV row goes through.

use domain::time as timefmt;

/// `2026-01-01T00:00:00.123456789Z`: the longest canonical form.
const MAX_CANONICAL: usize = 30;

pub fn check_timestamp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = timefmt::parse(text);
    let canonical = timefmt::canonical(text);
    match (parsed, canonical) {
        (None, canonical) => assert_eq!(canonical, None, "canonical without a parse"),
        (Some(t), None) => {
            let year = t.checked_to_offset(time::UtcOffset::UTC).map(|u| u.year());
            assert!(
                !year.is_some_and(|y| (0..=9999).contains(&y)),
                "{text:?} parsed ({t}) but has no canonical form"
            );
        }
        (Some(t), Some(c)) => {
            assert!(c.len() <= MAX_CANONICAL && c.ends_with('Z'), "{c:?}");
            // Canonical is a fixed point naming the same instant, and the millisecond form
            // that stores compare agrees with it.
            assert_eq!(timefmt::parse(&c), Some(t), "{c:?} is another instant");
            assert_eq!(timefmt::canonical(&c).as_deref(), Some(c.as_str()));
            let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            assert_eq!(timefmt::canonical_with_ms(text), Some((c.clone(), ms)));
            assert_eq!(sinks::unix_ms(&c), Some(ms));
        }
    }
}
