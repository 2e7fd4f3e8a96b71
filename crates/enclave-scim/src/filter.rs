//! RFC 7644 §3.4.2.2 filters: parser, AST and an evaluator over resource JSON.
//!
//! The AST is public so a backend can translate a filter into its own query language;
//! [`Filter::matches`] evaluates it over the JSON form of a resource (what
//! [`crate::User::to_json`] and [`crate::Group::to_json`] produce) for in-memory backends.

use serde_json::Value;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// Deepest nesting of parentheses, `not` and value filters accepted.
pub const MAX_FILTER_DEPTH: usize = 16;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both sides match.
    And(Box<Filter>, Box<Filter>),
    /// Either side matches.
    Or(Box<Filter>, Box<Filter>),
    /// The inner filter does not match.
    Not(Box<Filter>),
    /// `attrPath op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The comparison.
        op: CompareOp,
        /// The literal compared with.
        value: Literal,
    },
    /// `attrPath pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `attrPath[valFilter]`: some value of a multi-valued complex attribute matches.
    ValuePath {
        /// The multi-valued attribute.
        path: AttrPath,
        /// The filter applied to each of its values (paths relative to the value).
        filter: Box<Filter>,
    },
}

/// An attribute path: optional schema URN, attribute name, optional sub-attribute.
/// Names are kept as written; compare them case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// Schema URN prefix (`urn:ietf:params:scim:schemas:core:2.0:User`), if written.
    pub urn: Option<String>,
    /// Top-level attribute name (`emails`).
    pub attr: String,
    /// Sub-attribute name (`value` in `emails.value`).
    pub sub: Option<String>,
}

impl AttrPath {
    /// Whether this path names `attr` (and `sub`), case-insensitively.
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal
    Ge,
    /// less than
    Lt,
    /// less than or equal
    Le,
}

/// A comparison value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A JSON string.
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A JSON number.
    Number(f64),
}

/// Why a filter was refused; the message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

fn tokenize(input: &str) -> Result<Vec<Tok>, FilterError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            '[' => {
                toks.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                toks.push(Tok::RBracket);
                i += 1;
            }
            '"' => {
                // A JSON string literal: find its end honouring escapes, then let serde decode it.
                let start = i;
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' => i += 2,
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if !closed {
                    return err("unterminated string literal: close it with a double quote");
                }
                let raw: String = chars[start..i].iter().collect();
                match serde_json::from_str::<String>(&raw) {
                    Ok(s) => toks.push(Tok::Str(s)),
                    Err(_) => return err("invalid escape in string literal"),
                }
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E' | '+' | '-'))
                {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                match raw.parse::<f64>() {
                    Ok(n) if n.is_finite() => toks.push(Tok::Num(n)),
                    _ => return err(format!("invalid number literal '{raw}'")),
                }
            }
            c if c.is_ascii_alphabetic() || c == '$' || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '$' | '_' | '-' | '.' | ':'))
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return err(format!("unexpected character '{other}' in filter")),
        }
    }
    Ok(toks)
}

