//! Validation of every name and free-text field at the edge of the domain. A value that passes
//! here is safe to store, to log and to render (after HTML escaping).

use crate::error::{Error, Result};

/// Longest username.
pub const MAX_USERNAME: usize = 64;
/// Longest group or project name.
pub const MAX_SLUG: usize = 40;
/// Longest display name, description or token name.
pub const MAX_TEXT: usize = 256;
/// Longest email address.
pub const MAX_EMAIL: usize = 254;

/// A username: 1–64 chars of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn username(field: &str, s: &str) -> Result<()> {
    let ok_len = !s.is_empty() && s.len() <= MAX_USERNAME;
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && first_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{field} must be 1 to {MAX_USERNAME} characters of lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// A group or project name: 2–40 chars of `a-z 0-9 -`, starting with a letter, no `--`, not
/// ending with `-` (it must fit in a DNS label next to other names).
pub fn slug(field: &str, s: &str) -> Result<()> {
    let ok = (2..=MAX_SLUG).contains(&s.len())
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.contains("--")
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{field} must be 2 to {MAX_SLUG} characters of lowercase letters, digits and single '-', starting with a letter and not ending with '-'"
            ),
        ))
    }
}

/// Free text (description, display name, token name): at most 256 characters, no control
/// characters. `required` refuses the empty string.
pub fn text(field: &str, s: &str, required: bool) -> Result<()> {
    if required && s.trim().is_empty() {
        return Err(Error::invalid(field, format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_TEXT} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// An email address: `local@domain`, printable ASCII without spaces, at most 254 characters.
/// Empty is allowed (no email).
pub fn email(field: &str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Ok(());
    }
    let valid = s.len() <= MAX_EMAIL
        && s.chars().all(|c| c.is_ascii_graphic())
        && match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{field} must be an email address like name@example.org"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["a", "alice", "bob.smith", "x_1-2", "9lives"] {
            assert!(username("username", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "Alice", "-x", ".x", "a b", "a/b", "é", long.as_str()] {
            assert!(username("username", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs() {
        for ok in ["ab", "fraud-detection", "p1"] {
            assert!(slug("name", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(41);
        for bad in ["a", "1ab", "a--b", "ab-", "A", "a_b", long.as_str(), "a.b"] {
            assert!(slug("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_and_emails() {
        assert!(text("d", "", false).is_ok());
        assert!(text("d", " ", true).is_err());
        assert!(text("d", "line\nbreak", false).is_err());
        assert!(text("d", &"é".repeat(256), false).is_ok());
        assert!(text("d", &"é".repeat(257), false).is_err());
        assert!(email("e", "a@b.org").is_ok());
        assert!(email("e", "").is_ok());
        for bad in ["a", "a@b", "@b.org", "a b@c.org", "a@.org", "a@b.org."] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
    }
}
