//! The dashboard (your projects) and the project page with its members, description, settings
//! (classification, tags, approval), access grants, role bindings, policies and deletion.

use super::guard::{Button, DescriptionForm, PageQuery, Post, Visitor};
use super::page::{
    encode, fail, finish, next_href, parse_tags, render, span, status, tags_text, when, Chrome,
    Problem,
};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use enclave_core::access::{CustomPolicy, GrantRole, RoleBinding, SubjectKind};
use enclave_core::authz::Action;
use enclave_core::model::{PageRequest, ProjectRole};
use enclave_core::{Error, ErrorCode};
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

/// One time-bound access grant as the project page lists it.
struct GrantRow {
    id: String,
    grantee: String,
    role: &'static str,
    reason: String,
    status: &'static str,
    requested: String,
    starts: String,
    ends: String,
    /// Who approved or denied it; `None` when nobody did (yet, or approval was not needed).
    decided_by: Option<String>,
    /// Who ended it early.
    revoked_by: Option<String>,
    /// Approve and deny buttons.
    decide: bool,
    /// Revoke button.
    revoke: bool,
}

/// An active grant, announced at the top of the project page.
struct Banner {
    grantee: String,
    role: &'static str,
    until: String,
    reason: String,
    approved_by: Option<String>,
}

/// One role binding as the project page lists it.
pub(super) struct BindingRow {
    pub id: String,
    pub subject: String,
    pub role: String,
    pub expires: Option<String>,
    pub created_by: String,
    pub created: String,
}

impl BindingRow {
    pub fn of(b: RoleBinding) -> BindingRow {
        BindingRow {
            subject: format!("{}:{}", b.subject_kind.as_str(), b.subject_name),
            expires: b.expires_at.map(when),
            created: when(b.created_at),
            id: b.id,
            role: b.role,
            created_by: b.created_by,
        }
    }
}

/// One custom policy in a list.
pub(super) struct PolicyRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub updated: String,
    pub created_by: String,
}

impl PolicyRow {
    pub fn of(p: CustomPolicy) -> PolicyRow {
        PolicyRow {
            updated: when(p.updated_at),
            id: p.id,
            name: p.name,
            description: p.description,
            created_by: p.created_by,
        }
    }
}

/// Values of the project page's forms, kept when the page is shown again with an error.
#[derive(Default)]
pub(super) struct Drafts {
    /// Request-access form: role, reason, duration.
    pub grant: Option<(String, String, String)>,
    /// Bind-role form: subject, role, expires in.
    pub binding: Option<(String, String, String)>,
    /// Settings form: classification, tags text, requires approval.
    pub settings: Option<(String, String, bool)>,
}

/// What the visitor may do in a project, as the policy says. It only decides which forms and
/// buttons the page shows; every action is decided again by its use case.
pub(super) struct Abilities(Vec<Action>);

impl Abilities {
    /// Asks the policy what the visitor may do in `project` ([`enclave_app::App::can`] on
    /// themselves) when `probe` is set. Plain members and viewers are not asked: the question
    /// needs `policy.check`, which they do not hold, and every refusal is audited. When the
    /// question cannot be answered, owners and admins keep the project's own forms.
    pub async fn of(
        s: &AppState,
        session: &ConsoleSession,
        project: &str,
        probe: bool,
        owner_or_admin: bool,
    ) -> Abilities {
        if probe {
            let me = &session.caller.principal.username;
            if let Ok(actions) = s.app.can(&session.caller, me, project).await {
                return Abilities(actions);
            }
        }
        Abilities(if owner_or_admin {
            vec![
                Action::ProjectManageMembers,
                Action::ProjectUpdate,
                Action::ProjectDelete,
            ]
        } else {
            Vec::new()
        })
    }

    /// Whether the page should offer `action`.
    pub fn may(&self, action: Action) -> bool {
        self.0.contains(&action)
    }
}

/// A list the visitor may or may not see: `None` when the policy refuses it.
fn optional<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The label of a grant's role.
fn grant_role_label(role: GrantRole) -> &'static str {
    match role {
        GrantRole::Support => "support",
        GrantRole::ProjectAdmin => "project admin",
    }
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
    classification: String,
    tags: Vec<(String, String)>,
    requires_approval: bool,
    manage: bool,
    update: bool,
    delete: bool,
    members: Vec<MemberRow>,
    next: Option<String>,
    roles: [&'static str; 3],
    banners: Vec<Banner>,
    grants: Option<Vec<GrantRow>>,
    request: bool,
    max_grant: String,
    bindings: Option<Vec<BindingRow>>,
    bind: bool,
    unbind: bool,
    bindable: Vec<&'static str>,
    policies: Option<Vec<PolicyRow>>,
    create_policy: bool,
    check: bool,
    explain_href: String,
    /// Problem of the form it belongs to, for the message next to it.
    problem: Option<Problem>,
    grant_draft: (String, String, String),
    binding_draft: (String, String, String),
    settings_draft: (String, String, bool),
}

pub(super) async fn project_page(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    project_page_with(s, session, name, q, problem, Drafts::default()).await
}

