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

    /// RFC 3339 in UTC, e.g. `2026-11-23T06:26:13Z`.
    pub fn rfc3339(self) -> String {
        match ::time::OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => t
                .format(&::time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
}

/// A source of the current time. The server uses the system clock; tests use a manual one.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Timestamp(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(60).plus(Duration::from_secs(60)), Timestamp(120));
        assert_eq!(Timestamp(60).minus(Duration::from_secs(90)), Timestamp(-30));
    }
}
