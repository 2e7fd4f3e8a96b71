//! Identity sources in the console (platform admins).
//!
//! * `/admin/identity`: every OIDC provider and LDAP directory (kind, whether enabled, the
//!   admission rule, whether a SCIM token is set, the last directory sync), and the form that
//!   adds or replaces one: its name, its settings as JSON (the API's body, shown filled in on
//!   a source's page) and the client secret or bind password in its own password field.
//! * `/admin/identity/{name}`: one source: its settings (secrets only as "set"), the OIDC
//!   redirect URI to register at the provider, and the buttons: test it (for LDAP, "try this
//!   user" with a username and password), show the claims of the latest sign-in, make a new
//!   SCIM token (shown once), sync the directory now, delete.
//!
//! Invariants:
//! * The form is parsed exactly as the REST API parses its body ([`SourceIn::into_input`]);
//!   bad input comes back above the form with what was typed (never the secret), and nothing
//!   changes.
//! * Every post is decided (and a refusal audited) by its use case; the pages themselves need
//!   `idp.read`.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{encode, fail, in_form, render, status, Chrome, Problem};
use crate::api::identity::{SourceIn, SourceOut};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_core::identity::IdentitySource;
use enclave_core::Error;
use serde::Deserialize;
use serde_json::Value;

const LIST_HREF: &str = "/admin/identity";

fn source_href(name: &str) -> String {
    format!("{LIST_HREF}/{}", encode(name))
}

/// A source in the list.
struct SourceRow {
    name: String,
    href: String,
    kind: &'static str,
    display_name: String,
    enabled: bool,
    admission: String,
    scim: bool,
    last_sync: String,
}

fn admission_text(s: &IdentitySource) -> String {
    use enclave_core::identity::AdmissionMode as M;
    match s.admission.mode {
        M::All => "everyone".into(),
        M::Domains => format!("domains: {}", s.admission.domains.join(", ")),
        M::Groups => format!("groups: {}", s.admission.groups.join(", ")),
    }
}

impl SourceRow {
    fn of(s: &IdentitySource) -> SourceRow {
        SourceRow {
            name: s.name.clone(),
            href: source_href(&s.name),
            kind: s.kind.as_str(),
            display_name: s.display_name.clone(),
            enabled: s.enabled,
            admission: admission_text(s),
            scim: s.scim_token_set,
            last_sync: s
                .last_sync_at
                .map(|t| t.rfc3339())
                .unwrap_or_else(|| "-".into()),
        }
    }
}

