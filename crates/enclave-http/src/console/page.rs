//! What every console page shares: the layout data, rendering, error pages, flash notices,
//! redirects and a few formatting helpers.

use crate::auth::ConsoleSession;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use enclave_core::authz::Action;
use enclave_core::{Error, ErrorCode, Timestamp};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// The signed-in user as the layout shows them.
pub struct NavUser {
    /// Login name.
    pub username: String,
    /// Platform admin (a badge).
    pub admin: bool,
    /// The nav shows Users.
    pub users: bool,
    /// The nav shows Groups.
    pub groups: bool,
    /// The nav shows Roles.
    pub roles: bool,
    /// The nav shows Policies.
    pub policies: bool,
    /// The nav shows Explain.
    pub explain: bool,
    /// The audit pages offer the key, the export and verification (everyone has Audit).
    pub audit_key: bool,
    /// The nav shows Keys (the master key page).
    pub keys: bool,
}

impl NavUser {
    fn of(s: &ConsoleSession) -> NavUser {
        let may = |a: Action| s.nav.contains(&a);
        NavUser {
            username: s.caller.principal.username.clone(),
            admin: s.caller.principal.platform_admin,
            users: may(Action::UserList),
            groups: may(Action::GroupList),
            roles: may(Action::RoleList),
            policies: may(Action::PolicyList),
            explain: may(Action::PolicyCheck),
            audit_key: may(Action::AuditVerify),
            keys: may(Action::KeyRead),
        }
    }
}

/// Data of the shared layout (`base.html`), carried by every page.
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// Nav entry to highlight: `projects`, `tokens`, `account`, `users`, `groups`, `roles`,
    /// `policies`, `explain`, `audit`, `keys` or empty.
    pub section: &'static str,
    /// The signed-in user; `None` on public pages.
    pub user: Option<NavUser>,
    /// CSRF token for the forms of the page (empty on public pages).
    pub csrf: String,
    /// Success message (from a fixed set).
    pub notice: Option<&'static str>,
    /// Error message from the application.
    pub error: Option<String>,
    /// A narrow single-column page (login, setup, errors).
    pub narrow: bool,
}

impl Chrome {
    /// Layout data for a page; `session` fills the nav and the CSRF token.
    pub fn new(
        title: impl Into<String>,
        section: &'static str,
        session: Option<&ConsoleSession>,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            user: session.map(NavUser::of),
            csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
            notice: None,
            error: None,
            narrow: false,
        }
    }

    /// Makes the page a narrow single column.
    pub fn narrow(mut self) -> Chrome {
        self.narrow = true;
        self
    }

    /// Adds a success notice.
    pub fn notice(mut self, notice: Option<&'static str>) -> Chrome {
        self.notice = notice;
        self
    }

    /// Adds the error of a re-rendered form.
    pub fn problem(mut self, problem: Option<&Problem>) -> Chrome {
        self.error = problem.map(|p| p.message.clone());
        self
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

/// Renders a template with a status; a template failure becomes a bare 500.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while rendering the page\n",
            )
                .into_response()
        }
    }
}

/// A full-page error with a heading and a message.
pub fn error_page(
    status: StatusCode,
    heading: &'static str,
    message: impl Into<String>,
    session: Option<&ConsoleSession>,
) -> Response {
    let page = ErrorPage {
        chrome: Chrome::new(heading, "", session).narrow(),
        heading,
        message: message.into(),
    };
    render(status, &page)
}

/// 403 for a form without a valid CSRF token or sent from another site.
pub fn csrf_refused(session: Option<&ConsoleSession>) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was not accepted: it was sent from another site, or the page was out of date. Go back, reload the page and try again.",
        session,
    )
}

/// 400 for a form or query that could not be read.
pub fn malformed(session: Option<&ConsoleSession>) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The submitted form could not be read. Go back, reload the page and try again.",
        session,
    )
}

