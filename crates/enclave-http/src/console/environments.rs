//! The environment templates notebook servers run, in the console.
//!
//! * `/admin/environments`: every template with its build status (a progress bar and the
//!   builder's latest line while building, the error when the build failed), build and delete
//!   buttons, and the form that creates or replaces a template (name, Python version, packages
//!   one per line, presets one per line as `name cpus memory`). The page refreshes itself
//!   while a build is queued or running.
//! * `/admin/environments/{env}`: one template: its pins, presets, fingerprint, the packages
//!   of its built environment, the same buttons and the form, filled in, to change it.
//!
//! Invariants:
//! * The form is parsed exactly as the REST API parses its body ([`EnvironmentIn::template`]);
//!   bad input comes back above the form with what was typed, and nothing changes.
//! * Forms and buttons are shown as [`enclave_app::App::my_platform_actions`] decides
//!   `template.manage`; every post is decided again (and a refusal audited) by its use case.

use super::guard::{PageQuery, Post, Visitor};
use super::page::{encode, fail, in_form, render, status, Chrome, Problem};
use crate::api::notebooks::{EnvironmentIn, PresetDto};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use enclave_app::{EnvStatus, EnvironmentView};
use enclave_core::authz::Action;
use enclave_core::environments::{EnvTemplate, Preset};
use enclave_core::jobs::{cpus, format_size, parse_cpus, parse_size};
use enclave_core::{Error, ErrorCode};
use serde::Deserialize;

/// Seconds between refreshes of a page showing a build in progress.
const REFRESH_SECS: u32 = 3;

/// The list's path.
const LIST_HREF: &str = "/admin/environments";

/// A template's page.
fn template_href(name: &str) -> String {
    format!("{LIST_HREF}/{}", encode(name))
}

/// The class of a build status's badge.
fn badge(status: &EnvStatus) -> &'static str {
    match status {
        EnvStatus::Queued | EnvStatus::Building { .. } => "badge-warn",
        EnvStatus::Ready { .. } => "badge-ok",
        EnvStatus::Failed { .. } => "badge-off",
        EnvStatus::NotBuilt => "",
    }
}

/// Whether a build is on its way (the page refreshes itself).
fn building(status: &EnvStatus) -> bool {
    matches!(status, EnvStatus::Queued | EnvStatus::Building { .. })
}

/// Packages typed one pin per line: blank lines and `#` comments are skipped; the pins
/// themselves are checked by the template.
fn package_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Presets typed one per line as `name cpus memory` (`small 1 2G`); blank lines and `#`
/// comments are skipped. An error names its line; the values are parsed again, the same way,
/// by [`EnvironmentIn::template`].
fn preset_lines(text: &str) -> Result<Vec<PresetDto>, Error> {
    let mut presets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: String| {
            Error::invalid("presets", format!("line {}: {msg}", n + 1))
                .with("line", n + 1)
                .with("column", 1)
        };
        let [name, cpu, memory] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(at(
                "write one preset per line as NAME CPUS MEMORY, e.g. small 1 2G".into(),
            ));
        };
        parse_cpus(cpu).map_err(at)?;
        parse_size(memory).map_err(at)?;
        presets.push(PresetDto {
            name: name.to_string(),
            cpus: cpu.to_string(),
            memory: memory.to_string(),
        });
    }
    Ok(presets)
}

/// Presets as the form shows them: one `name cpus memory` per line.
fn presets_text(presets: &[Preset]) -> String {
    presets
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p.name,
                cpus(p.cpu_millis),
                format_size(p.memory_bytes)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the template form keeps when shown again.
#[derive(Default)]
struct EnvDraft {
    name: String,
    python: String,
    packages: String,
    presets: String,
}

impl EnvDraft {
    /// The form filled in with a template, to change it.
    fn of(t: &EnvTemplate) -> EnvDraft {
        EnvDraft {
            name: t.name.clone(),
            python: t.python.clone(),
            packages: t.packages.join("\n"),
            presets: presets_text(&t.presets),
        }
    }
}

/// The create-or-replace form.
#[derive(Deserialize)]
pub struct EnvForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    python: String,
    #[serde(default)]
    packages: String,
    #[serde(default)]
    presets: String,
    /// `template` when sent from the template's own page.
    #[serde(default)]
    back: String,
}

