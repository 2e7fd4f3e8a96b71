//! The web console: server-rendered HTML pages (askama) with plain forms, POST-redirect-GET and
//! no JavaScript.
//!
//! Invariants:
//! * Every page but `/login`, `/setup` and `/static/*` needs a session; without one the
//!   visitor is sent to `/login`.
//! * Every form post but login and setup carries the session's CSRF token in a hidden `csrf`
//!   field and is refused (403) without it or when the browser says it comes from another site.
//! * Handlers only read forms, call one [`enclave_app::App`] use case with the session's
//!   caller and render its answer; the application authorizes and audits.
//! * Pages hide the forms and buttons the policy would refuse (asking it through the use
//!   cases, e.g. [`enclave_app::App::can`]); hiding is never the protection: a forged post is
//!   decided by its use case like any other.
//! * Pages never contain passwords or session secrets; an API token's secret appears once, on
//!   the page right after its creation.

mod admin;
mod audit;
mod environments;
mod grants;
mod guard;
mod identity;
mod jobs;
mod login;
mod me;
mod notebooks;
mod page;
mod policies;
mod projects;
mod secrets;

use crate::AppState;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

/// The stylesheet of every page.
const APP_CSS: &str = include_str!("../../static/app.css");

/// The icon of every page.
const FAVICON_SVG: &str = include_str!("../../static/favicon.svg");

/// The passkey ceremonies (the console's only script).
const WEBAUTHN_JS: &str = include_str!("../../static/webauthn.js");

/// A static asset with its content type, cacheable for an hour.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
}

