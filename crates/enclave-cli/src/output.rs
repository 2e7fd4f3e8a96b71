//! Text rendering of API objects: aligned tables and `key: value` lines.

use serde_json::Value;

use crate::client::sanitize;

/// A column: its header and the JSON field it shows.
pub(crate) type Column = (&'static str, &'static str);

/// Columns of a user.
pub(crate) const USER: &[Column] = &[
    ("USERNAME", "username"),
    ("DISPLAY NAME", "display_name"),
    ("EMAIL", "email"),
    ("ADMIN", "platform_admin"),
    ("DISABLED", "disabled"),
    ("LOCKED", "locked"),
    ("CREATED", "created_at"),
];
/// Columns of a group.
pub(crate) const GROUP: &[Column] = &[
    ("NAME", "name"),
    ("MEMBERS", "member_count"),
    ("CREATED", "created_at"),
    ("DESCRIPTION", "description"),
];
/// Columns of a group member.
pub(crate) const GROUP_MEMBER: &[Column] = &[("USERNAME", "username")];
/// Columns of a project.
pub(crate) const PROJECT: &[Column] = &[
    ("NAME", "name"),
    ("OWNER", "owner"),
    ("YOUR ROLE", "your_role"),
    ("MEMBERS", "member_count"),
    ("CLASSIFICATION", "classification"),
    ("CREATED", "created_at"),
    ("DESCRIPTION", "description"),
];
/// Fields of one project, in the order `projects show` prints them.
pub(crate) const PROJECT_DETAILS: &[Column] = &[
    ("", "name"),
    ("", "description"),
    ("", "owner"),
    ("", "your_role"),
    ("", "member_count"),
    ("", "classification"),
    ("", "tags"),
    ("", "requires_approval"),
    ("", "created_at"),
];
/// Columns of a project member.
pub(crate) const PROJECT_MEMBER: &[Column] = &[("USERNAME", "username"), ("ROLE", "role")];
/// Columns of a personal API token.
pub(crate) const TOKEN: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("SCOPE", "scope"),
    ("PROJECTS", "projects"),
    ("CREATED", "created_at"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
];

/// Columns of a custom policy (its Cedar text is printed apart).
pub(crate) const POLICY: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("PROJECT", "project"),
    ("CREATED BY", "created_by"),
    ("CREATED", "created_at"),
    ("UPDATED", "updated_at"),
    ("DESCRIPTION", "description"),
];
/// Columns of a role binding.
pub(crate) const BINDING: &[Column] = &[
    ("ID", "id"),
    ("SUBJECT", "subject"),
    ("ROLE", "role"),
    ("PROJECT", "project"),
    ("EXPIRES", "expires_at"),
    ("CREATED BY", "created_by"),
    ("CREATED", "created_at"),
];
/// Fields of one policy, in the order `policy show` prints them (the body comes last).
pub(crate) const POLICY_DETAILS: &[Column] = &[
    ("", "id"),
    ("", "name"),
    ("", "project"),
    ("", "description"),
    ("", "created_by"),
    ("", "created_at"),
    ("", "updated_at"),
];

/// Fields of one grant, in the order they are printed (text mode shows `duration` instead of
/// `duration_secs`).
pub(crate) const GRANT_DETAILS: &[Column] = &[
    ("", "id"),
    ("", "project"),
    ("", "grantee"),
    ("", "role"),
    ("", "status"),
    ("", "reason"),
    ("", "duration"),
    ("", "requested_at"),
    ("", "decided_by"),
    ("", "decided_at"),
    ("", "starts_at"),
    ("", "expires_at"),
    ("", "revoked_by"),
    ("", "revoked_at"),
];

/// Columns of the grants table (one project's grants).
pub(crate) const GRANT_ROW: &[Column] = &[
    ("ID", "id"),
    ("GRANTEE", "grantee"),
    ("ROLE", "role"),
    ("STATUS", "status"),
    ("DURATION", "duration"),
    ("REQUESTED", "requested_at"),
    ("EXPIRES", "expires_at"),
    ("REASON", "reason"),
];

/// Columns of a role held by the principal of `policy check`.
pub(crate) const HELD_ROLE: &[Column] = &[
    ("ROLE", "role"),
    ("ORIGIN", "origin"),
    ("SCOPE", "scope"),
    ("VIA GROUP", "via_group"),
    ("EXPIRES", "expires_at"),
];