/// 303 to the login page.
pub fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// 303 to `path` with a flash notice key (one of [`NOTICES`]).
pub fn done(path: &str, notice: &'static str) -> Response {
    Redirect::to(&format!("{path}?done={notice}")).into_response()
}

/// The fixed flash notices: query key and message. Nothing else from the query reaches a page.
pub const NOTICES: &[(&str, &str)] = &[
    ("logged-out", "You have been logged out."),
    (
        "password-changed",
        "Your password was changed and all your sessions were ended. Log in with the new password.",
    ),
    (
        "setup-done",
        "The first admin account was created. Log in to continue.",
    ),
    ("project-created", "Project created."),
    ("project-saved", "Project description saved."),
    ("project-deleted", "Project deleted."),
    ("member-saved", "Member saved."),
    ("member-removed", "Member removed."),
    ("user-created", "User created."),
    (
        "user-disabled",
        "User disabled; their sessions were ended and their tokens revoked.",
    ),
    ("user-enabled", "User enabled."),
    ("user-unlocked", "Login lockout cleared."),
    ("user-saved", "User details saved."),
    (
        "password-reset",
        "Password reset; the user's sessions were ended.",
    ),
    ("admin-granted", "The user is now a platform admin."),
    ("admin-removed", "The user is no longer a platform admin."),
    ("user-deleted", "User deleted."),
    ("sessions-ended", "All sessions of the user were ended."),
    (
        "mfa-reset",
        "The user's second factors were removed and their sessions ended; they sign in with their password and can enrol again.",
    ),
    ("group-created", "Group created."),
    ("group-saved", "Group description saved."),
    ("group-deleted", "Group deleted."),
    ("token-revoked", "Token revoked."),
    ("settings-saved", "Project settings saved."),
    (
        "grant-requested",
        "Access requested. A project owner must approve it before it applies.",
    ),
    (
        "grant-active",
        "Access granted: this project needs no approval, so it applies now. Its members see it.",
    ),
    ("grant-approved", "Access approved; it applies now."),
    ("grant-denied", "Access request denied."),
    ("grant-revoked", "Access ended."),
    ("role-bound", "Role bound."),
    ("role-removed", "Role binding removed."),
    (
        "policy-created",
        "Policy created; it applies from the next request.",
    ),
    (
        "policy-saved",
        "Policy saved; it applies from the next request.",
    ),
    ("policy-deleted", "Policy deleted."),
    ("subgroup-added", "Subgroup added."),
    ("subgroup-removed", "Subgroup removed."),
    (
        "secret-saved",
        "Secret saved. Its value is stored encrypted and is not shown again.",
    ),
    ("secret-deleted", "Secret and all its versions deleted."),
    (
        "key-rotated",
        "New project key version created; existing secrets are being re-encrypted in the background.",
    ),
    ("key-retired", "Key version retired; its key material was erased."),
    (
        "master-rotated",
        "Master key rotated; every data key was rewrapped under the new one.",
    ),
];

/// The message for a notice key, if it is one of [`NOTICES`].
pub fn notice_for(key: &str) -> Option<&'static str> {
    NOTICES.iter().find(|(k, _)| *k == key).map(|(_, m)| *m)
}

/// What to do with an error: go to the login page, or show it with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The session is gone: 303 to `/login`.
    Login,
    /// Show the message with this status and heading.
    As(StatusCode, &'static str),
}

