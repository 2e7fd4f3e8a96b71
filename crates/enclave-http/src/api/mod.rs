//! The REST API under `/api/v1`, described by OpenAPI (utoipa).

pub(crate) mod audit;
mod backup;
pub mod dto;
mod extract;
mod governance;
mod groups;
pub mod identity;
pub mod jobs;
pub mod mfa;
pub mod notebooks;
mod projects;
mod secrets;
mod session;
mod tokens;
mod users;

use crate::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Enclave API", description = "Secure data science platform: accounts, groups, projects, tokens, policies, roles and access grants."),
    components(schemas(dto::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Setup, login, logout and the current identity"),
        (name = "users", description = "Accounts (platform admins)"),
        (name = "groups", description = "Groups of users (platform admins)"),
        (name = "projects", description = "Projects and their members"),
        (name = "tokens", description = "Personal API tokens"),
        (name = "audit", description = "The tamper-evident audit trail: search, export, verify, public key"),
        (name = "policy", description = "Cedar policies, explain, role bindings and time-bound access grants"),
        (name = "secrets", description = "Project secrets (values only on their own read), injection plans, data and master keys"),
        (name = "jobs", description = "Batch jobs in sandboxes on the project's private network: submit, follow the log, cancel"),
        (name = "notebooks", description = "Notebook servers (JupyterLab in sandboxes, opened through the gateway at /p/{project}/nb/{name}/) and the environment templates they run"),
        (name = "identity", description = "Identity sources: OIDC providers and LDAP / Active Directory directories, admission rules, group mappings, SCIM tokens (platform admins)"),
        (name = "backup", description = "Encrypted backups of the installation (platform admins)"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// Every API route with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::setup))
        .routes(routes!(session::login_token))
        .routes(routes!(session::login_session))
        .routes(routes!(session::logout))
        .routes(routes!(session::whoami))
        .routes(routes!(identity::login_options))
        .routes(routes!(identity::list))
        .routes(routes!(identity::get, identity::put, identity::delete))
        .routes(routes!(identity::test))
        .routes(routes!(identity::last_login))
        .routes(routes!(identity::scim_token))
        .routes(routes!(identity::sync))
        .routes(routes!(session::change_password))
        .routes(routes!(mfa::finish))
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::enroll))
        .routes(routes!(mfa::confirm))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::passkeys, mfa::add_passkey))
        .routes(routes!(mfa::passkey_options))
        .routes(routes!(mfa::remove_passkey))
        .routes(routes!(mfa::login_passkey_options))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::identity))
        .routes(routes!(users::mfa))
        .routes(routes!(users::reset_mfa))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::unlock))
        .routes(routes!(users::revoke_sessions))
        .routes(routes!(groups::list, groups::create))
        .routes(routes!(groups::get, groups::update, groups::delete))
        .routes(routes!(groups::members))
        .routes(routes!(groups::add_member, groups::remove_member))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(projects::members))
        .routes(routes!(projects::set_member, projects::remove_member))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get, tokens::revoke))
        .routes(routes!(groups::add_subgroup, groups::remove_subgroup))
        .routes(routes!(
            governance::list_policies,
            governance::create_policy
        ))
        .routes(routes!(
            governance::get_policy,
            governance::update_policy,
            governance::delete_policy
        ))
        .routes(routes!(governance::check))
        .routes(routes!(governance::can))
        .routes(routes!(governance::list_roles, governance::bind_role))
        .routes(routes!(governance::unbind_role))
        .routes(routes!(governance::list_grants, governance::request_grant))
        .routes(routes!(governance::approve_grant))
        .routes(routes!(governance::deny_grant))
        .routes(routes!(governance::revoke_grant))
        .routes(routes!(audit::search))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::key))
        .routes(routes!(audit::my_work))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::get, secrets::delete))
        .merge(OpenApiRouter::new().routes(routes!(secrets::put)).layer(
            axum::extract::DefaultBodyLimit::max(secrets::SECRET_BODY_LIMIT),
        ))
        .routes(routes!(secrets::value))
        .routes(routes!(secrets::list_mine))
        .routes(routes!(secrets::get_mine, secrets::delete_mine))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(secrets::put_mine))
                .layer(axum::extract::DefaultBodyLimit::max(
                    secrets::SECRET_BODY_LIMIT,
                )),
        )
        .routes(routes!(secrets::value_mine))
        .routes(routes!(secrets::plan))
        .routes(routes!(secrets::key_status))
        .routes(routes!(secrets::rotate))
        .routes(routes!(secrets::retire))
        .routes(routes!(secrets::master))
        .routes(routes!(secrets::rotate_master))
        .routes(routes!(jobs::list))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(jobs::submit))
                .layer(axum::extract::DefaultBodyLimit::max(jobs::JOB_BODY_LIMIT)),
        )
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::log))
        .routes(routes!(jobs::cancel))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(notebooks::list, notebooks::create))
                .routes(routes!(notebooks::get, notebooks::delete))
                .routes(routes!(notebooks::stop))
                .routes(routes!(notebooks::start))
                .routes(routes!(notebooks::code_audit))
                .routes(routes!(notebooks::list_environments))
                .routes(routes!(
                    notebooks::get_environment,
                    notebooks::put_environment,
                    notebooks::delete_environment
                ))
                .routes(routes!(notebooks::build_environment))
                .layer(axum::extract::DefaultBodyLimit::max(
                    notebooks::NOTEBOOK_BODY_LIMIT,
                )),
        )
        .routes(routes!(backup::create))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document, as served and as committed in `openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "auth", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    match openapi().to_pretty_json() {
        Ok(s) => ([(axum::http::header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(_) => crate::error::ApiError(enclave_core::Error::internal()).into_response(),
    }
}
