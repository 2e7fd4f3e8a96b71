//! The policy commands: custom Cedar policies, decisions (`check`, `can`), role bindings and
//! time-bound access grants.

use std::io::Read;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{Res, Runner};
use crate::client::{sanitize, Failure};
use crate::output::{self, GRANT_DETAILS, GRANT_ROW, POLICY_DETAILS};
use crate::{
    GrantRole, GrantsCommand, OutputFormat, PolicyCommand, RolesCommand, EXIT_DENIED,
    MAX_POLICY_BYTES,
};

/// Longest policy line shown in full in an error excerpt (in characters).
const EXCERPT_WIDTH: usize = 120;

/// Text mode: a `project` of `null` means platform-wide.
fn platform_scope(value: &mut Value) {
    if let Some(p) = value.get_mut("project") {
        if p.is_null() {
            *p = json!("(platform)");
        }
    }
}

/// Text mode: `duration_secs` shown as `2h`.
fn grant_view(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        if let Some(secs) = obj.get("duration_secs").and_then(Value::as_u64) {
            obj.insert("duration".into(), json!(output::duration(secs)));
            obj.remove("duration_secs");
        }
    }
}

fn project_query(project: Option<String>) -> Vec<(&'static str, String)> {
    project.map(|p| vec![("project", p)]).unwrap_or_default()
}

fn grant_role_name(role: GrantRole) -> &'static str {
    match role {
        GrantRole::Support => "support",
        GrantRole::ProjectAdmin => "project_admin",
    }
}

fn require_text(flag: &str, value: &str, example: &str) -> Result<(), Failure> {
    if value.trim().is_empty() {
        return Err(Failure::usage(
            format!("{flag} is empty"),
            Some(format!("give it a value, e.g. {flag} {example}")),
        ));
    }
    Ok(())
}

/// A policy text read from a file or stdin, and the name errors use for it.
struct PolicyText {
    /// The file's path, or `<stdin>`.
    source: String,
    /// The Cedar text.
    body: String,
}

impl PolicyText {
    /// Reads the text from `file` or, with `stdin`, from `input`; `None` when neither is given.
    /// At most [`MAX_POLICY_BYTES`] of UTF-8 that is not blank.
    fn read(
        file: Option<&Path>,
        stdin: bool,
        input: &mut (dyn std::io::BufRead + Send),
    ) -> Result<Option<PolicyText>, Failure> {
        let limit = MAX_POLICY_BYTES;
        let mut bytes = Vec::new();
        let source = match (file, stdin) {
            (Some(path), _) => {
                let source = path.display().to_string();
                let read_error = |e: std::io::Error| {
                    Failure::local(
                        "io",
                        format!("cannot read the policy file {source}: {e}"),
                        None,
                    )
                };
                let f = std::fs::File::open(path).map_err(read_error)?;
                f.take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(read_error)?;
                source
            }
            (None, true) => {
                input.take(limit + 1).read_to_end(&mut bytes).map_err(|e| {
                    Failure::local(
                        "io",
                        format!("cannot read the policy from stdin: {e}"),
                        None,
                    )
                })?;
                "<stdin>".to_string()
            }
            (None, false) => return Ok(None),
        };
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
            return Err(Failure::usage(
                format!("{source} is larger than 16 KiB, the most a custom policy may have"),
                Some(
                    "a custom policy is one `permit` or `forbid`: split the rules into several \
                     policies"
                        .into(),
                ),
            ));
        }
        let body = String::from_utf8(bytes)
            .map_err(|_| Failure::usage(format!("{source} is not UTF-8 text"), None))?;
        if body.trim().is_empty() {
            return Err(Failure::usage(
                format!("{source} is empty"),
                Some("write one Cedar `permit` or `forbid` policy".into()),
            ));
        }
        Ok(Some(PolicyText { source, body }))
    }

    /// Points a refusal of the text at its place: `FILE:LINE:COLUMN: message`, and the line
    /// with a caret under the column.
    fn locate(&self, mut f: Failure) -> Failure {
        let about_body = f.code == "invalid_input"
            && f.details.get("field").and_then(Value::as_str) == Some("body");
        if !about_body {
            return f;
        }
        let line = f.details.get("line").and_then(Value::as_u64);
        let column = f.details.get("column").and_then(Value::as_u64);
        let place = match (line, column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.source),
            (Some(l), None) => format!("{}:{l}", self.source),
            _ => self.source.clone(),
        };
        f.message = format!("{place}: {}", f.message);
        if let Some(l) = line {
            f.excerpt = excerpt(&self.body, l, column);
        }
        f
    }
}