/// How the console shows an error code.
pub fn shown(code: ErrorCode) -> Shown {
    use ErrorCode as C;
    match code {
        C::Unauthenticated => Shown::Login,
        C::Forbidden | C::CsrfFailed => Shown::As(StatusCode::FORBIDDEN, "Not allowed"),
        C::NotFound => Shown::As(StatusCode::NOT_FOUND, "Not found"),
        C::Unavailable => Shown::As(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable"),
        C::Internal => Shown::As(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        C::InvalidCredentials => Shown::As(StatusCode::UNAUTHORIZED, "Login failed"),
        C::MfaRequired => Shown::As(StatusCode::UNAUTHORIZED, "Second factor needed"),
        C::TooManyAttempts => Shown::As(StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        C::NotAdmitted => Shown::As(StatusCode::FORBIDDEN, "Not authorized for this platform"),
        C::SetupUnavailable => Shown::As(StatusCode::GONE, "Setup link not valid"),
        C::InvalidRequest
        | C::InvalidInput
        | C::Conflict
        | C::PayloadTooLarge
        | C::UnsupportedMediaType => Shown::As(StatusCode::BAD_REQUEST, "Request not accepted"),
    }
}

/// The response for an error that replaces the page.
pub fn fail(err: &Error, session: Option<&ConsoleSession>) -> Response {
    match shown(err.code) {
        Shown::Login => to_login(),
        Shown::As(status, heading) => error_page(status, heading, err.message.clone(), session),
    }
}

/// An error shown above the form that caused it, on the re-rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Status of the re-rendered page.
    pub status: StatusCode,
    /// The application's message.
    pub message: String,
    /// The form field the error is about, when the application says.
    pub field: Option<String>,
    /// Line and column (from 1) in that field's text, when the application says.
    pub position: Option<(u64, u64)>,
}

impl Problem {
    /// An application error to show above its form. A missing user named in the form is bad
    /// input (400), not a missing page.
    pub fn of(err: Error) -> Problem {
        let status = match err.code {
            ErrorCode::NotFound => StatusCode::BAD_REQUEST,
            code => status_code(code),
        };
        let number = |k: &str| err.details.get(k).and_then(serde_json::Value::as_u64);
        Problem {
            status,
            field: err
                .details
                .get("field")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            position: number("line").zip(number("column")),
            message: err.message,
        }
    }

    /// Whether the error is about `field`.
    pub fn about(&self, field: &str) -> bool {
        self.field.as_deref() == Some(field)
    }
}

/// Whether an action's error belongs next to its form (bad input, a name taken, a user that
/// does not exist) rather than replacing the page (no access, no such page, outage).
pub fn in_form(err: &Error) -> bool {
    match err.code {
        ErrorCode::NotFound => matches!(
            err.details.get("resource").and_then(|v| v.as_str()),
            // A user or group named in the form, not the page's own object (a page whose
            // object is missing fails again with 404 when it is shown again).
            Some("user" | "member" | "group" | "subgroup")
        ),
        code => {
            matches!(shown(code), Shown::As(s, _) if s.is_client_error() && s != StatusCode::FORBIDDEN && s != StatusCode::NOT_FOUND)
        }
    }
}

/// The status of a page: the problem's, or 200.
pub fn status(problem: Option<&Problem>) -> StatusCode {
    problem.map_or(StatusCode::OK, |p| p.status)
}

/// The status for an error shown above a form.
pub fn status_code(code: ErrorCode) -> StatusCode {
    match shown(code) {
        Shown::As(s, _) => s,
        Shown::Login => StatusCode::UNAUTHORIZED,
    }
}

/// The end of a form action: on success 303 to `ok_path` with the notice; on an error that
/// belongs to the form, the page again via `again`; otherwise an error page.
pub async fn finish<F, Fut>(
    result: Result<(), Error>,
    session: &ConsoleSession,
    ok_path: &str,
    notice: &'static str,
    again: F,
) -> Response
where
    F: FnOnce(Problem) -> Fut,
    Fut: Future<Output = Response>,
{
    match result {
        Ok(()) => done(ok_path, notice),
        Err(e) if in_form(&e) => again(Problem::of(e)).await,
        Err(e) => fail(&e, Some(session)),
    }
}

/// Percent-encodes one URL path segment or query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A timestamp for people: `2026-11-23 06:26 UTC`.
pub fn when(t: Timestamp) -> String {
    let s = t.rfc3339();
    match (s.get(0..10), s.get(11..16), s.ends_with('Z')) {
        (Some(day), Some(time), true) => format!("{day} {time} UTC"),
        _ => s,
    }
}

/// A duration for people in its largest whole unit: `12 hours`, `30 minutes`, `90 seconds`.
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs > 0 && secs.is_multiple_of(*size))
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

/// A new password typed twice: an error unless both are the same.
pub fn repeated(new: &str, repeat: &str) -> Result<(), Error> {
    if new == repeat {
        Ok(())
    } else {
        Err(Error::invalid("repeat", "the two passwords differ"))
    }
}

/// A duration typed in a form: a bare number of minutes (`90`) or a number with a unit
/// (`45s`, `30m`, `2h`, `1d`), in seconds. Range checks are the application's.
pub fn form_duration(field: &str, s: &str) -> Result<i64, Error> {
    let s = s.trim();
    let bad = || {
        Error::invalid(
            field,
            "write a number of minutes, or a number with a unit: 30m, 2h, 1d",
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let secs = if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok().and_then(|m| m.checked_mul(60))
    } else {
        enclave_config::parse_duration(s).ok().map(|d| d.as_secs())
    };
    secs.and_then(|n| i64::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}

/// An optional expiry typed in a form as a duration from `now` ([`form_duration`]); empty means
/// never.
pub fn form_expiry(field: &str, s: &str, now: Timestamp) -> Result<Option<Timestamp>, Error> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let secs = form_duration(field, s)?;
    Ok(Some(Timestamp(now.0.saturating_add(secs))))
}

/// Tags typed one `key=value` per line; blank lines are skipped.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut tags = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::invalid(
                "tags",
                format!("line {}: write one key=value per line", n + 1),
            ));
        };
        let k = k.trim();
        if tags.insert(k.to_string(), v.trim().to_string()).is_some() {
            return Err(Error::invalid(
                "tags",
                format!("line {}: tag '{}' is given twice", n + 1, k),
            ));
        }
    }
    Ok(tags)
}

