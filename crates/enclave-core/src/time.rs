//! Time as a value. Domain code receives [`Timestamp`]s; only the [`Clock`] implementations at the
//! edge read the system time.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A point in time: whole seconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Timestamp {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(secs))
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Timestamp {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(secs))
    }

    /// RFC 3339 in UTC, e.g. `2026-11-23T06:26:13Z` (years 0000–9999; outside that range the
    /// raw seconds). Hand-rolled because every listed record formats a few timestamps.
    pub fn rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return self.0.to_string();
        }
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

/// Year, month, day of the proleptic Gregorian calendar for a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A source of the current time. The server uses the system clock; tests use a manual one.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_matches_the_time_crate() {
        let samples = [
            0_i64,
            59,
            86_399,
            86_400,
            951_782_400,
            951_868_800,
            1_709_164_800,
            1_800_000_000,
            4_102_444_799,
            -1,
            -86_401,
            253_402_300_799,
        ];
        let step = (0..2000).map(|i| i * 7_919_993_i64);
        for t in samples.into_iter().chain(step) {
            let expected = ::time::OffsetDateTime::from_unix_timestamp(t)
                .unwrap()
                .format(&::time::format_description::well_known::Rfc3339)
                .unwrap();
            assert_eq!(Timestamp(t).rfc3339(), expected, "{t}");
        }
    }

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(60).plus(Duration::from_secs(60)), Timestamp(120));
        assert_eq!(Timestamp(60).minus(Duration::from_secs(90)), Timestamp(-30));
    }
}
