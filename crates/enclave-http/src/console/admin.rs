//! Platform administration: users, groups (with their subgroups) and platform-wide role
//! bindings. The application refuses those the policy does not allow; the console shows its
//! answer as a 403 page.

use super::grants::{bind_from, BindForm};
use super::guard::{Button, DescriptionForm, PageQuery, Post, Visitor};
use super::page::{
    encode, fail, finish, next_href, render, repeated, status, when, Chrome, Problem,
};
use super::projects::{BindingRow, LIST_LIMIT};
use crate::auth::ConsoleSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use enclave_app::{Caller, NewUser, UserPatch};
use enclave_core::model::PageRequest;
use enclave_core::Error;
use serde::Deserialize;

struct UserRow {
    username: String,
    display_name: String,
    email: String,
    admin: bool,
    disabled: bool,
    locked: bool,
    created: String,
    /// The identity source the account came from, if any.
    source: Option<String>,
    /// Its second factors, summarized (`TOTP, 1 passkey`, `none`).
    mfa: String,
}

/// Values of the create-user form, kept when it is shown again (never the password).
#[derive(Default)]
struct UserDraft {
    username: String,
    display_name: String,
    email: String,
    admin: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    next: Option<String>,
    draft: UserDraft,
}

async fn users_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: UserDraft,
    problem: Option<Problem>,
) -> Response {
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.list_users(&session.caller, &page).await,
        Err(e) => Err(e),
    };
    let list = match listed {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let ids: Vec<String> = list.items.iter().map(|(u, _)| u.id.clone()).collect();
    let sources = match s.app.sources_of(&ids).await {
        Ok(m) => m,
        Err(e) => return fail(&e, Some(session)),
    };
    let mfa = match s.app.mfa_of_users(&ids).await {
        Ok(m) => m,
        Err(e) => return fail(&e, Some(session)),
    };
    let users = list
        .items
        .into_iter()
        .map(|(u, locked)| UserRow {
            locked,
            source: sources.get(&u.id).cloned(),
            mfa: mfa
                .get(&u.id)
                .map_or_else(|| "none".into(), enclave_app::UserMfa::summary),
            created: when(u.created_at),
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            admin: u.platform_admin,
            disabled: u.disabled,
        })
        .collect();
    let page = UsersPage {
        chrome: Chrome::new("Users", "users", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        users,
        next: next_href("/admin/users", list.next.as_deref()),
        draft,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/users`.
pub async fn users(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    users_page(&s, &session, q, UserDraft::default(), None).await
}

/// The create-user form.
#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    /// A checkbox: present (any value) when ticked.
    platform_admin: Option<String>,
}

/// `POST /admin/users`.
pub async fn create_user(
    State(s): State<AppState>,
    Post { session, form: f }: Post<NewUserForm>,
) -> Response {
    let draft = UserDraft {
        username: f.username.clone(),
        display_name: f.display_name.clone(),
        email: f.email.clone(),
        admin: f.platform_admin.is_some(),
    };
    let input = NewUser {
        username: f.username,
        password: f.password,
        display_name: f.display_name,
        email: f.email,
        platform_admin: draft.admin,
    };
    let result = s.app.create_user(&session.caller, input).await.map(|_| ());
    finish(result, &session, "/admin/users", "user-created", |p| {
        users_page(&s, &session, PageQuery::default(), draft, Some(p))
    })
    .await
}

/// Ends a per-user action: back to the users page with `notice`, or the page again with the
/// error.
async fn users_done(
    s: &AppState,
    session: &ConsoleSession,
    result: Result<(), Error>,
    notice: &'static str,
) -> Response {
    finish(result, session, "/admin/users", notice, |p| {
        users_page(
            s,
            session,
            PageQuery::default(),
            UserDraft::default(),
            Some(p),
        )
    })
    .await
}

/// The per-user buttons of the users page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAction {
    /// Disable (true) or enable (false).
    Disabled(bool),
    /// Grant (true) or remove (false) platform admin.
    Admin(bool),
    Unlock,
    RevokeSessions,
    ResetMfa,
    Delete,
}

async fn user_action(
    s: AppState,
    session: ConsoleSession,
    username: String,
    action: UserAction,
) -> Response {
    let caller = &session.caller;
    let (result, notice) = match action {
        UserAction::Disabled(disabled) => {
            let patch = UserPatch {
                disabled: Some(disabled),
                ..UserPatch::default()
            };
            (
                update_user(&s, caller, &username, patch).await,
                if disabled {
                    "user-disabled"
                } else {
                    "user-enabled"
                },
            )
        }
        UserAction::Admin(admin) => {
            let patch = UserPatch {
                platform_admin: Some(admin),
                ..UserPatch::default()
            };
            (
                update_user(&s, caller, &username, patch).await,
                if admin {
                    "admin-granted"
                } else {
                    "admin-removed"
                },
            )
        }
        UserAction::Unlock => (s.app.unlock_user(caller, &username).await, "user-unlocked"),
        UserAction::RevokeSessions => (
            s.app.revoke_sessions(caller, &username).await,
            "sessions-ended",
        ),
        UserAction::ResetMfa => (s.app.reset_user_mfa(caller, &username).await, "mfa-reset"),
        UserAction::Delete => (s.app.delete_user(caller, &username).await, "user-deleted"),
    };
    users_done(&s, &session, result, notice).await
}

/// Applies `patch` to a user.
async fn update_user(
    s: &AppState,
    caller: &Caller,
    username: &str,
    patch: UserPatch,
) -> Result<(), Error> {
    s.app.update_user(caller, username, patch).await.map(|_| ())
}

/// `POST /admin/users/{username}/disable`.
pub async fn disable_user(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::Disabled(true)).await
}

/// `POST /admin/users/{username}/enable`.
pub async fn enable_user(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::Disabled(false)).await
}

/// `POST /admin/users/{username}/unlock`.
pub async fn unlock_user(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::Unlock).await
}

/// `POST /admin/users/{username}/revoke-sessions`.
pub async fn revoke_sessions(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::RevokeSessions).await
}

/// `POST /admin/users/{username}/reset-mfa`: the user lost their second factors.
pub async fn reset_mfa(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::ResetMfa).await
}

/// `POST /admin/users/{username}/delete`.
pub async fn delete_user(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<Button>,
) -> Response {
    user_action(s, post.session, username, UserAction::Delete).await
}

/// The grant-or-remove-admin button: `platform_admin` is `true` or `false`.
#[derive(Deserialize)]
pub struct AdminForm {
    platform_admin: bool,
}

/// `POST /admin/users/{username}/admin`.
pub async fn set_admin(
    State(s): State<AppState>,
    Path(username): Path<String>,
    post: Post<AdminForm>,
) -> Response {
    let action = UserAction::Admin(post.form.platform_admin);
    user_action(s, post.session, username, action).await
}

/// The edit-profile form of a user.
#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

/// `POST /admin/users/{username}/profile`.
pub async fn set_profile(
    State(s): State<AppState>,
    Path(username): Path<String>,
    Post { session, form: f }: Post<ProfileForm>,
) -> Response {
    let patch = UserPatch {
        display_name: Some(f.display_name),
        email: Some(f.email),
        ..UserPatch::default()
    };
    let result = update_user(&s, &session.caller, &username, patch).await;
    users_done(&s, &session, result, "user-saved").await
}

/// The reset-password form: the new password typed twice.
#[derive(Deserialize)]
pub struct ResetPasswordForm {
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

/// `POST /admin/users/{username}/password`: also ends the user's sessions.
pub async fn reset_password(
    State(s): State<AppState>,
    Path(username): Path<String>,
    Post { session, form: f }: Post<ResetPasswordForm>,
) -> Response {
    let result = match repeated(&f.new, &f.repeat) {
        Ok(()) => {
            s.app
                .reset_password(&session.caller, &username, &f.new)
                .await
        }
        Err(e) => Err(e),
    };
    users_done(&s, &session, result, "password-reset").await
}

struct GroupRow {
    name: String,
    description: String,
    members: i64,
    created: String,
}

/// Values of the create-group form, kept when it is shown again.
#[derive(Default)]
struct GroupDraft {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupRow>,
    next: Option<String>,
    draft: GroupDraft,
}

async fn groups_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: GroupDraft,
    problem: Option<Problem>,
) -> Response {
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.list_groups(&session.caller, &page).await,
        Err(e) => Err(e),
    };
    let list = match listed {
        Ok(l) => l,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = GroupsPage {
        chrome: Chrome::new("Groups", "groups", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        groups: list
            .items
            .into_iter()
            .map(|g| GroupRow {
                created: when(g.created_at),
                name: g.name,
                description: g.description,
                members: g.member_count,
            })
            .collect(),
        next: next_href("/admin/groups", list.next.as_deref()),
        draft,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/groups`.
pub async fn groups(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    q: PageQuery,
) -> Response {
    groups_page(&s, &session, q, GroupDraft::default(), None).await
}

/// The create-group form.
#[derive(Deserialize)]
pub struct NewGroupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /admin/groups`.
pub async fn create_group(
    State(s): State<AppState>,
    Post { session, form: f }: Post<NewGroupForm>,
) -> Response {
    let result = s
        .app
        .create_group(&session.caller, &f.name, &f.description)
        .await
        .map(|_| ());
    let path = format!("/admin/groups/{}", encode(&f.name));
    let draft = GroupDraft {
        name: f.name,
        description: f.description,
    };
    finish(result, &session, &path, "group-created", |p| {
        groups_page(&s, &session, PageQuery::default(), draft, Some(p))
    })
    .await
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    name: String,
    description: String,
    member_count: i64,
    created: String,
    members: Vec<String>,
    next: Option<String>,
}

async fn group_page(
    s: &AppState,
    session: &ConsoleSession,
    name: &str,
    q: PageQuery,
    problem: Option<Problem>,
) -> Response {
    let group = match s.app.get_group(&session.caller, name).await {
        Ok(g) => g,
        Err(e) => return fail(&e, Some(session)),
    };
    let listed = match PageRequest::new(Some(LIST_LIMIT), q.after) {
        Ok(page) => s.app.group_members(&session.caller, name, &page).await,
        Err(e) => Err(e),
    };
    let members = match listed {
        Ok(m) => m,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = GroupPage {
        chrome: Chrome::new(format!("Group {}", group.name), "groups", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        next: next_href(
            &format!("/admin/groups/{}", encode(&group.name)),
            members.next.as_deref(),
        ),
        members: members.items,
        name: group.name,
        description: group.description,
        member_count: group.member_count,
        created: when(group.created_at),
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/groups/{name}`.
pub async fn group(
    State(s): State<AppState>,
    Visitor(session): Visitor,
    Path(name): Path<String>,
    q: PageQuery,
) -> Response {
    group_page(&s, &session, &name, q, None).await
}

/// The add-member form of a group.
#[derive(Deserialize)]
pub struct GroupMemberForm {
    #[serde(default)]
    username: String,
}

/// `POST /admin/groups/{name}/members`.
pub async fn add_group_member(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<GroupMemberForm>,
) -> Response {
    let result = s
        .app
        .add_group_member(&session.caller, &name, &f.username)
        .await;
    let path = format!("/admin/groups/{}", encode(&name));
    finish(result, &session, &path, "member-saved", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /admin/groups/{name}/members/{username}/remove`.
pub async fn remove_group_member(
    State(s): State<AppState>,
    Path((name, username)): Path<(String, String)>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s
        .app
        .remove_group_member(&session.caller, &name, &username)
        .await;
    let path = format!("/admin/groups/{}", encode(&name));
    finish(result, &session, &path, "member-removed", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /admin/groups/{name}/description`.
pub async fn set_group_description(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<DescriptionForm>,
) -> Response {
    let result = s
        .app
        .update_group(&session.caller, &name, Some(&f.description))
        .await
        .map(|_| ());
    let path = format!("/admin/groups/{}", encode(&name));
    finish(result, &session, &path, "group-saved", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /admin/groups/{name}/delete`.
pub async fn delete_group(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.delete_group(&session.caller, &name).await;
    finish(result, &session, "/admin/groups", "group-deleted", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// The add-or-remove-subgroup form of a group.
#[derive(Deserialize)]
pub struct SubgroupForm {
    #[serde(default)]
    child: String,
}

/// `POST /admin/groups/{name}/subgroups`: makes `child` a member of the group.
pub async fn add_subgroup(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<SubgroupForm>,
) -> Response {
    let result = s
        .app
        .add_subgroup(&session.caller, &name, f.child.trim())
        .await;
    let path = format!("/admin/groups/{}", encode(&name));
    finish(result, &session, &path, "subgroup-added", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// `POST /admin/groups/{name}/subgroups/remove`: takes `child` out of the group.
pub async fn remove_subgroup(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Post { session, form: f }: Post<SubgroupForm>,
) -> Response {
    let result = s
        .app
        .remove_subgroup(&session.caller, &name, f.child.trim())
        .await;
    let path = format!("/admin/groups/{}", encode(&name));
    finish(result, &session, &path, "subgroup-removed", |p| {
        group_page(&s, &session, &name, PageQuery::default(), Some(p))
    })
    .await
}

/// Values of the bind-role form, kept when it is shown again.
#[derive(Default)]
struct BindDraft {
    subject: String,
    role: String,
    expires_in: String,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    chrome: Chrome,
    bindings: Vec<BindingRow>,
    roles: Vec<&'static str>,
    manage: bool,
    draft: BindDraft,
}

async fn roles_page(
    s: &AppState,
    session: &ConsoleSession,
    q: PageQuery,
    draft: BindDraft,
    problem: Option<Problem>,
) -> Response {
    let bindings = match s.app.list_bindings(&session.caller, None).await {
        Ok(b) => b,
        Err(e) => return fail(&e, Some(session)),
    };
    let page = RolesPage {
        chrome: Chrome::new("Platform roles", "roles", Some(session))
            .notice(q.notice)
            .problem(problem.as_ref()),
        bindings: bindings.into_iter().map(BindingRow::of).collect(),
        roles: enclave_app::bindable_roles(),
        manage: session.caller.principal.platform_admin,
        draft,
    };
    render(status(problem.as_ref()), &page)
}

/// `GET /admin/roles`: the platform-wide role bindings.
pub async fn roles(State(s): State<AppState>, Visitor(session): Visitor, q: PageQuery) -> Response {
    let draft = BindDraft {
        role: "security_auditor".into(),
        ..BindDraft::default()
    };
    roles_page(&s, &session, q, draft, None).await
}

/// `POST /admin/roles`: binds a role platform-wide.
pub async fn bind_role(
    State(s): State<AppState>,
    Post { session, form: f }: Post<BindForm>,
) -> Response {
    let result = bind_from(&s, &session, &f, None).await;
    let draft = BindDraft {
        subject: f.subject,
        role: f.role,
        expires_in: f.expires_in,
    };
    finish(result, &session, "/admin/roles", "role-bound", |p| {
        roles_page(&s, &session, PageQuery::default(), draft, Some(p))
    })
    .await
}

/// `POST /admin/roles/{id}/remove`.
pub async fn unbind_role(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Post { session, .. }: Post<Button>,
) -> Response {
    let result = s.app.unbind_role(&session.caller, &id).await;
    finish(result, &session, "/admin/roles", "role-removed", |p| {
        roles_page(
            &s,
            &session,
            PageQuery::default(),
            BindDraft::default(),
            Some(p),
        )
    })
    .await
}