/// Formats seconds as `1d2h3m4s` (zero parts left out; `0s` for zero).
pub(crate) fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text
    }
}

/// Replaces control characters except newlines and tabs, for multi-line server text.
pub(crate) fn sanitize_multiline(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Indents every line of `text` by `prefix`; the result ends with a newline.
pub(crate) fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

/// Formats one JSON value for a cell: booleans as yes/no, null and empty as `-`, arrays joined
/// with commas, objects as `key=value` pairs sorted and joined with commas; control characters are
/// replaced.
pub(crate) fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(map)) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        Some(other) => other.to_string(),
    };
    if text.is_empty() {
        "-".into()
    } else {
        sanitize(&text)
    }
}

/// Renders items as a table with a header row; columns are separated by two spaces and the
/// last column is not padded.
pub(crate) fn table(columns: &[Column], items: &[Value]) -> String {
    let rows: Vec<Vec<String>> =
        std::iter::once(columns.iter().map(|(h, _)| h.to_string()).collect())
            .chain(
                items
                    .iter()
                    .map(|item| columns.iter().map(|(_, k)| cell(item.get(k))).collect()),
            )
            .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, text) in row.iter().enumerate() {
            if i == last {
                out.push_str(text);
            } else {
                out.push_str(text);
                out.push_str(&" ".repeat(widths[i] - text.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// Renders `key: value` lines with aligned values: first the known columns in order (with
/// their field names, underscores as spaces), then any other fields the server sent.
pub(crate) fn key_values(columns: &[Column], object: &Value) -> String {
    pairs_to_text(&object_pairs(columns, object))
}

/// The `(key, value)` pairs of [`key_values`], unformatted.
pub(crate) fn object_pairs(columns: &[Column], object: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = columns
        .iter()
        .filter(|(_, k)| object.get(k).is_some())
        .map(|(_, k)| (k.replace('_', " "), cell(object.get(k))))
        .collect();
    if let Some(map) = object.as_object() {
        for (k, v) in map {
            if !columns.iter().any(|(_, c)| c == k) {
                pairs.push((sanitize(&k.replace('_', " ")), cell(Some(v))));
            }
        }
    }
    pairs
}

/// Renders already formatted pairs as aligned `key: value` lines.
pub(crate) fn pairs_to_text(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k}:{}{v}\n", " ".repeat(width - k.chars().count() + 1)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!(""))), "-");
        assert_eq!(cell(Some(&json!(true))), "yes");
        assert_eq!(cell(Some(&json!(3))), "3");
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a,b");
        assert_eq!(cell(Some(&json!([]))), "-");
        assert_eq!(cell(Some(&json!("a\u{1b}[2Jb\n"))), "a?[2Jb?");
        assert_eq!(
            cell(Some(&json!({"team": "fraud", "n": 1}))),
            "n=1,team=fraud"
        );
        assert_eq!(cell(Some(&json!({}))), "-");
    }

    #[test]
    fn durations_and_multiline_text() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(90_061), "1d1h1m1s");
        assert_eq!(duration(5400), "1h30m");
        assert_eq!(
            sanitize_multiline("permit(\n\tprincipal\u{1b}[2J\r\n);"),
            "permit(\n\tprincipal?[2J?\n);"
        );
        assert_eq!(indent("a\nb\n", "  "), "  a\n  b\n");
    }

    #[test]
    fn tables_are_aligned() {
        let items = vec![
            json!({"username": "alice", "role": "owner"}),
            json!({"username": "bo", "role": null}),
        ];
        assert_eq!(
            table(PROJECT_MEMBER, &items),
            "USERNAME  ROLE\nalice     owner\nbo        -\n"
        );
        assert_eq!(table(GROUP_MEMBER, &[]), "USERNAME\n");
    }

    #[test]
    fn key_value_lines() {
        let obj =
            json!({"name": "g1", "description": "d", "member_count": 2, "extra_field": false});
        assert_eq!(
            key_values(GROUP, &obj),
            "name:         g1\nmember count: 2\ndescription:  d\nextra field:  no\n"
        );
    }
}