/// Console routes: pages, form actions and static assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route(
            "/static/webauthn.js",
            get(|| async { asset("text/javascript; charset=utf-8", WEBAUTHN_JS) }),
        )
        .route("/login", get(login::login_form).post(login::login))
        .route("/login/mfa", post(login::login_mfa))
        .route("/auth/oidc/{name}/start", get(login::oidc_start))
        .route("/auth/oidc/{name}/callback", get(login::oidc_callback))
        .route("/logout", post(login::logout))
        .route("/setup", get(login::setup_form).post(login::setup))
        .route("/", get(projects::dashboard))
        .route("/projects", post(projects::create))
        .route("/projects/{name}", get(projects::show))
        .route("/projects/{name}/members", post(projects::set_member))
        .route(
            "/projects/{name}/members/{username}/remove",
            post(projects::remove_member),
        )
        .route(
            "/projects/{name}/description",
            post(projects::set_description),
        )
        .route("/projects/{name}/delete", post(projects::delete))
        .route("/projects/{name}/settings", post(projects::set_settings))
        .route("/projects/{name}/grants", post(grants::request))
        .route(
            "/projects/{name}/grants/{id}/approve",
            post(grants::approve),
        )
        .route("/projects/{name}/grants/{id}/deny", post(grants::deny))
        .route("/projects/{name}/grants/{id}/revoke", post(grants::revoke))
        .route("/projects/{name}/roles", post(grants::bind))
        .route("/projects/{name}/roles/{id}/remove", post(grants::unbind))
        .route(
            "/projects/{name}/policies",
            post(policies::create_in_project),
        )
        .route(
            "/projects/{name}/policies/new",
            get(policies::new_in_project),
        )
        .route(
            "/policies",
            get(policies::list).post(policies::create_platform),
        )
        .route("/policies/new", get(policies::new_platform))
        .route("/policies/{id}", get(policies::show).post(policies::update))
        .route("/policies/{id}/delete", post(policies::delete))
        .route(
            "/policy/check",
            get(policies::explain_form).post(policies::explain),
        )
        .route("/policy/can", post(policies::can))
        .route("/admin/roles", get(admin::roles).post(admin::bind_role))
        .route("/admin/roles/{id}/remove", post(admin::unbind_role))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{username}/disable", post(admin::disable_user))
        .route("/admin/users/{username}/enable", post(admin::enable_user))
        .route("/admin/users/{username}/unlock", post(admin::unlock_user))
        .route(
            "/admin/users/{username}/revoke-sessions",
            post(admin::revoke_sessions),
        )
        .route("/admin/users/{username}/delete", post(admin::delete_user))
        .route("/admin/users/{username}/reset-mfa", post(admin::reset_mfa))
        .route("/admin/users/{username}/admin", post(admin::set_admin))
        .route("/admin/users/{username}/profile", post(admin::set_profile))
        .route(
            "/admin/users/{username}/password",
            post(admin::reset_password),
        )
        .route(
            "/admin/groups",
            get(admin::groups).post(admin::create_group),
        )
        .route("/admin/groups/{name}", get(admin::group))
        .route(
            "/admin/groups/{name}/members",
            post(admin::add_group_member),
        )
        .route(
            "/admin/groups/{name}/members/{username}/remove",
            post(admin::remove_group_member),
        )
        .route(
            "/admin/groups/{name}/description",
            post(admin::set_group_description),
        )
        .route("/admin/groups/{name}/delete", post(admin::delete_group))
        .route("/admin/groups/{name}/subgroups", post(admin::add_subgroup))
        .route(
            "/admin/groups/{name}/subgroups/remove",
            post(admin::remove_subgroup),
        )
        .route("/tokens", get(me::tokens).post(me::create_token))
        .route("/tokens/{id}/revoke", post(me::revoke_token))
        .route("/audit", get(audit::search))
        .route("/audit/my-work", get(audit::my_work))
        .route("/audit/key", get(audit::key))
        .route("/audit/key.json", get(audit::key_download))
        .route("/audit/export", get(audit::export))
        .route("/audit/verify", post(audit::verify))
        .route(
            "/projects/{name}/secrets",
            get(secrets::list)
                .post(secrets::set)
                .layer(axum::extract::DefaultBodyLimit::max(
                    secrets::SECRET_FORM_LIMIT,
                )),
        )
        .route("/projects/{name}/secrets/{secret}", get(secrets::show))
        .route(
            "/projects/{name}/secrets/{secret}/reveal",
            post(secrets::reveal),
        )
        .route(
            "/projects/{name}/secrets/{secret}/delete",
            post(secrets::delete),
        )
        .route("/projects/{name}/secret-plan", post(secrets::plan))
        .route("/projects/{name}/keys", get(secrets::keys))
        .route("/projects/{name}/keys/rotate", post(secrets::rotate))
        .route(
            "/projects/{name}/keys/{version}/retire",
            post(secrets::retire),
        )
        .route("/admin/keys", get(secrets::master))
        .route("/admin/keys/rotate", post(secrets::rotate_master))
        .route("/projects/{name}/jobs", get(jobs::list).post(jobs::submit))
        .route("/projects/{name}/jobs/{id}", get(jobs::show))
        .route("/projects/{name}/jobs/{id}/cancel", post(jobs::cancel))
        .route(
            "/projects/{name}/notebooks",
            get(notebooks::list).post(notebooks::create).layer(
                axum::extract::DefaultBodyLimit::max(crate::api::notebooks::NOTEBOOK_BODY_LIMIT),
            ),
        )
        .route("/projects/{name}/notebooks/{nb}", get(notebooks::show))
        .route(
            "/projects/{name}/notebooks/{nb}/start",
            post(notebooks::start),
        )
        .route(
            "/projects/{name}/notebooks/{nb}/stop",
            post(notebooks::stop),
        )
        .route(
            "/projects/{name}/notebooks/{nb}/delete",
            post(notebooks::delete),
        )
        .route("/projects/{name}/code-audit", post(notebooks::code_audit))
        .route(
            "/admin/environments",
            get(environments::list).post(environments::put).layer(
                axum::extract::DefaultBodyLimit::max(crate::api::notebooks::NOTEBOOK_BODY_LIMIT),
            ),
        )
        .route("/admin/environments/{env}", get(environments::show))
        .route("/admin/identity", get(identity::list).post(identity::put))
        .route("/admin/identity/{name}", get(identity::show))
        .route("/admin/identity/{name}/test", post(identity::test))
        .route("/admin/identity/{name}/claims", get(identity::claims))
        .route(
            "/admin/identity/{name}/scim-token",
            post(identity::scim_token),
        )
        .route("/admin/identity/{name}/sync", post(identity::sync))
        .route("/admin/identity/{name}/delete", post(identity::delete))
        .route("/admin/environments/{env}/build", post(environments::build))
        .route(
            "/admin/environments/{env}/delete",
            post(environments::delete),
        )
        .route("/account", get(me::account))
        .route("/account/password", post(me::change_password))
        .route("/account/mfa", get(me::mfa))
        .route("/account/mfa/enroll", post(me::mfa_enroll))
        .route("/account/mfa/confirm", post(me::mfa_confirm))
        .route("/account/mfa/disable", post(me::mfa_disable))
        .route("/account/mfa/passkeys/begin", post(me::passkey_begin))
        .route("/account/mfa/passkeys/finish", post(me::passkey_finish))
        .route(
            "/account/mfa/passkeys/{id}/remove",
            post(me::passkey_remove),
        )
}