/// The template the form describes, parsed as the API parses a body. Errors name the form's
/// field.
fn template_of(f: &EnvForm) -> Result<EnvTemplate, Error> {
    let body = EnvironmentIn {
        python: f.python.trim().to_string(),
        packages: package_lines(&f.packages),
        presets: preset_lines(&f.presets)?,
    };
    body.template(f.name.trim()).map_err(|mut e| {
        // `presets.cpus` and `presets.memory` are the presets field's.
        let sub = e
            .details
            .get("field")
            .and_then(|v| v.as_str())
            .is_some_and(|f| f.starts_with("presets."));
        if sub {
            e.details.insert("field".into(), "presets".into());
        }
        e
    })
}

/// One template in the list.
struct EnvRow {
    name: String,
    href: String,
    python: String,
    packages: usize,
    presets: String,
    status: &'static str,
    badge: &'static str,
    percent: Option<u8>,
    /// The builder's latest line while building, or why the build failed.
    message: Option<String>,
}

impl EnvRow {
    fn of(v: &EnvironmentView) -> EnvRow {
        let (percent, message) = match &v.status {
            EnvStatus::Building { percent, message } => (Some(*percent), Some(message.clone())),
            EnvStatus::Failed { error } => (None, Some(error.clone())),
            _ => (None, None),
        };
        EnvRow {
            name: v.template.name.clone(),
            href: template_href(&v.template.name),
            python: v.template.python.clone(),
            packages: v.template.packages.len(),
            presets: v
                .template
                .presets
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            status: v.status.as_str(),
            badge: badge(&v.status),
            percent,
            message,
        }
    }
}

/// Whether the visitor may change templates (display only).
async fn may_manage(s: &AppState, session: &ConsoleSession) -> bool {
    s.app
        .my_platform_actions(&session.caller, &[Action::TemplateManage])
        .await
        .contains(&Action::TemplateManage)
}

/// Adds the headers of a page that may refresh itself: never cached, and `Refresh` while
/// `live` (the meta element in the page does the same).
fn live_headers(mut resp: Response, live: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if live {
        h.insert(header::REFRESH, HeaderValue::from(REFRESH_SECS));
    }
    resp
}

#[derive(Template)]
#[template(path = "environments.html")]
struct EnvironmentsPage {
    chrome: Chrome,
    environments: Vec<EnvRow>,
    live: bool,
    refresh: u32,
    manage: bool,
    /// The form is the one of a template's page (its name is fixed).
    fixed_name: bool,
    action: &'static str,
    draft: EnvDraft,
    problem: Option<Problem>,
}

