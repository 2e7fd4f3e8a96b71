//! Errors of policy parsing, validation and snapshot building.

use std::fmt;

/// A place in a policy's text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text's end).
    pub fn at(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn at(p: &Option<Position>) -> String {
    match p {
        Some(p) => format!(" at {p}"),
        None => String::new(),
    }
}

/// Why a policy or a directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not Cedar.
    #[error("syntax error{}: {message}", at(.position))]
    Syntax {
        /// The parser's message (with its help, if any).
        message: String,
        /// Where the parser stopped.
        position: Option<Position>,
    },
    /// The policy does not validate (strictly) against Enclave's schema.
    #[error("invalid policy{}: {message}", at(.position))]
    Invalid {
        /// The validator's message.
        message: String,
        /// Where the offending expression is.
        position: Option<Position>,
    },
    /// The policy is valid Cedar but not allowed here (shape, scope, reserved ids).
    #[error("not allowed{}: {message}", at(.position))]
    NotAllowed {
        /// What is wrong and what to write instead.
        message: String,
        /// The offending part, when known.
        position: Option<Position>,
    },
    /// A stored custom policy failed while building a snapshot.
    #[error("custom policy {id}: {error}")]
    Custom {
        /// The custom policy's id (without the `custom.` prefix).
        id: String,
        /// What is wrong with it.
        error: Box<PolicyError>,
    },
    /// The embedded schema or built-in policies are broken (a bug; tests guard against it).
    #[error("internal policy error: {0}")]
    Internal(String),
}

impl PolicyError {
    /// The position the error points at, if any (for a [`PolicyError::Custom`], its inner one).
    pub fn position(&self) -> Option<Position> {
        match self {
            PolicyError::Syntax { position, .. }
            | PolicyError::Invalid { position, .. }
            | PolicyError::NotAllowed { position, .. } => *position,
            PolicyError::Custom { error, .. } => error.position(),
            PolicyError::Internal(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let t = "ab\ncdé\nf";
        assert_eq!(Position::at(t, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(t, 3), Position { line: 2, column: 1 });
        assert_eq!(Position::at(t, 7), Position { line: 2, column: 4 });
        assert_eq!(Position::at(t, 8), Position { line: 3, column: 1 });
        assert_eq!(Position::at(t, 99), Position { line: 3, column: 2 });
    }
}
