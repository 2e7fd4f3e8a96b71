//! Read queries. Each returns domain records from `enclave-core`.

use crate::{map_err, Store, StoreError, StoreResult};
use enclave_core::audit::{AuditRecord, Outcome};
use enclave_core::model::{
    page_from, ApiToken, Group, Page, PageRequest, Project, ProjectRole, Session, TokenScope, User,
};
use enclave_core::throttle::ThrottleState;
use enclave_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const USER_COLS: &str =
    "u.id, u.username, u.display_name, u.email, u.platform_admin, u.disabled, u.created_at";

fn user(r: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: r.try_get("id").map_err(map_err)?,
        username: r.try_get("username").map_err(map_err)?,
        display_name: r.try_get("display_name").map_err(map_err)?,
        email: r.try_get("email").map_err(map_err)?,
        platform_admin: r.try_get("platform_admin").map_err(map_err)?,
        disabled: r.try_get("disabled").map_err(map_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
    })
}

fn group(r: &SqliteRow) -> StoreResult<Group> {
    Ok(Group {
        id: r.try_get("id").map_err(map_err)?,
        name: r.try_get("name").map_err(map_err)?,
        description: r.try_get("description").map_err(map_err)?,
        member_count: r.try_get("member_count").map_err(map_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
    })
}

fn project(r: &SqliteRow) -> StoreResult<Project> {
    Ok(Project {
        id: r.try_get("id").map_err(map_err)?,
        name: r.try_get("name").map_err(map_err)?,
        description: r.try_get("description").map_err(map_err)?,
        owner: r
            .try_get::<Option<String>, _>("owner")
            .map_err(map_err)?
            .unwrap_or_default(),
        member_count: r.try_get("member_count").map_err(map_err)?,
        classification: r.try_get("classification").map_err(map_err)?,
        tags: serde_json::from_str(&r.try_get::<String, _>("tags").map_err(map_err)?)
            .map_err(|_| StoreError::Corrupt("projects.tags"))?,
        requires_approval: r.try_get("requires_approval").map_err(map_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
    })
}

fn token(r: &SqliteRow) -> StoreResult<ApiToken> {
    let scope: String = r.try_get("scope").map_err(map_err)?;
    let projects: String = r.try_get("projects").map_err(map_err)?;
    Ok(ApiToken {
        id: r.try_get("id").map_err(map_err)?,
        user_id: r.try_get("user_id").map_err(map_err)?,
        name: r.try_get("name").map_err(map_err)?,
        scope: TokenScope::parse(&scope).ok_or(StoreError::Corrupt("api_tokens.scope"))?,
        projects: split_projects(&projects),
        created_at: Timestamp(r.try_get("created_at").map_err(map_err)?),
        expires_at: Timestamp(r.try_get("expires_at").map_err(map_err)?),
        last_used_at: r
            .try_get::<Option<i64>, _>("last_used_at")
            .map_err(map_err)?
            .map(Timestamp),
        revoked_at: r
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(map_err)?
            .map(Timestamp),
    })
}

fn split_projects(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn role(s: &str) -> StoreResult<ProjectRole> {
    ProjectRole::parse(s).ok_or(StoreError::Corrupt("project_members.role"))
}

const PROJECT_SELECT: &str = "SELECT p.id, p.name, p.description, p.created_at,
    p.classification, p.tags, p.requires_approval,
    (SELECT MIN(u.username) FROM project_members m JOIN users u ON u.id = m.user_id
       WHERE m.project_id = p.id AND m.role = 'owner') AS owner,
    (SELECT COUNT(*) FROM project_members m WHERE m.project_id = p.id) AS member_count
    FROM projects p";

/// A user with the stored password hash, for login.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The account.
    pub user: User,
    /// argon2id PHC string, if the account has a password.
    pub password_hash: Option<String>,
}

/// A page of the audit trail, for tests and (later) search.
pub type AuditPage = Vec<(i64, AuditRecord)>;

impl Store {
    /// Number of accounts (zero before setup).
    pub async fn count_users(&self) -> StoreResult<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        r.try_get("n").map_err(map_err)
    }

    /// One user with the password hash, where `column` (a fixed column name) equals `value`.
    async fn credentials_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> StoreResult<Option<UserCredentials>> {
        let sql = format!("SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.{column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok(UserCredentials {
                user: user(&r)?,
                password_hash: r.try_get("password_hash").map_err(map_err)?,
            })
        })
        .transpose()
    }

    /// A user by username, with the password hash.
    pub async fn user_credentials(&self, username: &str) -> StoreResult<Option<UserCredentials>> {
        self.credentials_where("username", username).await
    }

    /// A user by username.
    pub async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(self.user_credentials(username).await?.map(|c| c.user))
    }

    /// A user by id, with the password hash.
    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserCredentials>> {
        self.credentials_where("id", id).await
    }

    /// Users ordered by username.
    pub async fn list_users(&self, page: &PageRequest) -> StoreResult<Page<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username > $1 ORDER BY u.username LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows.iter().map(user).collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, |u| u.username.clone()))
    }

    /// A group by name.
    pub async fn group_by_name(&self, name: &str) -> StoreResult<Option<Group>> {
        let row = sqlx::query(
            "SELECT g.id, g.name, g.description, g.created_at,
               (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count
             FROM groups g WHERE g.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(group).transpose()
    }

    /// Groups ordered by name.
    pub async fn list_groups(&self, page: &PageRequest) -> StoreResult<Page<Group>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.description, g.created_at,
               (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count
             FROM groups g WHERE g.name > $1 ORDER BY g.name LIMIT $2",
        )
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows.iter().map(group).collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, |g| g.name.clone()))
    }

    /// Usernames of a group's members, ordered.
    pub async fn group_members(
        &self,
        group_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<String>> {
        let rows = sqlx::query(
            "SELECT u.username FROM group_members m JOIN users u ON u.id = m.user_id
             WHERE m.group_id = $1 AND u.username > $2 ORDER BY u.username LIMIT $3",
        )
        .bind(group_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| r.try_get::<String, _>("username").map_err(map_err))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, Clone::clone))
    }

    /// A project by name.
    pub async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        let sql = format!("{PROJECT_SELECT} WHERE p.name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(project).transpose()
    }

    /// Projects ordered by name, each with the role `user_id` has there: all of them, or (with
    /// `member_only`) only those where the user has a role.
    pub async fn list_projects(
        &self,
        page: &PageRequest,
        user_id: &str,
        member_only: bool,
    ) -> StoreResult<Page<(Project, Option<ProjectRole>)>> {
        // One query: the caller's role comes from a left join; `member` keeps only projects
        // where the caller has one.
        let filter = if member_only {
            "AND pm.role IS NOT NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT p.*, pm.role AS role FROM ({PROJECT_SELECT}) p
             LEFT JOIN project_members pm ON pm.project_id = p.id AND pm.user_id = $3
             WHERE p.name > $1 {filter} ORDER BY p.name LIMIT $2"
        );
        let q = sqlx::query(&sql)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit) + 1)
            .bind(user_id);
        let rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| {
                let role_name: Option<String> = r.try_get("role").map_err(map_err)?;
                Ok((project(r)?, role_name.as_deref().map(role).transpose()?))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, |(p, _)| p.name.clone()))
    }

    /// The user's role in the project, if any.
    pub async fn project_role(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<ProjectRole>> {
        let row =
            sqlx::query("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| role(&r.try_get::<String, _>("role").map_err(map_err)?))
            .transpose()
    }

    /// Members of a project with their roles, ordered by username.
    pub async fn project_members(
        &self,
        project_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<(String, ProjectRole)>> {
        let rows = sqlx::query(
            "SELECT u.username, m.role FROM project_members m JOIN users u ON u.id = m.user_id
             WHERE m.project_id = $1 AND u.username > $2 ORDER BY u.username LIMIT $3",
        )
        .bind(project_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("username").map_err(map_err)?,
                    role(&r.try_get::<String, _>("role").map_err(map_err)?)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, |(u, _)| u.clone()))
    }

    /// The session whose secret hashes to `secret_hash`, with its user.
    pub async fn session_by_hash(&self, secret_hash: &str) -> StoreResult<Option<(Session, User)>> {
        self.session_where("secret_hash", secret_hash).await
    }

    /// The session with this id, with its user.
    pub async fn session_by_id(&self, id: &str) -> StoreResult<Option<(Session, User)>> {
        self.session_where("id", id).await
    }

    async fn session_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> StoreResult<Option<(Session, User)>> {
        let sql = format!(
            "SELECT s.id AS sid, s.user_id, s.auth_method, s.amr, s.created_at AS s_created,
               s.last_seen_at, {USER_COLS}
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.{column} = $1"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok((
                Session {
                    id: r.try_get("sid").map_err(map_err)?,
                    user_id: r.try_get("user_id").map_err(map_err)?,
                    created_at: Timestamp(r.try_get("s_created").map_err(map_err)?),
                    last_seen_at: Timestamp(r.try_get("last_seen_at").map_err(map_err)?),
                    auth_method: r.try_get("auth_method").map_err(map_err)?,
                    amr: r.try_get("amr").map_err(map_err)?,
                },
                user(&r)?,
            ))
        })
        .transpose()
    }

    /// The token whose secret hashes to `secret_hash`, with its user (one query: this runs on
    /// every API request).
    pub async fn token_by_hash(&self, secret_hash: &str) -> StoreResult<Option<(ApiToken, User)>> {
        let sql = format!(
            "SELECT t.id AS tid, t.user_id, t.name AS tname, t.scope, t.projects,
               t.created_at AS t_created, t.expires_at, t.last_used_at, t.revoked_at, {USER_COLS}
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_hash = $1"
        );
        let row = sqlx::query(&sql)
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(r) = row else { return Ok(None) };
        let scope: String = r.try_get("scope").map_err(map_err)?;
        let projects: String = r.try_get("projects").map_err(map_err)?;
        let token = ApiToken {
            id: r.try_get("tid").map_err(map_err)?,
            user_id: r.try_get("user_id").map_err(map_err)?,
            name: r.try_get("tname").map_err(map_err)?,
            scope: TokenScope::parse(&scope).ok_or(StoreError::Corrupt("api_tokens.scope"))?,
            projects: split_projects(&projects),
            created_at: Timestamp(r.try_get("t_created").map_err(map_err)?),
            expires_at: Timestamp(r.try_get("expires_at").map_err(map_err)?),
            last_used_at: r
                .try_get::<Option<i64>, _>("last_used_at")
                .map_err(map_err)?
                .map(Timestamp),
            revoked_at: r
                .try_get::<Option<i64>, _>("revoked_at")
                .map_err(map_err)?
                .map(Timestamp),
        };
        Ok(Some((token, user(&r)?)))
    }

    /// A user's tokens (including expired and revoked), ordered by id.
    pub async fn tokens_of(
        &self,
        user_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiToken>> {
        let rows = sqlx::query(
            "SELECT t.id, t.user_id, t.name, t.scope, t.projects, t.created_at, t.expires_at,
               t.last_used_at, t.revoked_at FROM api_tokens t
             WHERE t.user_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3",
        )
        .bind(user_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows.iter().map(token).collect::<StoreResult<Vec<_>>>()?;
        Ok(page_from(items, page.limit, |t| t.id.clone()))
    }

    /// A token by its public id.
    pub async fn token_by_id(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT t.id, t.user_id, t.name, t.scope, t.projects, t.created_at, t.expires_at,
               t.last_used_at, t.revoked_at FROM api_tokens t WHERE t.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(token).transpose()
    }

    /// Throttle state for a key (default when none is stored).
    pub async fn throttle(&self, key: &str) -> StoreResult<ThrottleState> {
        let row = sqlx::query(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(r) = row else {
            return Ok(ThrottleState::default());
        };
        let failures: i64 = r.try_get("failures").map_err(map_err)?;
        Ok(ThrottleState {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            window_start: Timestamp(r.try_get("window_start").map_err(map_err)?),
            locked_until: r
                .try_get::<Option<i64>, _>("locked_until")
                .map_err(map_err)?
                .map(Timestamp),
        })
    }

    /// Throttle keys starting with `prefix` that are locked at `now` (one query for a whole
    /// list of accounts).
    pub async fn locked_keys(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<String>> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let rows =
            sqlx::query("SELECT key FROM login_throttle WHERE key LIKE $1 AND locked_until > $2")
                .bind(pattern)
                .bind(now.unix())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("key").map_err(map_err))
            .collect()
    }

    /// A setup token by hash: `(id, expires_at, used)`.
    pub async fn setup_token(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<(String, Timestamp, bool)>> {
        let row =
            sqlx::query("SELECT id, expires_at, used_at FROM setup_tokens WHERE secret_hash = $1")
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| {
            Ok((
                r.try_get("id").map_err(map_err)?,
                Timestamp(r.try_get("expires_at").map_err(map_err)?),
                r.try_get::<Option<i64>, _>("used_at")
                    .map_err(map_err)?
                    .is_some(),
            ))
        })
        .transpose()
    }

    /// Audit records with sequence number greater than `after`, oldest first.
    pub async fn audit_after(&self, after: i64, limit: u32) -> StoreResult<AuditPage> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, auth, source, action, resource, project, outcome, request_id,
               detail FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome").map_err(map_err)?;
                let detail: String = r.try_get("detail").map_err(map_err)?;
                let detail = serde_json::from_str(&detail)
                    .map_err(|_| StoreError::Corrupt("audit_events.detail"))?;
                Ok((
                    r.try_get("seq").map_err(map_err)?,
                    AuditRecord {
                        at: Timestamp(r.try_get("at").map_err(map_err)?),
                        actor: r.try_get("actor").map_err(map_err)?,
                        auth: r.try_get("auth").map_err(map_err)?,
                        source: r.try_get("source").map_err(map_err)?,
                        action: r.try_get("action").map_err(map_err)?,
                        resource: r.try_get("resource").map_err(map_err)?,
                        project: r.try_get("project").map_err(map_err)?,
                        outcome: match outcome.as_str() {
                            "success" => Outcome::Success,
                            "denied" => Outcome::Denied,
                            "failure" => Outcome::Failure,
                            _ => return Err(StoreError::Corrupt("audit_events.outcome")),
                        },
                        request_id: r.try_get("request_id").map_err(map_err)?,
                        detail,
                    },
                ))
            })
            .collect()
    }
}
