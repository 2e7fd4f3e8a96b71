//! Lifetime rules for sessions, tokens and setup links, as pure functions of time.

use crate::time::Timestamp;
use std::time::Duration;

/// Session timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after login, however active.
    pub absolute: Duration,
}

impl SessionPolicy {
    /// Whether a session created at `created` and last used at `last_seen` is still valid at `now`.
    pub fn is_live(&self, created: Timestamp, last_seen: Timestamp, now: Timestamp) -> bool {
        now < created.plus(self.absolute) && now < last_seen.plus(self.idle)
    }
}

/// Token lifetime limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Lifetime when the client asks for none.
    pub default_lifetime: Duration,
    /// Longest lifetime a client may ask for.
    pub max_lifetime: Duration,
}

impl TokenPolicy {
    /// The expiry for a token created at `now` with an optional requested lifetime in days.
    pub fn expiry(&self, now: Timestamp, days: Option<u32>) -> crate::Result<Timestamp> {
        let lifetime = match days {
            None => self.default_lifetime,
            Some(0) => {
                return Err(crate::Error::invalid(
                    "expires_in_days",
                    "expires_in_days must be at least 1",
                ))
            }
            Some(d) => Duration::from_secs(u64::from(d) * 86_400),
        };
        if lifetime > self.max_lifetime {
            let max_days = self.max_lifetime.as_secs() / 86_400;
            return Err(crate::Error::invalid(
                "expires_in_days",
                format!("expires_in_days must be at most {max_days} (the configured maximum token lifetime)"),
            ));
        }
        Ok(now.plus(lifetime))
    }
}

/// Whether a credential that expires at `expires_at` is valid at `now`.
pub fn not_expired(expires_at: Timestamp, now: Timestamp) -> bool {
    now < expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_idle_and_absolute() {
        let p = SessionPolicy {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
        };
        let t0 = Timestamp(1000);
        assert!(p.is_live(t0, t0, Timestamp(1059)));
        assert!(!p.is_live(t0, t0, Timestamp(1060)));
        assert!(p.is_live(t0, Timestamp(1590), Timestamp(1599)));
        assert!(!p.is_live(t0, Timestamp(1590), Timestamp(1600)));
    }

    #[test]
    fn token_expiry_is_bounded() {
        let p = TokenPolicy {
            default_lifetime: Duration::from_secs(30 * 86_400),
            max_lifetime: Duration::from_secs(90 * 86_400),
        };
        let now = Timestamp(0);
        assert_eq!(p.expiry(now, None), Ok(Timestamp(30 * 86_400)));
        assert_eq!(p.expiry(now, Some(90)), Ok(Timestamp(90 * 86_400)));
        assert!(p.expiry(now, Some(91)).is_err());
        assert!(p.expiry(now, Some(0)).is_err());
        assert!(not_expired(Timestamp(10), Timestamp(9)));
        assert!(!not_expired(Timestamp(10), Timestamp(10)));
    }
}
