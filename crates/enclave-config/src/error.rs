//! Configuration errors: where a bad value came from, which key, and why.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value (or an error about it) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The TOML configuration file; `line` and `column` are 1-based.
    File {
        /// Path of the file, as it was named.
        path: PathBuf,
        /// Line of the offending key or value, when known.
        line: Option<usize>,
        /// Column (in characters) of the offending key or value, when known.
        column: Option<usize>,
    },
    /// An `ENCLAVE_*` environment variable.
    Env {
        /// The variable's name, e.g. `ENCLAVE_LISTEN`.
        var: String,
    },
    /// A command-line flag.
    Flag {
        /// The flag as written, e.g. `--listen`.
        name: String,
    },
    /// The built-in default.
    Default,
}

impl Source {
    /// A file source pointing at byte `offset` of `text` (converted to line and column).
    pub(crate) fn file_at(path: &std::path::Path, text: &str, offset: Option<usize>) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let (line, column) = line_column(text, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Source::File {
            path: path.to_path_buf(),
            line,
            column,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl fmt::Display for Source {
    /// `enclave.toml:12`, `environment variable ENCLAVE_LISTEN`, `flag --listen`, `built-in default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, line, .. } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                Ok(())
            }
            Source::Env { var } => write!(f, "environment variable {var}"),
            Source::Flag { name } => write!(f, "flag {name}"),
            Source::Default => f.write_str("built-in default"),
        }
    }
}

/// One problem with the configuration.
///
/// Displays as `enclave.toml:12: key "sessions.idle_timeout": expected a duration
/// like "30m" or "12h", got "soon"`. `key` is the dotted configuration key; it is
/// empty for problems not tied to one key (TOML syntax errors, unknown
/// environment variables, unreadable files), and the `key "…":` part is then left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the offending value came from.
    pub source: Source,
    /// Dotted key, e.g. `sessions.idle_timeout`; empty when not tied to a key.
    pub key: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.reason)
        } else {
            write!(f, "{}: key {:?}: {}", self.source, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Formats a list of errors one per line, for printing before exiting.
pub fn format_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // byte 10 is the "=" after "bé " (é is two bytes): column 4
        assert_eq!(line_column(text, 10), (2, 4));
        // past the end and inside a multi-byte char are clamped
        assert_eq!(line_column(text, 1000), (3, 1));
        assert_eq!(line_column(text, 8), (2, 2));
    }
}