/// Splits `urn:...:User:name.givenName` or `name.givenName` into an [`AttrPath`].
pub(crate) fn parse_attr_path(word: &str) -> Result<AttrPath, FilterError> {
    let (urn, rest) = if word.len() > 4 && word[..4].eq_ignore_ascii_case("urn:") {
        match word.rfind(':') {
            Some(pos) if pos + 1 < word.len() => (Some(word[..pos].to_string()), &word[pos + 1..]),
            _ => {
                return err(format!(
                    "attribute path '{word}' has no attribute after its URN"
                ))
            }
        }
    } else {
        (None, word)
    };
    let mut parts = rest.split('.');
    let attr = parts.next().unwrap_or_default();
    let sub = parts.next();
    if parts.next().is_some() {
        return err(format!("attribute path '{word}' is nested too deeply"));
    }
    let valid = |s: &str| {
        let mut c = s.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '$')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '$')
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) {
        return err(format!("'{word}' is not a valid attribute path"));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return err(format!(
                "filter nests deeper than {MAX_FILTER_DEPTH} levels"
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_keyword("not") && matches!(self.toks.get(self.pos + 1), Some(Tok::LParen)) {
            self.pos += 1;
            self.enter()?;
            let inner = self.paren()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            self.enter()?;
            let inner = self.paren()?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn paren(&mut self) -> Result<Filter, FilterError> {
        if self.next() != Some(Tok::LParen) {
            return err("expected '('");
        }
        let inner = self.or()?;
        if self.next() != Some(Tok::RParen) {
            return err("missing ')' in filter");
        }
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(_) => return err("expected an attribute name"),
            None => return err("filter ends where an attribute name was expected"),
        };
        let path = parse_attr_path(&word)?;
        if matches!(self.peek(), Some(Tok::LBracket)) {
            if path.sub.is_some() {
                return err(format!(
                    "'{word}[...]': a value filter applies to an attribute, not a sub-attribute"
                ));
            }
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RBracket) {
                return err("missing ']' in value filter");
            }
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        let op = match self.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => return err(format!("expected an operator after '{word}'")),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            other => {
                return err(format!(
                    "unknown operator '{other}' (use eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
                ))
            }
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Literal::String(s),
            Some(Tok::Num(n)) => Literal::Number(n),
            Some(Tok::Word(w)) if w == "true" => Literal::Bool(true),
            Some(Tok::Word(w)) if w == "false" => Literal::Bool(false),
            Some(Tok::Word(w)) if w == "null" => Literal::Null,
            _ => {
                return err(format!(
                    "expected a value (\"string\", number, true, false or null) after '{word}'"
                ))
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

impl Filter {
    /// Parses a filter, refusing ones over [`MAX_FILTER_LEN`] bytes or [`MAX_FILTER_DEPTH`] levels.
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        if input.len() > MAX_FILTER_LEN {
            return err(format!("filter is longer than {MAX_FILTER_LEN} bytes"));
        }
        let toks = tokenize(input)?;
        if toks.is_empty() {
            return err("filter is empty");
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let f = p.or()?;
        if p.pos < p.toks.len() {
            return err("unexpected text after the end of the filter");
        }
        Ok(f)
    }

    /// Parses the filter inside a value path (`members[value eq "x"]`), same limits.
    pub(crate) fn parse_value_filter(input: &str) -> Result<Filter, FilterError> {
        Self::parse(input)
    }

    /// Evaluates the filter over a resource's JSON (attribute names compared case-insensitively).
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::Present(path) => values_at(resource, path).iter().any(|v| is_present(v)),
            Filter::Compare { path, op, value } => {
                let exact = case_exact(path);
                let vals = values_at(resource, path);
                if vals.is_empty() {
                    // An absent attribute equals null and differs from everything else.
                    return match (op, value) {
                        (CompareOp::Eq, Literal::Null) => true,
                        (CompareOp::Ne, Literal::Null) => false,
                        (CompareOp::Ne, _) => true,
                        _ => false,
                    };
                }
                if *op == CompareOp::Ne {
                    return !vals.iter().any(|v| compare(v, CompareOp::Eq, value, exact));
                }
                vals.iter().any(|v| compare(v, *op, value, exact))
            }
            Filter::ValuePath { path, filter } => match get_ci(resource, &path.attr) {
                Some(Value::Array(items)) => items.iter().any(|item| filter.matches(item)),
                Some(v @ Value::Object(_)) => filter.matches(v),
                _ => false,
            },
        }
    }
}

/// Attributes whose strings compare case-sensitively (RFC 7643 `caseExact: true`).
fn case_exact(path: &AttrPath) -> bool {
    path.is("id", None)
        || path.is("externalId", None)
        || path.is("members", Some("value"))
        || path.is("groups", Some("value"))
        || (path.sub.is_none() && path.attr.eq_ignore_ascii_case("value"))
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Looks up a key case-insensitively.
pub(crate) fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The leaf values a path designates; multi-valued attributes give one per element.
fn values_at<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(top) = get_ci(resource, &path.attr) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        Some(sub) => items.into_iter().filter_map(|i| get_ci(i, sub)).collect(),
        None => items
            .into_iter()
            .map(|i| match i {
                // A complex multi-valued attribute compared directly compares its "value".
                Value::Object(_) => get_ci(i, "value").unwrap_or(i),
                other => other,
            })
            .collect(),
    }
}

fn compare(actual: &Value, op: CompareOp, lit: &Literal, exact: bool) -> bool {
    match (actual, lit) {
        (Value::String(a), Literal::String(b)) => {
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                CompareOp::Gt => a > b,
                CompareOp::Ge => a >= b,
                CompareOp::Lt => a < b,
                CompareOp::Le => a <= b,
            }
        }
        (Value::Bool(a), Literal::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        (Value::Number(a), Literal::Number(b)) => {
            let Some(a) = a.as_f64() else { return false };
            match op {
                CompareOp::Eq => a == *b,
                CompareOp::Ne => a != *b,
                CompareOp::Gt => a > *b,
                CompareOp::Ge => a >= *b,
                CompareOp::Lt => a < *b,
                CompareOp::Le => a <= *b,
                _ => false,
            }
        }
        (Value::Null, Literal::Null) => op == CompareOp::Eq,
        (_, Literal::Null) => op == CompareOp::Ne,
        _ => op == CompareOp::Ne,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "u1", "userName": "Alice@Example.com", "active": true,
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "alice@work.test", "type": "work", "primary": true},
                       {"value": "alice@home.test", "type": "home"}],
            "meta": {"lastModified": "2026-01-02T03:04:05Z"}, "age": 30
        })
    }

    fn m(f: &str) -> bool {
        Filter::parse(f).unwrap().matches(&user())
    }

    #[test]
    fn parses_and_evaluates_valid_filters() {
        assert!(m(r#"userName eq "alice@example.com""#));
        assert!(m(r#"USERNAME Eq "ALICE@EXAMPLE.COM""#));
        assert!(!m(r#"userName ne "alice@example.com""#));
        assert!(m(r#"userName sw "ali" and userName ew ".com""#));
        assert!(m(r#"name.familyName co "dell""#));
        assert!(m(r#"emails.value eq "alice@home.test""#));
        assert!(m(r#"emails[type eq "work" and value co "@work"]"#));
        assert!(!m(r#"emails[type eq "other"]"#));
        assert!(m(r#"not (active eq false)"#));
        assert!(m(r#"active eq true or userName eq "x""#));
        assert!(m(
            r#"(userName eq "x" or userName eq "y") or name.givenName pr"#
        ));
        assert!(!m(r#"title pr"#));
        assert!(m(r#"title eq null"#));
        assert!(m(r#"meta.lastModified gt "2025-12-31T00:00:00Z""#));
        assert!(m("age ge 30 and age lt 31.5"));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice""#
        ));
        assert!(!m(r#"id eq "U1""#), "id is case-exact");
        assert!(m(r#"emails eq "alice@work.test""#));
        assert!(m(r#"userName eq "al\u0069ce@example.com""#));
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let f = Filter::parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        assert!(matches!(f, Filter::Or(_, ref r) if matches!(**r, Filter::And(_, _))));
    }

    #[test]
    fn exposes_the_ast() {
        let f = Filter::parse(r#"userName eq "bob""#).unwrap();
        assert_eq!(
            f,
            Filter::Compare {
                path: AttrPath {
                    urn: None,
                    attr: "userName".into(),
                    sub: None
                },
                op: CompareOp::Eq,
                value: Literal::String("bob".into()),
            }
        );
    }

    #[test]
    fn refuses_invalid_filters() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "unterminated"#,
            r#"(userName eq "a""#,
            r#"userName eq "a")"#,
            r#"emails[type eq "work""#,
            r#"userName eq "a" and"#,
            r#"userName eq bob"#,
            r#"a.b.c eq "x""#,
            r#"userName eq "a" userName"#,
            "userName eq 1e999",
            r#"9abc eq "x""#,
            r#"userName eq "a" & b"#,
        ] {
            assert!(Filter::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn limits_length_and_depth() {
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_LEN));
        assert!(Filter::parse(&long).is_err());
        let deep = format!(
            "{}userName pr{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        assert!(Filter::parse(&deep).unwrap_err().0.contains("deeper"));
        let ok = format!(
            "{}userName pr{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(Filter::parse(&ok).is_ok());
        let nots = format!("{}userName pr{}", "not (".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&nots).is_err());
    }
}