/// The settings as the form shows them: the API body without read-only fields and secrets.
fn settings_json(s: &IdentitySource) -> String {
    let mut v = serde_json::json!({
        "kind": s.kind.as_str(),
        "display_name": s.display_name,
        "enabled": s.enabled,
        "admission": s.admission,
        "mappings": s.mappings,
    });
    if let Some(o) = &s.oidc {
        v["oidc"] = serde_json::to_value(o).unwrap_or_default();
    }
    if let Some(l) = &s.ldap {
        v["ldap"] = serde_json::to_value(l).unwrap_or_default();
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

const EXAMPLE: &str = r#"{
  "kind": "oidc",
  "display_name": "Corp SSO",
  "oidc": {"issuer": "https://login.corp.example", "client_id": "enclave",
           "scopes": ["openid", "email", "profile", "groups"]},
  "admission": {"mode": "groups", "groups": ["staff"]},
  "mappings": [{"idp_group": "data-scientists", "project": "fraud", "project_role": "member"}]
}"#;

#[derive(Template)]
#[template(path = "identity_sources.html")]
struct ListPage {
    chrome: Chrome,
    sources: Vec<SourceRow>,
    name: String,
    settings: String,
    fixed_name: bool,
}

async fn list_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    name: String,
    settings: String,
    problem: Option<Problem>,
) -> Response {
    let list = match s.app.identity_sources(&session.caller).await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = ListPage {
        chrome: Chrome::new("Identity sources", "identity", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        sources: list.iter().map(SourceRow::of).collect(),
        name,
        settings: if settings.is_empty() {
            EXAMPLE.into()
        } else {
            settings
        },
        fixed_name: false,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/identity`.
pub async fn list(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    list_page(&s, &session, q, String::new(), String::new(), None).await
}

/// What a test, a new SCIM token or a sync shows on the source's page.
#[derive(Default)]
struct Outcome {
    title: String,
    ok: bool,
    lines: Vec<String>,
    /// A SCIM token, shown once.
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "identity_source.html")]
struct SourcePage {
    chrome: Chrome,
    row: SourceRow,
    redirect_uri: Option<String>,
    shown: String,
    name: String,
    settings: String,
    fixed_name: bool,
    ldap: bool,
    outcome: Option<Outcome>,
    claims: Option<String>,
}

/// What a source's page shows besides the source.
#[derive(Default)]
struct Extras {
    /// The form as typed (after a refused change).
    draft: Option<String>,
    problem: Option<Problem>,
    outcome: Option<Outcome>,
    claims: Option<String>,
}

async fn source_page(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    x: Extras,
) -> Response {
    let Extras {
        draft,
        problem,
        outcome,
        claims,
    } = x;
    let src = match s.app.identity_source(&session.caller, name).await {
        Ok(v) => v,
        Err(e) => return fail(&e, Some(session)),
    };
    let out = SourceOut::new(src.clone(), s.app.oidc_redirect_uri(name));
    let shown = serde_json::to_string_pretty(&serde_json::json!({
        "oidc": out.oidc, "ldap": out.ldap, "admission": out.admission, "mappings": out.mappings,
    }))
    .unwrap_or_default();
    let page = SourcePage {
        chrome: Chrome::new(format!("Identity source {name}"), "identity", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        row: SourceRow::of(&src),
        redirect_uri: src.oidc.as_ref().map(|_| s.app.oidc_redirect_uri(name)),
        shown,
        name: src.name.clone(),
        settings: draft.unwrap_or_else(|| settings_json(&src)),
        fixed_name: true,
        ldap: src.ldap.is_some(),
        outcome,
        claims,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/identity/{name}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
    q: PageQuery,
) -> Response {
    source_page(&s, &session, &name, q, Extras::default()).await
}

/// The add-or-replace form.
#[derive(Deserialize)]
pub struct SourceForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    settings: String,
    /// The OIDC client secret or LDAP bind password; empty keeps the stored one.
    #[serde(default)]
    secret: String,
    /// `source` when sent from the source's own page.
    #[serde(default)]
    back: String,
}

/// The form's body, parsed as the API parses it, with the secret put where its kind keeps it.
fn body_of(f: &SourceForm) -> Result<SourceIn, Error> {
    let mut v: Value = serde_json::from_str(&f.settings)
        .map_err(|e| Error::invalid("settings", format!("the settings are not valid JSON: {e}")))?;
    if !f.secret.is_empty() {
        let (section, key) = match v.get("kind").and_then(|k| k.as_str()) {
            Some("ldap") => ("ldap", "bind_password"),
            _ => ("oidc", "client_secret"),
        };
        if let Some(Value::Object(m)) = v.get_mut(section) {
            m.insert(key.into(), Value::String(f.secret.clone()));
        }
    }
    serde_json::from_value(v)
        .map_err(|e| Error::invalid("settings", format!("the settings do not fit: {e}")))
}

/// `POST /admin/identity`: adds or replaces a source; to its page.
pub async fn put(
    State(s): State<AppState>,
    Post { session, form: f }: Post<SourceForm>,
) -> Response {
    let name = f.name.trim().to_string();
    let result = match body_of(&f).and_then(|b| b.into_input(&name)) {
        Ok(input) => {
            s.app
                .put_identity_source(&session.caller, &name, input)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(src) => Redirect::to(&source_href(&src.name)).into_response(),
        Err(e) if in_form(&e) => {
            let p = Some(Problem::of(e));
            if f.back == "source" {
                let q = PageQuery::default();
                let x = Extras {
                    draft: Some(f.settings),
                    problem: p,
                    ..Default::default()
                };
                source_page(&s, &session, &name, q, x).await
            } else {
                list_page(&s, &session, PageQuery::default(), f.name, f.settings, p).await
            }
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// The test form ("try this user" for LDAP).
#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/identity/{name}/test`.
pub async fn test(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<TestForm>,
) -> Response {
    let user = (!f.username.trim().is_empty()).then(|| f.username.trim().to_string());
    match s
        .app
        .test_identity_source(&session.caller, &name, user.as_deref(), Some(&f.password))
        .await
    {
        Ok(t) => {
            let mut lines = vec![t.detail.clone()];
            if let Some(i) = &t.identity {
                lines.push(format!("subject: {}", i.subject));
                lines.push(format!("email: {}", i.email.clone().unwrap_or_default()));
                lines.push(format!("name: {}", i.name.clone().unwrap_or_default()));
                lines.push(format!("groups: {}", i.groups.join(", ")));
            }
            if let Some(a) = t.admitted {
                lines.push(match (a, &t.reason) {
                    (true, _) => "admitted by the admission rule".into(),
                    (false, Some(r)) => format!("not admitted: {r}"),
                    (false, None) => "not admitted".into(),
                });
            }
            let outcome = Outcome {
                title: "Test".into(),
                ok: t.ok,
                lines,
                token: None,
            };
            let q = PageQuery::default();
            let x = Extras {
                outcome: Some(outcome),
                ..Default::default()
            };
            source_page(&s, &session, &name, q, x).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// A button: only the CSRF token.
#[derive(Deserialize)]
pub struct Button {}

/// `POST /admin/identity/{name}/scim-token`: a new token, shown once on the page.
pub async fn scim_token(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: _ }: Post<Button>,
) -> Response {
    match s.app.rotate_scim_token(&session.caller, &name).await {
        Ok(token) => {
            let outcome = Outcome {
                title: "New SCIM token".into(),
                ok: true,
                lines: vec![
                    format!("SCIM base URL: {}/scim/v2/{name}", s.app.public_url()),
                    "Copy the token now: it is shown only once, and the previous one no longer works.".into(),
                ],
                token: Some(token),
            };
            let q = PageQuery::default();
            let x = Extras {
                outcome: Some(outcome),
                ..Default::default()
            };
            source_page(&s, &session, &name, q, x).await
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// `POST /admin/identity/{name}/sync`.
pub async fn sync(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: _ }: Post<Button>,
) -> Response {
    let outcome = match s.app.sync_identity_source(&session.caller, &name).await {
        Ok(r) => Outcome {
            title: "Sync".into(),
            ok: true,
            lines: vec![format!(
                "{} accounts checked, {} updated, {} deactivated",
                r.checked, r.updated, r.deactivated
            )],
            token: None,
        },
        Err(e) if in_form(&e) || e.code == enclave_core::ErrorCode::Unavailable => Outcome {
            title: "Sync".into(),
            ok: false,
            lines: vec![e.message],
            token: None,
        },
        Err(e) => return fail(&e, Some(&session)),
    };
    let q = PageQuery::default();
    let x = Extras {
        outcome: Some(outcome),
        ..Default::default()
    };
    source_page(&s, &session, &name, q, x).await
}

/// `GET /admin/identity/{name}/claims`: the latest sign-in's claims.
pub async fn claims(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
) -> Response {
    let shown = match s.app.identity_last_login(&session.caller, &name).await {
        Ok(l) => format!(
            "at {} subject {} — {}\n{}",
            l.at.rfc3339(),
            l.subject,
            match (&l.admitted, &l.reason) {
                (true, _) => "admitted".to_string(),
                (false, r) => format!("not admitted: {}", r.clone().unwrap_or_default()),
            },
            serde_json::to_string_pretty(&l.claims).unwrap_or_default()
        ),
        Err(e) if e.code == enclave_core::ErrorCode::NotFound => e.message,
        Err(e) => return fail(&e, Some(&session)),
    };
    let q = PageQuery::default();
    let x = Extras {
        claims: Some(shown),
        ..Default::default()
    };
    source_page(&s, &session, &name, q, x).await
}

/// `POST /admin/identity/{name}/delete`.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: _ }: Post<Button>,
) -> Response {
    match s.app.delete_identity_source(&session.caller, &name).await {
        Ok(()) => Redirect::to(LIST_HREF).into_response(),
        Err(e) => fail(&e, Some(&session)),
    }
}
