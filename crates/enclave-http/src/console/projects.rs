//! The dashboard (your projects) and the project page with its members, description and
//! deletion.

use super::guard::{Button, DescriptionForm, PageQuery, Post, Visitor};
use super::page::{encode, fail, finish, next_href, render, status, when, Chrome, Problem};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use enclave_core::model::{PageRequest, ProjectRole};
use enclave_core::Error;
use serde::Deserialize;

/// The most rows one list page shows.
pub const LIST_LIMIT: u32 = 100;

struct ProjectRow {
    name: String,
    description: String,
    role: &'static str,
    owner: String,
    members: i64,
}

/// Values of the create-project form, kept when it is shown again.
#[derive(Default)]
struct ProjectDraft {
    name: String,
    description: String,
    owner: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    projects: Vec<ProjectRow>,
    next: Option<String>,
    admin: bool,
    draft: ProjectDraft,
}

/// A role for people; `—` when the visitor has none.
fn role_label(role: Option<ProjectRole>) -> &'static str {
    role.map_or("—", ProjectRole::as_str)
}

async fn dashboard_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: ProjectDraft,
    problem: Option<Problem>,
) -> Response {
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.list_projects(&session.caller, &page).await,
        Err(e) => Err(e),
    };
    let list = match listed {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = Dashboard {
        chrome: Chrome::new("Projects", "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        projects: list
            .items
            .into_iter()
            .map(|v| ProjectRow {
                role: role_label(v.your_role),
                name: v.project.name,
                description: v.project.description,
                owner: v.project.owner,
                members: v.project.member_count,
            })
            .collect(),
        next: next_href("/", list.next.as_deref()),
        admin: session.caller.principal.platform_admin,
        draft,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /`.
pub async fn dashboard(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    q: PageQuery,
) -> Response {
    dashboard_page(&s, &session, q, ProjectDraft::default(), None).await
}

/// The create-project form.
#[derive(Deserialize)]
pub struct NewProjectForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
}

/// `POST /projects`.
pub async fn create(
    State(s): State<AppState>,
    Post { session, form: f }: Post<NewProjectForm>,
) -> Response {
    let owner = Some(f.owner.as_str()).filter(|o| !o.is_empty());
    let result = s
        .app
        .create_project(&session.caller, &f.name, &f.description, owner)
        .await
        .map(|_| ());
    let path = format!("/projects/{}", encode(&f.name));
    let draft = ProjectDraft {
        name: f.name.clone(),
        description: f.description.clone(),
        owner: f.owner.clone(),
    };
    finish(result, &session, &path, "project-created", |p| {
        dashboard_page(&s, &session, PageQuery::default(), draft, Some(p))
    })
    .await
}

struct MemberRow {
    username: String,
    role: &'static str,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    chrome: Chrome,
    name: String,
    description: String,
    owner: String,
    member_count: i64,
    created: String,
    your_role: &'static str,
    manage: bool,
    members: Vec<MemberRow>,
    next: Option<String>,
    roles: [&'static str; 3],
}

async fn project_page(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let view = match s.app.get_project(&session.caller, name).await {
        Ok(v) => v,
        Err(e) => return fail(&e, Some(session)),
    };
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.project_members(&session.caller, name, &page).await,
        Err(e) => Err(e),
    };
    let members = match listed {
        Ok(m) => m,
        Err(e) => return fail(&e, Some(session)),
    };
    let p = view.project;
    let page = ProjectPage {
        chrome: Chrome::new(format!("Project {}", p.name), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        manage: view.your_role == Some(ProjectRole::Owner)
            || session.caller.principal.platform_admin,
        your_role: role_label(view.your_role),
        next: next_href(
            &format!("/projects/{}", encode(&p.name)),
            members.next.as_deref(),
        ),
        members: members
            .items
            .into_iter()
            .map(|(username, role)| MemberRow {
                username,
                role: role.as_str(),
            })
            .collect(),
        name: p.name,
        description: p.description,
        owner: p.owner,
        member_count: p.member_count,
        created: when(p.created_at),
        roles: [
            ProjectRole::Viewer.as_str(),
            ProjectRole::Member.as_str(),
            ProjectRole::Owner.as_str(),
        ],
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /projects/{name}`.
pub async fn show(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
    q: PageQuery,
) -> Response {
    project_page(&s, &session, &name, q, None).await
}

/// The add-or-change-member form.
#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

/// `POST /projects/{name}/members`.
pub async fn set_member(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<MemberForm>,
) -> Response {
    let result = match ProjectRole::parse(&f.role) {
        Some(role) => {
            s.app
                .set_project_member(&session.caller, &name, &f.username, role)
                .await
        }
        None => Err(Error::invalid(
            "role",
            "choose a role: viewer, member or owner",
        )),
    };
    let path = format!("/projects/{}", encode(&name));
    finish(result, &session, &path, "member-saved", |p| {
        project_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /projects/{name}/members/{username}/remove`.
pub async fn remove_member(
    State(s): State<AppState>,
    Path((name, username)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s
        .app
        .remove_project_member(&session.caller, &name, &username)
        .await;
    let path = format!("/projects/{}", encode(&name));
    finish(result, &session, &path, "member-removed", |p| {
        project_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /projects/{name}/description`.
pub async fn set_description(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<DescriptionForm>,
) -> Response {
    let result = s
        .app
        .update_project(
            &session.caller,
            &name,
            enclave_app::ProjectPatch {
                description: Some(f.description.clone()),
                ..Default::default()
            },
        )
        .await
        .map(|_| ());
    let path = format!("/projects/{}", encode(&name));
    finish(result, &session, &path, "project-saved", |p| {
        project_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// The delete-project form: the project's name typed again.
#[derive(Deserialize)]
pub struct DeleteProjectForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /projects/{name}/delete`: only when `confirm` equals the name.
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<DeleteProjectForm>,
) -> Response {
    let result = if f.confirm == name {
        s.app.delete_project(&session.caller, &name).await
    } else {
        Err(Error::invalid(
            "confirm",
            "the project was not deleted: type its name exactly to confirm",
        ))
    };
    finish(result, &session, "/", "project-deleted", |p| {
        project_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}