pub(super) async fn project_page_with(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
    drafts: Drafts,
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
    let caller = &session.caller;
    let lists = async {
        let grants = optional(s.app.list_grants(caller, name).await)?;
        let bindings = optional(s.app.list_bindings(caller, Some(name)).await)?;
        let policies = optional(s.app.list_policies(caller, Some(name)).await)?;
        Ok::<_, Error>((grants, bindings, policies))
    };
    let (grants, bindings, policies) = match lists.await {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let me = &caller.principal.username;
    let admin = caller.principal.platform_admin;
    let owner_or_admin = view.your_role == Some(ProjectRole::Owner) || admin;
    // Ask the policy only where the visitor may hold more than a plain membership gives.
    let probe = admin
        || !matches!(
            view.your_role,
            Some(ProjectRole::Member | ProjectRole::Viewer)
        )
        || bindings.iter().flatten().any(|b| {
            b.subject_kind == SubjectKind::Group
                || (b.subject_kind == SubjectKind::User && b.subject_name == *me)
        });
    let can = Abilities::of(s, session, name, probe, owner_or_admin).await;
    let now = s.app.now();
    let banners = grants
        .iter()
        .flatten()
        .filter(|g| g.in_force(now))
        .map(|g| Banner {
            grantee: g.grantee.clone(),
            role: grant_role_label(g.role),
            until: g.expires_at.map(when).unwrap_or_default(),
            reason: g.reason.clone(),
            approved_by: g.decided_by.clone(),
        })
        .collect();
    let grants = grants.map(|list| {
        list.into_iter()
            .map(|g| {
                let status = g.display_status(now);
                GrantRow {
                    decide: status == "pending"
                        && g.grantee != *me
                        && can.may(Action::GrantApprove),
                    revoke: matches!(status, "pending" | "active") && can.may(Action::GrantRevoke),
                    status,
                    role: grant_role_label(g.role),
                    requested: when(g.requested_at),
                    starts: g.starts_at.map(when).unwrap_or_default(),
                    ends: g.expires_at.map(when).unwrap_or_default(),
                    decided_by: g.decided_by,
                    revoked_by: g.revoked_by,
                    id: g.id,
                    grantee: g.grantee,
                    reason: g.reason,
                }
            })
            .collect()
    });
    let p = view.project;
    let settings_draft = drafts.settings.unwrap_or_else(|| {
        (
            p.classification.clone(),
            tags_text(&p.tags),
            p.requires_approval,
        )
    });
    let page = ProjectPage {
        chrome: Chrome::new(format!("Project {}", p.name), "projects", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        manage: can.may(Action::ProjectManageMembers),
        update: can.may(Action::ProjectUpdate),
        delete: can.may(Action::ProjectDelete),
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
        classification: p.classification,
        tags: p.tags.into_iter().collect(),
        requires_approval: p.requires_approval,
        roles: [
            ProjectRole::Viewer.as_str(),
            ProjectRole::Member.as_str(),
            ProjectRole::Owner.as_str(),
        ],
        banners,
        grants,
        request: can.may(Action::GrantRequest),
        max_grant: span(s.app.settings().max_grant),
        bindings: bindings.map(|b| b.into_iter().map(BindingRow::of).collect()),
        bind: can.may(Action::RoleBind),
        unbind: can.may(Action::RoleUnbind),
        bindable: project_roles(),
        policies: policies.map(|p| p.into_iter().map(PolicyRow::of).collect()),
        create_policy: can.may(Action::PolicyCreate),
        check: can.may(Action::PolicyCheck),
        explain_href: format!(
            "/policy/check?principal={}&resource={}",
            encode(me),
            encode(&format!("project:{name}"))
        ),
        problem: problem.clone(),
        grant_draft: drafts
            .grant
            .unwrap_or_else(|| ("support".into(), String::new(), "60".into())),
        binding_draft: drafts
            .binding
            .unwrap_or_else(|| (String::new(), "data_scientist".into(), String::new())),
        settings_draft,
    };
    render(status(problem.as_ref()), &page)
}

/// The roles that can be bound on one project (the platform-wide ones cannot).
pub(super) fn project_roles() -> Vec<&'static str> {
    enclave_app::bindable_roles()
        .into_iter()
        .filter(|r| !matches!(*r, "platform_admin" | "security_auditor"))
        .collect()
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

/// The settings form: classification, tags (`key=value` per line) and the approval checkbox.
#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    classification: String,
    #[serde(default)]
    tags: String,
    /// A checkbox: present (any value) when ticked.
    requires_approval: Option<String>,
}

/// `POST /projects/{name}/settings`.
pub async fn set_settings(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<SettingsForm>,
) -> Response {
    let requires_approval = f.requires_approval.is_some();
    let result = match parse_tags(&f.tags) {
        Ok(tags) => s
            .app
            .update_project(
                &session.caller,
                &name,
                enclave_app::ProjectPatch {
                    classification: Some(f.classification.trim().to_string()),
                    tags: Some(tags),
                    requires_approval: Some(requires_approval),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    let path = format!("/projects/{}", encode(&name));
    let drafts = Drafts {
        settings: Some((f.classification, f.tags, requires_approval)),
        ..Drafts::default()
    };
    finish(result, &session, &path, "settings-saved", |p| {
        project_page_with(&s, &session, &name, PageQuery::default(), Some(p), drafts)
    })
    .await
}
