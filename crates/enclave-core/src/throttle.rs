//! Login throttling: a failure counter per key (an account name or a source address) inside a
//! sliding window, and a lockout once the counter reaches its limit. Pure: the caller loads the
//! state, applies these rules with the current time, and stores the result.

use crate::time::Timestamp;
use std::time::Duration;

/// Limits for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures within `window` that trigger a lockout.
    pub max_failures: u32,
    /// Window in which failures count.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

/// Stored state for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Failures counted in the current window.
    pub failures: u32,
    /// Start of the current window.
    pub window_start: Timestamp,
    /// Locked until this time, if locked.
    pub locked_until: Option<Timestamp>,
}

impl ThrottleRule {
    /// Whether the key is locked at `now`.
    pub fn is_locked(&self, state: &ThrottleState, now: Timestamp) -> bool {
        state.locked_until.is_some_and(|until| now < until)
    }

    /// The state after one more failure at `now`.
    pub fn after_failure(&self, state: &ThrottleState, now: Timestamp) -> ThrottleState {
        let in_window = now < state.window_start.plus(self.window);
        let (failures, window_start) = if in_window && !self.lock_expired(state, now) {
            (state.failures.saturating_add(1), state.window_start)
        } else {
            (1, now)
        };
        let locked_until = if failures >= self.max_failures {
            Some(now.plus(self.lockout))
        } else {
            None
        };
        ThrottleState {
            failures,
            window_start,
            locked_until,
        }
    }

    fn lock_expired(&self, state: &ThrottleState, now: Timestamp) -> bool {
        state.locked_until.is_some_and(|until| now >= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ThrottleRule = ThrottleRule {
        max_failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(300),
    };

    #[test]
    fn locks_after_max_failures_in_window() {
        let mut s = ThrottleState::default();
        for t in [100, 110] {
            s = RULE.after_failure(&s, Timestamp(t));
            assert!(!RULE.is_locked(&s, Timestamp(t)));
        }
        s = RULE.after_failure(&s, Timestamp(120));
        assert!(RULE.is_locked(&s, Timestamp(120)));
        assert!(RULE.is_locked(&s, Timestamp(419)));
        assert!(!RULE.is_locked(&s, Timestamp(420)));
        // After the lockout the count starts again.
        s = RULE.after_failure(&s, Timestamp(421));
        assert_eq!(s.failures, 1);
    }

    #[test]
    fn window_expiry_resets_the_count() {
        let mut s = ThrottleState::default();
        s = RULE.after_failure(&s, Timestamp(100));
        s = RULE.after_failure(&s, Timestamp(110));
        s = RULE.after_failure(&s, Timestamp(161));
        assert_eq!(s.failures, 1);
        assert!(!RULE.is_locked(&s, Timestamp(161)));
    }
}