async fn environments_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: EnvDraft,
    problem: Option<Problem>,
) -> Response {
    let list = match s.app.list_environments(&session.caller).await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let live = list.iter().any(|v| building(&v.status));
    let page = EnvironmentsPage {
        chrome: Chrome::new("Environments", "environments", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        environments: list.iter().map(EnvRow::of).collect(),
        live,
        refresh: REFRESH_SECS,
        manage: may_manage(s, session).await,
        fixed_name: false,
        action: LIST_HREF,
        draft,
        problem: problem.clone(),
    };
    live_headers(
        render(status(problem.as_ref()), &page),
        live && problem.is_none(),
    )
}

/// `GET /admin/environments`.
pub async fn list(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    environments_page(&s, &session, q, EnvDraft::default(), None).await
}

/// A preset as the template's page shows it.
struct PresetRow {
    name: String,
    cpus: String,
    memory: String,
}

#[derive(Template)]
#[template(path = "environment.html")]
struct EnvironmentPage {
    chrome: Chrome,
    name: String,
    href: String,
    python: String,
    packages: Vec<String>,
    presets: Vec<PresetRow>,
    fingerprint: String,
    status: &'static str,
    badge: &'static str,
    percent: Option<u8>,
    message: Option<String>,
    installed: Vec<String>,
    live: bool,
    refresh: u32,
    manage: bool,
    fixed_name: bool,
    action: &'static str,
    draft: EnvDraft,
    problem: Option<Problem>,
}

async fn environment_page(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    draft: Option<EnvDraft>,
    problem: Option<Problem>,
) -> Response {
    let v = match s.app.environment(&session.caller, name).await {
        Ok(v) => v,
        Err(e) => return fail(&e, Some(session)),
    };
    let row = EnvRow::of(&v);
    let live = building(&v.status);
    let installed = match &v.status {
        EnvStatus::Ready { packages } => packages.clone(),
        _ => Vec::new(),
    };
    let page = EnvironmentPage {
        chrome: Chrome::new(format!("Environment {name}"), "environments", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        href: row.href,
        python: row.python,
        status: row.status,
        badge: row.badge,
        percent: row.percent,
        message: row.message,
        packages: v.template.packages.clone(),
        presets: v
            .template
            .presets
            .iter()
            .map(|p| PresetRow {
                name: p.name.clone(),
                cpus: cpus(p.cpu_millis),
                memory: format_size(p.memory_bytes),
            })
            .collect(),
        fingerprint: v.fingerprint.clone(),
        installed,
        live,
        refresh: REFRESH_SECS,
        manage: may_manage(s, session).await,
        fixed_name: true,
        action: LIST_HREF,
        draft: draft.unwrap_or_else(|| EnvDraft::of(&v.template)),
        name: v.template.name,
        problem: problem.clone(),
    };
    live_headers(
        render(status(problem.as_ref()), &page),
        live && problem.is_none(),
    )
}

/// `GET /admin/environments/{env}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
    q: PageQuery,
) -> Response {
    environment_page(&s, &session, &name, q, None, None).await
}

/// `POST /admin/environments`: creates or replaces the template, starts its build and shows
/// its page.
pub async fn put(State(s): State<AppState>, Post { session, form: f }: Post<EnvForm>) -> Response {
    let result = match template_of(&f) {
        Ok(t) => s.app.put_environment(&session.caller, t).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => Redirect::to(&template_href(&v.template.name)).into_response(),
        // Bad input, or no environment builder here: said above the form, which keeps what
        // was typed.
        Err(e) if in_form(&e) || e.code == ErrorCode::Unavailable => {
            let on_page = f.back == "template";
            let name = f.name.trim().to_string();
            let draft = EnvDraft {
                name: f.name,
                python: f.python,
                packages: f.packages,
                presets: f.presets,
            };
            let p = Some(Problem::of(e));
            if on_page {
                environment_page(&s, &session, &name, PageQuery::default(), Some(draft), p).await
            } else {
                environments_page(&s, &session, PageQuery::default(), draft, p).await
            }
        }
        Err(e) => fail(&e, Some(&session)),
    }
}

/// A build or delete button: the CSRF token and the page it sits on (`template` for the
/// template's own page, anything else for the list).
#[derive(Deserialize)]
pub struct EnvButton {
    #[serde(default)]
    back: String,
}

/// Ends a button's action: to `ok` on success; a conflict (a template in use) or an outage
/// above the page the button sat on; anything else as an error page.
async fn after(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    on_page: bool,
    result: Result<String, Error>,
) -> Response {
    match result {
        Ok(ok) => Redirect::to(&ok).into_response(),
        Err(e) if in_form(&e) || e.code == ErrorCode::Unavailable => {
            let p = Some(Problem::of(e));
            if on_page {
                environment_page(s, session, name, PageQuery::default(), None, p).await
            } else {
                environments_page(s, session, PageQuery::default(), EnvDraft::default(), p).await
            }
        }
        Err(e) => fail(&e, Some(session)),
    }
}

/// `POST /admin/environments/{env}/build`: starts (re)building the template; back to the
/// page the button was on, which follows the build.
pub async fn build(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: b }: Post<EnvButton>,
) -> Response {
    let on_page = b.back == "template";
    let result = s
        .app
        .build_environment(&session.caller, &name)
        .await
        .map(|v| {
            if on_page {
                template_href(&v.template.name)
            } else {
                LIST_HREF.to_string()
            }
        });
    after(&s, &session, &name, on_page, result).await
}