/// Tags as the form shows them: one `key=value` per line.
pub fn tags_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The "next page" link of a list, if there is a next page.
pub fn next_href(path: &str, next: Option<&str>) -> Option<String> {
    next.map(|n| format!("{path}?after={}", encode(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: ErrorCode) -> Error {
        Error::new(code, "m")
    }

    #[test]
    fn maps_error_codes_to_pages() {
        assert_eq!(shown(ErrorCode::Unauthenticated), Shown::Login);
        let status = |c| match shown(c) {
            Shown::As(s, _) => s,
            Shown::Login => StatusCode::SEE_OTHER,
        };
        assert_eq!(status(ErrorCode::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(status(ErrorCode::CsrfFailed), StatusCode::FORBIDDEN);
        assert_eq!(status(ErrorCode::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(ErrorCode::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(ErrorCode::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(status(ErrorCode::Conflict), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(ErrorCode::InvalidCredentials),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(ErrorCode::TooManyAttempts),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(status(ErrorCode::SetupUnavailable), StatusCode::GONE);
        assert_eq!(
            status(ErrorCode::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn unauthenticated_redirects_to_login() {
        let r = fail(&Error::unauthenticated(), None);
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers().get("location").and_then(|v| v.to_str().ok()),
            Some("/login")
        );
        assert_eq!(
            fail(&Error::forbidden(), None).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn form_errors_versus_page_errors() {
        assert!(in_form(&err(ErrorCode::InvalidInput)));
        assert!(in_form(&err(ErrorCode::Conflict)));
        assert!(in_form(&Error::not_found("user", "bob")));
        assert!(in_form(&Error::not_found("member", "bob")));
        assert!(in_form(&Error::not_found("group", "quants")));
        assert!(in_form(&Error::not_found("subgroup", "quants")));
        assert!(!in_form(&Error::not_found("grant", "grt_x")));
        assert!(!in_form(&Error::not_found("policy", "pol_x")));
        assert!(!in_form(&Error::not_found("project", "x")));
        assert!(!in_form(&err(ErrorCode::Forbidden)));
        assert!(!in_form(&err(ErrorCode::Unauthenticated)));
        assert!(!in_form(&err(ErrorCode::Unavailable)));
        assert!(!in_form(&err(ErrorCode::Internal)));
    }

    #[test]
    fn notices_are_a_fixed_set() {
        assert_eq!(notice_for("member-saved"), Some("Member saved."));
        assert_eq!(notice_for("<script>"), None);
        assert_eq!(notice_for(""), None);
        for (k, _) in NOTICES {
            assert_eq!(encode(k), *k, "notice keys need no encoding");
        }
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode("abc-1.x_~"), "abc-1.x_~");
        assert_eq!(encode("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(
            next_href("/tokens", Some("a b")).as_deref(),
            Some("/tokens?after=a%20b")
        );
        assert_eq!(next_href("/tokens", None), None);
    }

    #[test]
    fn formats_times() {
        assert_eq!(when(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(span(Duration::from_secs(12 * 3600)), "12 hours");
        assert_eq!(span(Duration::from_secs(30 * 60)), "30 minutes");
        assert_eq!(span(Duration::from_secs(86_400)), "1 day");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
        assert_eq!(span(Duration::ZERO), "0 seconds");
    }

    #[test]
    fn form_durations() {
        assert_eq!(form_duration("d", "90").ok(), Some(5400));
        assert_eq!(form_duration("d", " 2h ").ok(), Some(7200));
        assert_eq!(form_duration("d", "30m").ok(), Some(1800));
        assert_eq!(form_duration("d", "1d").ok(), Some(86_400));
        assert_eq!(form_duration("d", "45s").ok(), Some(45));
        for bad in ["", "0", "0h", "soon", "-5", "1h30m", "99999999999999999999"] {
            let e = form_duration("duration", bad).err();
            assert_eq!(e.map(|e| e.code), Some(ErrorCode::InvalidInput), "{bad:?}");
        }
        assert_eq!(form_expiry("e", " ", Timestamp(10)).ok(), Some(None));
        assert_eq!(
            form_expiry("e", "1m", Timestamp(10)).ok(),
            Some(Some(Timestamp(70)))
        );
        assert!(form_expiry("e", "never", Timestamp(10)).is_err());
    }

    #[test]
    fn tags_round_trip() {
        let tags = parse_tags("team = risk\n\n cost-center=42=x \nempty=\n").unwrap_or_default();
        assert_eq!(tags.get("team").map(String::as_str), Some("risk"));
        assert_eq!(tags.get("cost-center").map(String::as_str), Some("42=x"));
        assert_eq!(tags.get("empty").map(String::as_str), Some(""));
        assert_eq!(tags_text(&tags), "cost-center=42=x\nempty=\nteam=risk");
        assert_eq!(parse_tags(&tags_text(&tags)).ok(), Some(tags));
        let e = parse_tags("a=1\nnope").err().map(|e| e.message);
        assert!(e.is_some_and(|m| m.contains("line 2")));
        assert!(parse_tags("a=1\na=2").is_err());
        assert_eq!(parse_tags("").ok(), Some(BTreeMap::new()));
    }

    #[test]
    fn problems_carry_field_and_position() {
        let e = Error::invalid("body", "bad")
            .with("line", 2)
            .with("column", 7);
        let p = Problem::of(e);
        assert!(p.about("body"));
        assert_eq!(p.position, Some((2, 7)));
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        let p = Problem::of(Error::invalid("name", "taken"));
        assert!(p.about("name") && !p.about("body"));
        assert_eq!(p.position, None);
    }

    #[test]
    fn repeated_passwords() {
        assert!(repeated("a-b-c", "a-b-c").is_ok());
        let e = repeated("a-b-c", "a-b-d").err();
        assert_eq!(e.map(|e| e.code), Some(ErrorCode::InvalidInput));
    }

    #[test]
    fn error_page_escapes_the_message() {
        let r = ErrorPage {
            chrome: Chrome::new("t", "", None),
            heading: "Not found",
            message: "project '<script>x</script>' was not found".into(),
        }
        .render();
        let html = r.unwrap_or_default();
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }
}