/// The policy's line `line` with a caret under `column` (both from 1, the column counted in
/// characters), compiler style; long lines are cut around the column.
fn excerpt(body: &str, line: u64, column: Option<u64>) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let text: Vec<char> = body.lines().nth(index)?.chars().collect();
    let col = column
        .and_then(|c| usize::try_from(c).ok())
        .map(|c| c.clamp(1, text.len() + 1));
    // Window of at most EXCERPT_WIDTH characters that holds the column.
    let start = match col {
        Some(c) if text.len() > EXCERPT_WIDTH => c
            .saturating_sub(EXCERPT_WIDTH / 2)
            .min(text.len() - EXCERPT_WIDTH),
        _ => 0,
    };
    let end = (start + EXCERPT_WIDTH).min(text.len());
    let shown: String = text[start..end]
        .iter()
        .map(|&c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    let (before, after) = (
        if start > 0 { "…" } else { "" },
        if end < text.len() { "…" } else { "" },
    );
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    let mut out = format!("{gutter} |\n{number} | {before}{shown}{after}\n");
    if let Some(c) = col {
        let pad: String = std::iter::once(before)
            .filter(|b| !b.is_empty())
            .map(|_| ' ')
            .chain(
                text[start..(c - 1).max(start)]
                    .iter()
                    .map(|&ch| if ch == '\t' { '\t' } else { ' ' }),
            )
            .collect();
        out.push_str(&format!("{gutter} | {pad}^\n"));
    }
    Some(out)
}

impl Runner<'_, '_> {
    // ---- policies ----