/// `POST /admin/environments/{env}/delete`: deletes a template no notebook server uses; back
/// to the list.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: b }: Post<EnvButton>,
) -> Response {
    let result = s
        .app
        .delete_environment(&session.caller, &name)
        .await
        .map(|()| LIST_HREF.to_string());
    after(&s, &session, &name, b.back == "template", result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINS: &str = "jupyterlab==4.6.6\nipykernel==7.4.0";

    fn form(name: &str, python: &str, packages: &str, presets: &str) -> EnvForm {
        EnvForm {
            name: name.into(),
            python: python.into(),
            packages: packages.into(),
            presets: presets.into(),
            back: String::new(),
        }
    }

    fn field(e: Option<Error>) -> Option<String> {
        e.and_then(|e| {
            e.details
                .get("field")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
    }

    #[test]
    fn package_lines_skip_blanks_and_comments() {
        assert_eq!(
            package_lines(" numpy==2.4.6 \r\n\n# plotting\n  matplotlib==3.11.2\n"),
            ["numpy==2.4.6", "matplotlib==3.11.2"]
        );
        assert!(package_lines("").is_empty());
    }

    #[test]
    fn preset_lines_are_name_cpus_memory() {
        let p = preset_lines("small 1 2G\n\n  # big ones\nlarge\t4   8GiB \r\nhalf 0.5 512M")
            .unwrap_or_default();
        let got: Vec<(&str, &str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.cpus.as_str(), p.memory.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("small", "1", "2G"),
                ("large", "4", "8GiB"),
                ("half", "0.5", "512M")
            ]
        );
        for (bad, line) in [
            ("small 1", 1),
            ("small 1 2G\nmedium 2 4G extra", 2),
            ("small 1 2G\n\nx lots 2G", 3),
            ("small 1 plenty", 1),
            ("small -1 2G", 1),
        ] {
            let e = preset_lines(bad).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.message.starts_with(&format!("line {line}:"))),
                "{bad:?}: {e:?}"
            );
            assert_eq!(field(e).as_deref(), Some("presets"), "{bad:?}");
        }
        assert!(preset_lines("").unwrap_or_default().is_empty());
    }

    #[test]
    fn presets_round_trip_through_the_form() {
        let presets = vec![
            Preset {
                name: "small".into(),
                cpu_millis: 1000,
                memory_bytes: 2 << 30,
            },
            Preset {
                name: "half".into(),
                cpu_millis: 500,
                memory_bytes: 512 << 20,
            },
        ];
        let text = presets_text(&presets);
        assert_eq!(text, "small 1 2GiB\nhalf 0.5 512MiB");
        let t = template_of(&form("ds", "3.11", PINS, &text)).ok();
        assert_eq!(t.map(|t| t.presets), Some(presets));
    }

    #[test]
    fn the_form_becomes_the_apis_template() {
        let t = template_of(&form(" ds ", " 3.11 ", PINS, "small 1 2G")).ok();
        let t = t.unwrap_or_else(|| unreachable!());
        assert_eq!(t.name, "ds");
        assert_eq!(t.python, "3.11");
        assert_eq!(t.packages, ["jupyterlab==4.6.6", "ipykernel==7.4.0"]);
        assert_eq!(t.presets.len(), 1);
        let d = EnvDraft::of(&t);
        let again = template_of(&form(&d.name, &d.python, &d.packages, &d.presets)).ok();
        assert_eq!(again, Some(t));
    }

    #[test]
    fn bad_input_names_its_field() {
        let bad = |f: EnvForm| field(template_of(&f).err());
        assert_eq!(
            bad(form("Bad Name", "3.11", PINS, "sm 1 2G")).as_deref(),
            Some("name")
        );
        assert_eq!(
            bad(form("ds", "2.7", PINS, "sm 1 2G")).as_deref(),
            Some("python")
        );
        assert_eq!(
            bad(form("ds", "3.11", "numpy==2.4.6", "sm 1 2G")).as_deref(),
            Some("packages")
        );
        assert_eq!(
            bad(form(
                "ds",
                "3.11",
                "jupyterlab>=4\nipykernel==7.4.0",
                "sm 1 2G"
            ))
            .as_deref(),
            Some("packages")
        );
        assert_eq!(
            bad(form("ds", "3.11", PINS, "sm 1")).as_deref(),
            Some("presets")
        );
        assert_eq!(
            bad(form("ds", "3.11", PINS, "sm 1 1M")).as_deref(),
            Some("presets")
        );
    }

    #[test]
    fn preset_checks_belong_to_the_presets_field() {
        let bad = |presets: &str| field(template_of(&form("ds", "3.11", PINS, presets)).err());
        assert_eq!(bad("s 1 2G").as_deref(), Some("presets"));
        assert_eq!(bad("sm 1 2G\nsm 2 4G").as_deref(), Some("presets"));
        assert_eq!(bad("sm 100 2G").as_deref(), Some("presets"));
        assert_eq!(bad("").as_deref(), Some("presets"));
    }

    #[test]
    fn statuses_have_badges() {
        assert_eq!(badge(&EnvStatus::NotBuilt), "");
        assert_eq!(badge(&EnvStatus::Ready { packages: vec![] }), "badge-ok");
        assert!(building(&EnvStatus::Queued));
        assert!(building(&EnvStatus::Building {
            percent: 10,
            message: "m".into()
        }));
        assert!(!building(&EnvStatus::Failed { error: "e".into() }));
    }
}
