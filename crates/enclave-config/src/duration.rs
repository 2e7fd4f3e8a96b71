//! Durations written as `90s`, `30m`, `12h`, `90d` or a bare number of seconds.

use std::time::Duration;

/// The longest duration any setting accepts: ten years (3650 days).
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * DAY);

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Parses `"90s"`, `"30m"`, `"12h"`, `"90d"`, or a bare integer meaning seconds.
///
/// Only a single number and unit is accepted (no `"1h30m"`, no spaces, no sign).
/// Zero is syntactically valid here; range checks (`> 0`, `<=` [`MAX_DURATION`])
/// are applied by the configuration loader.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "expected a duration like \"30m\" or \"12h\", got {}",
            quote(s)
        )
    };
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let factor = match unit {
        "" | "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(invalid()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {} is too large", quote(s)))
}

/// Formats a duration in the largest unit that divides it exactly (`"30m"`, `"90d"`).
///
/// Sub-second parts are dropped; the result always parses back with [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, suffix) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m")] {
        // `checked_rem` rather than `%`: `is_multiple_of` is newer than the MSRV.
        if secs > 0 && secs.checked_rem(unit) == Some(0) {
            return format!("{}{suffix}", secs / unit);
        }
    }
    format!("{secs}s")
}

/// Quotes a user-supplied value for an error message, shortening very long ones.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let short: String = s.chars().take(MAX).collect();
        format!("{short:?}...")
    } else {
        format!("{s:?}")
    }
}