    pub(super) async fn policy(&mut self, cmd: PolicyCommand) -> Res {
        match cmd {
            PolicyCommand::List { project } => {
                let query = project_query(project);
                let items = self.api()?.list_all(&["policies"], &query).await?;
                self.show_list_as(output::POLICY, items, platform_scope)
            }
            PolicyCommand::Show { id } => {
                let client = self.api()?;
                let policy = client
                    .call_json(Method::GET, &["policies", &id], None)
                    .await?;
                self.show_policy(policy)
            }
            PolicyCommand::Create {
                name,
                project,
                description,
                file,
                stdin,
            } => {
                let Some(text) = PolicyText::read(file.as_deref(), stdin, &mut *self.ctx.stdin)?
                else {
                    return Err(Failure::usage(
                        "no policy text",
                        Some("give --file FILE or --stdin".into()),
                    ));
                };
                let mut body = json!({"name": name, "body": text.body});
                if let Some(p) = project {
                    body["project"] = json!(p);
                }
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                let client = self.api()?;
                let created = client
                    .call_json(Method::POST, &["policies"], Some(&body))
                    .await
                    .map_err(|f| text.locate(f))?;
                self.show_policy(created)
            }
            PolicyCommand::Update {
                id,
                description,
                file,
                stdin,
            } => {
                let text = PolicyText::read(file.as_deref(), stdin, &mut *self.ctx.stdin)?;
                let mut body = Map::new();
                if let Some(d) = description {
                    body.insert("description".into(), json!(d));
                }
                if let Some(t) = &text {
                    body.insert("body".into(), json!(t.body));
                }
                if body.is_empty() {
                    return Err(Failure::usage(
                        "nothing to change",
                        Some("give --description, --file FILE or --stdin".into()),
                    ));
                }
                let body = Value::Object(body);
                let client = self.api()?;
                let updated = client
                    .call_json(Method::PATCH, &["policies", &id], Some(&body))
                    .await
                    .map_err(|f| match &text {
                        Some(t) => t.locate(f),
                        None => f,
                    })?;
                self.show_policy(updated)
            }
            PolicyCommand::Delete { id } => {
                self.api()?
                    .call(Method::DELETE, &["policies", &id], &[], None)
                    .await?;
                self.done(&format!("Deleted policy {id}."))
            }
            PolicyCommand::Check {
                principal,
                action,
                resource,
                context,
            } => {
                require_text("--principal", &principal, "alice")?;
                require_text("--action", &action, "project.read")?;
                require_text("--resource", &resource, "project:fraud")?;
                let mut body =
                    json!({"principal": principal, "action": action, "resource": resource});
                if let Some(c) = context {
                    body["context"] = Value::Object(c);
                }
                let client = self.api()?;
                let answer = client
                    .call_json(Method::POST, &["policy", "check"], Some(&body))
                    .await?;
                self.show_decision(&answer)
            }
            PolicyCommand::Can { principal, project } => {
                require_text("--principal", &principal, "alice")?;
                let query = [
                    ("principal", principal.clone()),
                    ("project", project.clone()),
                ];
                let client = self.api()?;
                let answer = client
                    .call(Method::GET, &["policy", "can"], &query, None)
                    .await?
                    .ok_or_else(|| {
                        Failure::server("invalid_response", "the server's answer is empty", None)
                    })?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&answer));
                }
                let Some(actions) = answer.get("actions").and_then(Value::as_array) else {
                    return Err(Failure::server(
                        "invalid_response",
                        "the server's answer has no list of actions",
                        None,
                    ));
                };
                if actions.is_empty() {
                    let _ = writeln!(
                        self.ctx.err,
                        "{} may do nothing in project {}.",
                        sanitize(&principal),
                        sanitize(&project)
                    );
                }
                let text: String = actions
                    .iter()
                    .map(|a| format!("{}\n", output::cell(Some(a))))
                    .collect();
                self.write_out(&text)
            }
        }
    }

    /// Prints a policy: JSON as is, or `key: value` lines and then the indented Cedar text.
    fn show_policy(&mut self, policy: Value) -> Res {
        if self.ctx.output == OutputFormat::Json {
            return self.write_out(&Self::json_text(&policy));
        }
        let mut head = policy;
        let body = head.as_object_mut().and_then(|o| o.remove("body"));
        platform_scope(&mut head);
        let mut text = output::key_values(POLICY_DETAILS, &head);
        if let Some(body) = body.as_ref().and_then(Value::as_str) {
            text.push_str("body:\n");
            text.push_str(&output::indent(&output::sanitize_multiline(body), "  "));
        }
        self.write_out(&text)
    }

    /// Prints the answer of `policy check` and sets the exit code: 0 for allow,
    /// [`EXIT_DENIED`] for deny.
    fn show_decision(&mut self, answer: &Value) -> Res {
        let allowed = answer.get("allowed").and_then(Value::as_bool);
        let decision = answer.get("decision").and_then(Value::as_str);
        let allowed = match (allowed, decision) {
            (None, None) => {
                return Err(Failure::server(
                    "invalid_response",
                    "the server's answer has no decision",
                    None,
                ))
            }
            // Both must say allow when both are there.
            (a, d) => a.unwrap_or(true) && d.is_none_or(|d| d == "allow"),
        };
        self.status = if allowed { 0 } else { EXIT_DENIED };
        if self.ctx.output == OutputFormat::Json {
            return self.write_out(&Self::json_text(answer));
        }
        let mut text = String::from(if allowed { "ALLOW\n" } else { "DENY\n" });
        let determining = match answer.get("determining").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .map(|v| output::cell(Some(v)))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "-".to_string(),
        };
        text.push_str(&output::pairs_to_text(&[
            (
                "explanation".to_string(),
                output::cell(answer.get("explanation")),
            ),
            ("determining".to_string(), determining),
        ]));
        if let Some(roles) = answer.get("roles").and_then(Value::as_array) {
            if roles.is_empty() {
                text.push_str("roles: -\n");
            } else {
                text.push_str("roles:\n");
                text.push_str(&output::indent(
                    &output::table(output::HELD_ROLE, roles),
                    "  ",
                ));
            }
        }
        if let Some(errors) = answer.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                text.push_str("evaluation errors:\n");
                for e in errors {
                    text.push_str(&format!("  {}\n", output::cell(Some(e))));
                }
            }
        }
        self.write_out(&text)
    }

    // ---- role bindings ----

    pub(super) async fn roles(&mut self, cmd: RolesCommand) -> Res {
        use output::BINDING;
        match cmd {
            RolesCommand::List { project } => {
                let query = project_query(project);
                let items = self.api()?.list_all(&["roles"], &query).await?;
                self.show_list_as(BINDING, items, platform_scope)
            }
            RolesCommand::Bind {
                role,
                user,
                group,
                workload,
                project,
                expires_in,
            } => {
                require_text("ROLE", &role, "data_scientist")?;
                let subject = match (user, group, workload) {
                    (Some(u), _, _) => format!("user:{u}"),
                    (None, Some(g), _) => format!("group:{g}"),
                    (None, None, Some(w)) => format!("workload:{w}"),
                    (None, None, None) => {
                        return Err(Failure::usage(
                            "whom to bind the role to?",
                            Some("give --user U, --group G or --workload W".into()),
                        ))
                    }
                };
                let mut body = json!({"subject": subject, "role": role});
                if let Some(p) = project {
                    body["project"] = json!(p);
                }
                if let Some(e) = expires_in {
                    body["expires_in"] = json!(e);
                }
                let client = self.api()?;
                let binding = client
                    .call_json(Method::POST, &["roles"], Some(&body))
                    .await?;
                self.show_as(BINDING, binding, platform_scope)
            }
            RolesCommand::Unbind { id } => {
                self.api()?
                    .call(Method::DELETE, &["roles", &id], &[], None)
                    .await?;
                self.done(&format!("Removed role binding {id}."))
            }
        }
    }

    // ---- access grants ----

    pub(super) async fn grants(&mut self, cmd: GrantsCommand) -> Res {
        match cmd {
            GrantsCommand::List { project } => {
                let client = self.api()?;
                let items = client
                    .list_all(&["projects", &project, "grants"], &[])
                    .await?;
                self.show_list_as(GRANT_ROW, items, grant_view)
            }
            GrantsCommand::Request {
                project,
                role,
                reason,
                duration,
            } => {
                require_text("--reason", &reason, "'ticket 4411'")?;
                let body = json!({
                    "role": grant_role_name(role),
                    "reason": reason,
                    "duration": duration,
                });
                let client = self.api()?;
                let grant = client
                    .call_json(Method::POST, &["projects", &project, "grants"], Some(&body))
                    .await?;
                let pending = grant.get("status").and_then(Value::as_str) == Some("pending");
                let id = output::cell(grant.get("id"));
                self.show_as(GRANT_DETAILS, grant, grant_view)?;
                if pending {
                    self.done(&format!(
                        "The grant waits for a project owner: `enclave grants approve {id}`."
                    ))?;
                }
                Ok(())
            }
            GrantsCommand::Approve { id } => self.decide_grant(&id, "approve").await,
            GrantsCommand::Deny { id } => self.decide_grant(&id, "deny").await,
            GrantsCommand::Revoke { id } => self.decide_grant(&id, "revoke").await,
        }
    }

    /// `POST /grants/{id}/{verb}` and prints the grant.
    async fn decide_grant(&mut self, id: &str, verb: &str) -> Res {
        let client = self.api()?;
        let grant = client
            .call_json(Method::POST, &["grants", id, verb], None)
            .await?;
        self.show_as(GRANT_DETAILS, grant, grant_view)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_point_at_the_column() {
        let body = "permit(\n\tprincipal,\n  action == Action::\"nope\",\n  resource\n);";
        assert_eq!(
            excerpt(body, 3, Some(13)).unwrap(),
            "  |\n3 |   action == Action::\"nope\",\n  |             ^\n"
        );
        // Tabs are kept so the caret lines up; a column past the end points after the text.
        assert_eq!(
            excerpt(body, 2, Some(99)).unwrap(),
            "  |\n2 | \tprincipal,\n  | \t          ^\n"
        );
        assert_eq!(excerpt(body, 1, None).unwrap(), "  |\n1 | permit(\n");
        assert!(excerpt(body, 0, Some(1)).is_none());
        assert!(excerpt(body, 9, Some(1)).is_none());
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let line = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let text = excerpt(&line, 1, Some(301)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("1 | …") && lines[1].ends_with('…'));
        let caret = lines[2].find('^').unwrap();
        assert_eq!(lines[1].chars().nth(caret), Some('X'), "{text}");
    }

    #[test]
    fn text_views() {
        let mut v = json!({"project": null, "duration_secs": 5400});
        platform_scope(&mut v);
        grant_view(&mut v);
        assert_eq!(v, json!({"project": "(platform)", "duration": "1h30m"}));
    }
}
