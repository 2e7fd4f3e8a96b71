//! The commands: argument → request → output.

mod audit;
mod backup;
mod governance;
pub(crate) mod idp;
mod jobs;
mod notebooks;
mod secrets;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{parse_server_url, sanitize, ApiClient, Failure, Kind};
use crate::config::{self, Credentials, CA_FILE, CREDENTIALS_FILE};
use crate::output::{self, Column};
use crate::{
    ClientCommand, Ctx, GroupsCommand, ListArgs, LoginArgs, MfaCommand, OutputFormat,
    ProjectsCommand, Role, Scope, TokensCommand, UsersCommand,
};

/// Runs `cmd`, prints its error if any, and returns the exit code.
pub(crate) async fn execute(ctx: &mut Ctx<'_>, cmd: ClientCommand) -> i32 {
    let mut runner = Runner {
        ctx,
        secrets: Vec::new(),
        status: 0,
    };
    match runner.dispatch(cmd).await {
        Ok(()) => runner.status,
        Err(failure) => {
            let secrets: Vec<&str> = runner.secrets.iter().map(String::as_str).collect();
            let _ = runner
                .ctx
                .err
                .write_all(failure.render(&secrets).as_bytes());
            failure.exit_code()
        }
    }
}

struct Runner<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    /// Passwords and tokens seen by this command, redacted from error output.
    secrets: Vec<String>,
    /// Exit code of a command that succeeded (0, or [`crate::EXIT_DENIED`] for a deny).
    status: i32,
}

type Res = Result<(), Failure>;

fn limit(list: ListArgs) -> Option<usize> {
    list.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The tags a project has now (none when the server sends no `tags`).
async fn current_tags(client: &ApiClient, project: &str) -> Result<Map<String, Value>, Failure> {
    let current = client
        .call_json(Method::GET, &["projects", project], None)
        .await?;
    match current.get("tags") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(tags)) => Ok(tags.clone()),
        Some(_) => Err(Failure::server(
            "invalid_response",
            "the server's project has malformed `tags`",
            None,
        )),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Member => "member",
        Role::Viewer => "viewer",
    }
}

impl Runner<'_, '_> {
    async fn dispatch(&mut self, cmd: ClientCommand) -> Res {
        match cmd {
            ClientCommand::Login(args) => self.login(args).await,
            ClientCommand::Whoami => self.whoami().await,
            ClientCommand::Logout => self.logout().await,
            ClientCommand::Passwd { password_stdin: _ } => self.passwd().await,
            ClientCommand::Users(c) => self.users(c).await,
            ClientCommand::Groups(c) => self.groups(c).await,
            ClientCommand::Projects(c) => self.projects(c).await,
            ClientCommand::Tokens(c) => self.tokens(c).await,
            ClientCommand::Mfa(c) => self.mfa(c).await,
            ClientCommand::Policy(c) => self.policy(c).await,
            ClientCommand::Roles(c) => self.roles(c).await,
            ClientCommand::Grants(c) => self.grants(c).await,
            ClientCommand::Audit(c) => self.audit(c).await,
            ClientCommand::Secrets(c) => self.secrets(c).await,
            ClientCommand::Keys(c) => self.keys(c).await,
            ClientCommand::Jobs(c) => self.jobs(c).await,
            ClientCommand::Notebooks(c) => self.notebooks(c).await,
            ClientCommand::Envs(c) => self.envs(c).await,
            ClientCommand::Idp(c) => self.idp(c).await,
            ClientCommand::Backup { out, force } => self.backup(&out, force).await,
            ClientCommand::Unseal { server, ca, .. } => self.unseal(&server, ca.as_deref()).await,
        }
    }

    // ---- output helpers ----

    fn write_out(&mut self, text: &str) -> Res {
        self.ctx
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.ctx.out.flush())
            .map_err(|e| Failure::local("io", format!("cannot write output: {e}"), None))
    }

    fn warn(&mut self, text: &str) {
        let _ = writeln!(self.ctx.err, "warning: {text}");
    }

    fn json_text(value: &Value) -> String {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        text.push('\n');
        text
    }

    /// Prints one object: JSON as is, or `key: value` lines.
    fn show(&mut self, columns: &[Column], value: &Value) -> Res {
        let text = match self.ctx.output {
            OutputFormat::Json => Self::json_text(value),
            OutputFormat::Text => output::key_values(columns, value),
        };
        self.write_out(&text)
    }

    /// Prints a list: one JSON array, or a table.
    fn show_list(&mut self, columns: &[Column], items: Vec<Value>) -> Res {
        let text = match self.ctx.output {
            OutputFormat::Json => Self::json_text(&Value::Array(items)),
            OutputFormat::Text => output::table(columns, &items),
        };
        self.write_out(&text)
    }

    /// Like [`Runner::show`], with `prep` applied to the object first in text mode.
    fn show_as(&mut self, columns: &[Column], mut value: Value, prep: fn(&mut Value)) -> Res {
        if self.ctx.output == OutputFormat::Text {
            prep(&mut value);
        }
        self.show(columns, &value)
    }

    /// Like [`Runner::show_list`], with `prep` applied to each item first in text mode.
    fn show_list_as(
        &mut self,
        columns: &[Column],
        mut items: Vec<Value>,
        prep: fn(&mut Value),
    ) -> Res {
        if self.ctx.output == OutputFormat::Text {
            items.iter_mut().for_each(prep);
        }
        self.show_list(columns, items)
    }

    /// Confirms an action without a JSON answer: a line in text mode, nothing in JSON mode.
    fn done(&mut self, message: &str) -> Res {
        match self.ctx.output {
            OutputFormat::Json => Ok(()),
            OutputFormat::Text => self.write_out(&format!("{}\n", sanitize(message))),
        }
    }

    /// Prints the answer if there is one, else confirms.
    fn show_or_done(&mut self, columns: &[Column], value: Option<Value>, message: &str) -> Res {
        match value {
            Some(v) => self.show(columns, &v),
            None => self.done(message),
        }
    }

    // ---- input helpers ----

    /// Reads one more line from stdin (e.g. a code after the password); `None` at the end.
    fn read_line_opt(&mut self) -> Option<String> {
        let mut line = String::new();
        self.ctx.stdin.read_line(&mut line).ok()?;
        let l = line.trim().to_string();
        (!l.is_empty()).then_some(l)
    }

    /// Reads one line from stdin as a password (trailing newline stripped, empty refused).
    fn read_password(&mut self) -> Result<String, Failure> {
        let mut line = String::new();
        self.ctx.stdin.read_line(&mut line).map_err(|e| {
            Failure::local(
                "io",
                format!("cannot read the password from stdin: {e}"),
                None,
            )
        })?;
        let password = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line)
            .to_string();
        if password.is_empty() {
            return Err(Failure::usage(
                "empty password on stdin",
                Some(
                    "pipe the password in, e.g. `printf '%s\\n' \"$PASSWORD\" | enclave …`".into(),
                ),
            ));
        }
        self.secrets.push(password.clone());
        Ok(password)
    }

    /// The client for the logged-in server, with the stored token.
    fn client(&mut self) -> Result<(ApiClient, Credentials), Failure> {
        let (creds, warning) = config::require_credentials(&self.ctx.config_dir)?;
        self.secrets.push(creds.token.clone());
        if let Some(w) = warning {
            self.warn(&w);
        }
        let ca = config::load_ca(&self.ctx.config_dir)?;
        let client = ApiClient::new(&creds.server, ca.as_deref(), Some(creds.token.clone()))?;
        Ok((client, creds))
    }

    fn api(&mut self) -> Result<ApiClient, Failure> {
        Ok(self.client()?.0)
    }

    // ---- auth ----

    async fn login(&mut self, args: LoginArgs) -> Res {
        let server = parse_server_url(&args.server)?;
        let ca = match &args.ca {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Failure::local(
                    "io",
                    format!("cannot read the CA file {}: {e}", path.display()),
                    Some(
                        "give the path of the server's certificate (DATA_DIR/tls/cert.pem)".into(),
                    ),
                )
            })?),
        };
        let password = self.read_password()?;
        let client = ApiClient::new(&server, ca.as_deref(), None)?;
        let token_name = args.token_name.unwrap_or_else(config::default_token_name);
        let mut body = json!({"username": args.username, "password": password, "name": token_name});
        if let Some(source) = &args.source {
            body["source"] = json!(source);
        }
        if let Some(days) = args.expires_in_days {
            body["expires_in_days"] = json!(days);
        }
        let first = client
            .call_json(Method::POST, &["auth", "token"], Some(&body))
            .await;
        let mut created = match first {
            Err(f) if f.code == "mfa_required" => {
                let mfa_token = f
                    .details
                    .get("mfa_token")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.secrets.push(mfa_token.clone());
                let code = match args.otp.clone() {
                    Some(c) => c,
                    None => self.read_line_opt().unwrap_or_default(),
                };
                if code.is_empty() {
                    return Err(Failure::usage(
                        "this account uses a second factor",
                        Some(
                            "pass the current code of your authenticator app with --otp CODE (or a recovery code), or put it on the line after the password; an account with passkeys only can create a token in the console (/tokens)".into(),
                        ),
                    ));
                }
                self.secrets.push(code.clone());
                let second = json!({"mfa_token": mfa_token, "code": code, "kind": "token"});
                client
                    .call_json(Method::POST, &["auth", "mfa"], Some(&second))
                    .await?
            }
            other => other?,
        };
        let token = match created.as_object_mut().and_then(|o| o.remove("token")) {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => {
                return Err(Failure::server(
                    "invalid_response",
                    "the server's answer has no token",
                    Some(format!("is {server} an Enclave server?")),
                ))
            }
        };
        self.secrets.push(token.clone());
        let token_id = created.get("id").cloned().unwrap_or(Value::Null);

        let dir = self.ctx.config_dir.clone();
        let previous = config::load_credentials(&dir).ok().and_then(|(c, _)| c);
        config::ensure_dir(&dir)?;
        match &ca {
            Some(pem) => config::write_private(&dir, CA_FILE, pem)?,
            None => {
                config::remove(&dir, CA_FILE)?;
            }
        }
        let creds = Credentials {
            server: server.clone(),
            username: args.username.clone(),
            token: token.clone(),
            token_id: token_id.clone(),
        };
        config::save_credentials(&dir, &creds)?;

        // The CLI keeps one token per config dir: revoke the one this login replaced.
        if let Some(old) = previous.filter(|o| o.server == server && o.token != token) {
            self.secrets.push(old.token.clone());
            if let Ok(old_client) = ApiClient::new(&server, ca.as_deref(), Some(old.token)) {
                let _ = old_client
                    .call(Method::POST, &["auth", "logout"], &[], None)
                    .await;
            }
        }

        match self.ctx.output {
            OutputFormat::Json => self.write_out(&Self::json_text(&created)),
            OutputFormat::Text => self.write_out(&format!(
                "Logged in to {server} as {}; token `{}` (id {}) stored in {}.\n",
                sanitize(&args.username),
                output::cell(created.get("name")),
                output::cell(Some(&token_id)),
                dir.join(CREDENTIALS_FILE).display(),
            )),
        }
    }

    async fn whoami(&mut self) -> Res {
        let (client, creds) = self.client()?;
        let me = client.call_json(Method::GET, &["whoami"], None).await?;
        if self.ctx.output == OutputFormat::Json {
            return self.write_out(&Self::json_text(&me));
        }
        let user = me.get("user").cloned().unwrap_or(Value::Null);
        let auth_columns: &[Column] = &[
            ("", "method"),
            ("", "token_id"),
            ("", "scope"),
            ("", "projects"),
        ];
        let auth = me.get("auth").cloned().unwrap_or(Value::Null);
        let mut pairs = output::object_pairs(output::USER, &user);
        pairs.push(("server".into(), sanitize(&creds.server)));
        pairs.extend(
            output::object_pairs(auth_columns, &auth)
                .into_iter()
                .map(|(k, v)| {
                    let key = if k == "method" { "auth".to_string() } else { k };
                    (key, v)
                }),
        );
        self.write_out(&output::pairs_to_text(&pairs))
    }

    async fn mfa(&mut self, cmd: MfaCommand) -> Res {
        match cmd {
            MfaCommand::Status => {
                let v = self
                    .api()?
                    .call_json(Method::GET, &["me", "mfa"], None)
                    .await?;
                let cols: [Column; 6] = [
                    ("MFA ON", "enabled"),
                    ("TOTP", "totp"),
                    ("PASSKEYS", "passkeys"),
                    ("WAITING FOR FIRST CODE", "pending_confirmation"),
                    ("RECOVERY CODES LEFT", "recovery_codes_left"),
                    ("REQUIRED", "required"),
                ];
                self.show(&cols, &v)
            }
            MfaCommand::Passkeys => {
                let v = self
                    .api()?
                    .call_json(Method::GET, &["me", "mfa", "passkeys"], None)
                    .await?;
                let cols: [Column; 5] = [
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("SYNCED", "backup_eligible"),
                    ("ADDED", "created_at"),
                    ("LAST USED", "last_used_at"),
                ];
                let items = v.as_array().cloned().unwrap_or_default();
                self.show_list(&cols, items)
            }
            MfaCommand::RemovePasskey { id, .. } => {
                let password = self.read_password()?;
                self.api()?
                    .call(
                        Method::POST,
                        &["me", "mfa", "passkeys", &id, "remove"],
                        &[],
                        Some(&json!({"password": password})),
                    )
                    .await?;
                self.done("The passkey is removed.")
            }
            MfaCommand::Enroll { .. } => {
                let password = self.read_password()?;
                let mut v = self
                    .api()?
                    .call_json(
                        Method::POST,
                        &["me", "mfa", "totp"],
                        Some(&json!({"password": password})),
                    )
                    .await?;
                for k in ["secret", "otpauth_uri"] {
                    if let Some(s) = v.get(k).and_then(Value::as_str) {
                        self.secrets.push(s.to_string());
                    }
                }
                if let Some(o) = v.as_object_mut() {
                    o.remove("qr_svg");
                }
                match self.ctx.output {
                    OutputFormat::Json => self.write_out(&Self::json_text(&v)),
                    OutputFormat::Text => self.write_out(&format!(
                        "Add this key to your authenticator app (time-based, 6 digits):\n  {}\nor open: {}\nThen run `enclave mfa confirm --code CODE`.\n",
                        output::cell(v.get("secret")),
                        output::cell(v.get("otpauth_uri")),
                    )),
                }
            }
            MfaCommand::Confirm { code } => {
                let v = self
                    .api()?
                    .call_json(
                        Method::POST,
                        &["me", "mfa", "totp", "confirm"],
                        Some(&json!({"code": code})),
                    )
                    .await?;
                match self.ctx.output {
                    OutputFormat::Json => self.write_out(&Self::json_text(&v)),
                    OutputFormat::Text => {
                        let codes: Vec<String> = v["recovery_codes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(|c| format!("  {}\n", sanitize(c)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        self.write_out(&format!(
                            "MFA is on. Recovery codes (each works once; shown only now):\n{}",
                            codes.concat()
                        ))
                    }
                }
            }
            MfaCommand::Disable { code, .. } => {
                let password = self.read_password()?;
                self.api()?
                    .call(
                        Method::POST,
                        &["me", "mfa", "disable"],
                        &[],
                        Some(&json!({"password": password, "code": code})),
                    )
                    .await?;
                self.done("MFA is off.")
            }
        }
    }

    async fn passwd(&mut self) -> Res {
        let current = self.read_password()?;
        let new = self.read_password()?;
        let body = json!({"current_password": current, "new_password": new});
        let client = self.api()?;
        client
            .call(Method::POST, &["me", "password"], &[], Some(&body))
            .await?;
        self.done("Password changed; your browser sessions were ended.")
    }

    async fn logout(&mut self) -> Res {
        let dir = self.ctx.config_dir.clone();
        let creds = match config::load_credentials(&dir) {
            Ok((Some(c), _)) => c,
            Ok((None, _)) => {
                config::remove(&dir, CA_FILE)?;
                let _ = writeln!(self.ctx.err, "Not logged in; nothing to do.");
                return Ok(());
            }
            Err(f) => {
                // An unreadable file cannot be used to revoke anything; remove it anyway.
                config::remove(&dir, CREDENTIALS_FILE)?;
                config::remove(&dir, CA_FILE)?;
                return Err(f);
            }
        };
        let revoked = match self.client() {
            Ok((client, _)) => {
                client
                    .call(Method::POST, &["auth", "logout"], &[], None)
                    .await
            }
            Err(f) => Err(f),
        };
        config::remove(&dir, CREDENTIALS_FILE)?;
        config::remove(&dir, CA_FILE)?;
        match revoked {
            Ok(_) => self.done(&format!(
                "Logged out of {}; the token was revoked.",
                creds.server
            )),
            Err(f) if f.kind == Kind::Refused && f.code == "unauthenticated" => {
                self.done(&format!(
                    "Logged out of {}; the token was already invalid.",
                    creds.server
                ))
            }
            Err(f) => {
                self.warn(&format!(
                    "the local credentials were removed, but the token (id {}) could not be \
                     revoked on the server; it stays valid until it expires or is revoked \
                     (`enclave tokens revoke ID` or the console)",
                    output::cell(Some(&creds.token_id))
                ));
                Err(f)
            }
        }
    }

    // ---- users ----

    async fn users(&mut self, cmd: UsersCommand) -> Res {
        use output::USER;
        match cmd {
            UsersCommand::List(l) => {
                let items = self.api()?.list(&["users"], limit(l)).await?;
                self.show_list(USER, items)
            }
            UsersCommand::Create {
                name,
                password_stdin: _,
                display_name,
                email,
                admin,
            } => {
                let password = self.read_password()?;
                let mut body = json!({"username": name, "password": password});
                if let Some(d) = display_name {
                    body["display_name"] = json!(d);
                }
                if let Some(e) = email {
                    body["email"] = json!(e);
                }
                if admin {
                    body["platform_admin"] = json!(true);
                }
                let user = self
                    .api()?
                    .call_json(Method::POST, &["users"], Some(&body))
                    .await?;
                self.show(USER, &user)
            }
            UsersCommand::Show { name } => {
                let user = self
                    .api()?
                    .call_json(Method::GET, &["users", &name], None)
                    .await?;
                self.show(USER, &user)
            }
            UsersCommand::Mfa { name } => {
                let v = self
                    .api()?
                    .call_json(Method::GET, &["users", &name, "mfa"], None)
                    .await?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&v));
                }
                self.show(
                    &[
                        ("TOTP", "totp"),
                        ("RECOVERY CODES LEFT", "recovery_codes_left"),
                    ],
                    &v,
                )?;
                let keys = v["passkeys"].as_array().cloned().unwrap_or_default();
                self.show_list(
                    &[
                        ("PASSKEY", "name"),
                        ("SYNCED", "backup_eligible"),
                        ("ADDED", "created_at"),
                        ("LAST USED", "last_used_at"),
                    ],
                    keys,
                )
            }
            UsersCommand::ResetMfa { name } => {
                self.api()?
                    .call(Method::POST, &["users", &name, "mfa", "reset"], &[], None)
                    .await?;
                self.done(&format!(
                    "The second factors of {} are removed and their sessions ended.",
                    sanitize(&name)
                ))
            }
            UsersCommand::Update {
                name,
                display_name,
                email,
                disable,
                enable,
                admin,
            } => {
                let mut body = Map::new();
                if let Some(d) = display_name {
                    body.insert("display_name".into(), json!(d));
                }
                if let Some(e) = email {
                    body.insert("email".into(), json!(e));
                }
                if disable || enable {
                    body.insert("disabled".into(), json!(disable));
                }
                if let Some(a) = admin {
                    body.insert("platform_admin".into(), json!(a));
                }
                if body.is_empty() {
                    return Err(Failure::usage(
                        "nothing to change",
                        Some("give --display-name, --email, --disable, --enable or --admin true|false".into()),
                    ));
                }
                let body = Value::Object(body);
                let client = self.api()?;
                let user = client
                    .call_json(Method::PATCH, &["users", &name], Some(&body))
                    .await?;
                self.show(USER, &user)
            }
            UsersCommand::Delete { name } => {
                self.api()?
                    .call(Method::DELETE, &["users", &name], &[], None)
                    .await?;
                self.done(&format!("Deleted user {name}."))
            }
            UsersCommand::ResetPassword {
                name,
                password_stdin: _,
            } => {
                let password = self.read_password()?;
                let body = json!({"password": password});
                let client = self.api()?;
                client
                    .call(
                        Method::POST,
                        &["users", &name, "password"],
                        &[],
                        Some(&body),
                    )
                    .await?;
                self.done(&format!(
                    "Password of {name} reset; their sessions were ended."
                ))
            }
            UsersCommand::Unlock { name } => {
                self.api()?
                    .call(Method::POST, &["users", &name, "unlock"], &[], None)
                    .await?;
                self.done(&format!("Unlocked user {name}."))
            }
            UsersCommand::RevokeSessions { name } => {
                let client = self.api()?;
                client
                    .call(
                        Method::POST,
                        &["users", &name, "revoke-sessions"],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Ended all sessions of {name}."))
            }
        }
    }

    // ---- groups ----

    async fn groups(&mut self, cmd: GroupsCommand) -> Res {
        use output::{GROUP, GROUP_MEMBER};
        match cmd {
            GroupsCommand::List(l) => {
                let items = self.api()?.list(&["groups"], limit(l)).await?;
                self.show_list(GROUP, items)
            }
            GroupsCommand::Create { name, description } => {
                let mut body = json!({"name": name});
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                let group = self
                    .api()?
                    .call_json(Method::POST, &["groups"], Some(&body))
                    .await?;
                self.show(GROUP, &group)
            }
            GroupsCommand::Show { name } => {
                let group = self
                    .api()?
                    .call_json(Method::GET, &["groups", &name], None)
                    .await?;
                self.show(GROUP, &group)
            }
            GroupsCommand::Update { name, description } => {
                let body = json!({"description": description});
                let client = self.api()?;
                let group = client
                    .call_json(Method::PATCH, &["groups", &name], Some(&body))
                    .await?;
                self.show(GROUP, &group)
            }
            GroupsCommand::Delete { name } => {
                self.api()?
                    .call(Method::DELETE, &["groups", &name], &[], None)
                    .await?;
                self.done(&format!("Deleted group {name}."))
            }
            GroupsCommand::Members { name, list } => {
                let client = self.api()?;
                let items = client
                    .list(&["groups", &name, "members"], limit(list))
                    .await?;
                self.show_list(GROUP_MEMBER, items)
            }
            GroupsCommand::AddMember { group, user } => {
                let client = self.api()?;
                client
                    .call(
                        Method::PUT,
                        &["groups", &group, "members", &user],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Added {user} to group {group}."))
            }
            GroupsCommand::RemoveMember { group, user } => {
                let client = self.api()?;
                client
                    .call(
                        Method::DELETE,
                        &["groups", &group, "members", &user],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Removed {user} from group {group}."))
            }
            GroupsCommand::AddSubgroup { group, child } => {
                let client = self.api()?;
                client
                    .call(
                        Method::PUT,
                        &["groups", &group, "subgroups", &child],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Nested group {child} in group {group}."))
            }
            GroupsCommand::RemoveSubgroup { group, child } => {
                let client = self.api()?;
                client
                    .call(
                        Method::DELETE,
                        &["groups", &group, "subgroups", &child],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Took group {child} out of group {group}."))
            }
        }
    }

    // ---- projects ----

    async fn projects(&mut self, cmd: ProjectsCommand) -> Res {
        use output::{PROJECT, PROJECT_DETAILS, PROJECT_MEMBER};
        match cmd {
            ProjectsCommand::List(l) => {
                let items = self.api()?.list(&["projects"], limit(l)).await?;
                self.show_list(PROJECT, items)
            }
            ProjectsCommand::Create {
                name,
                description,
                owner,
            } => {
                let mut body = json!({"name": name});
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                if let Some(o) = owner {
                    body["owner"] = json!(o);
                }
                let client = self.api()?;
                let project = client
                    .call_json(Method::POST, &["projects"], Some(&body))
                    .await?;
                self.show(PROJECT_DETAILS, &project)
            }
            ProjectsCommand::Show { name } => {
                let client = self.api()?;
                let project = client
                    .call_json(Method::GET, &["projects", &name], None)
                    .await?;
                self.show(PROJECT_DETAILS, &project)
            }
            ProjectsCommand::Update {
                name,
                description,
                classification,
                tags,
                remove_tags,
                clear_tags,
                requires_approval,
            } => {
                let mut body = Map::new();
                if let Some(d) = description {
                    body.insert("description".into(), json!(d));
                }
                if let Some(c) = classification {
                    body.insert("classification".into(), json!(c));
                }
                if let Some(r) = requires_approval {
                    body.insert("requires_approval".into(), json!(r));
                }
                let tags_change = clear_tags || !tags.is_empty() || !remove_tags.is_empty();
                if body.is_empty() && !tags_change {
                    return Err(Failure::usage(
                        "nothing to change",
                        Some(
                            "give --description, --classification, --tag KEY=VALUE, \
                             --remove-tag KEY, --clear-tags or --requires-approval true|false"
                                .into(),
                        ),
                    ));
                }
                let client = self.api()?;
                if tags_change {
                    // The server replaces the whole tag set: start from the current one.
                    let mut current = if clear_tags {
                        Map::new()
                    } else {
                        current_tags(&client, &name).await?
                    };
                    for key in remove_tags {
                        if current.remove(&key).is_none() {
                            self.warn(&format!("project {name} has no tag `{}`", sanitize(&key)));
                        }
                    }
                    for (key, value) in tags {
                        current.insert(key, json!(value));
                    }
                    body.insert("tags".into(), Value::Object(current));
                }
                let body = Value::Object(body);
                let project = client
                    .call_json(Method::PATCH, &["projects", &name], Some(&body))
                    .await?;
                self.show(PROJECT_DETAILS, &project)
            }
            ProjectsCommand::Delete { name } => {
                self.api()?
                    .call(Method::DELETE, &["projects", &name], &[], None)
                    .await?;
                self.done(&format!("Deleted project {name}."))
            }
            ProjectsCommand::Members { name, list } => {
                let client = self.api()?;
                let items = client
                    .list(&["projects", &name, "members"], limit(list))
                    .await?;
                self.show_list(PROJECT_MEMBER, items)
            }
            ProjectsCommand::SetMember {
                project,
                user,
                role,
            } => {
                let body = json!({"role": role_name(role)});
                let client = self.api()?;
                let member = client
                    .call(
                        Method::PUT,
                        &["projects", &project, "members", &user],
                        &[],
                        Some(&body),
                    )
                    .await?;
                let message = format!("{user} is now {} of project {project}.", role_name(role));
                self.show_or_done(PROJECT_MEMBER, member, &message)
            }
            ProjectsCommand::RemoveMember { project, user } => {
                let client = self.api()?;
                client
                    .call(
                        Method::DELETE,
                        &["projects", &project, "members", &user],
                        &[],
                        None,
                    )
                    .await?;
                self.done(&format!("Removed {user} from project {project}."))
            }
        }
    }

    // ---- tokens ----

    async fn tokens(&mut self, cmd: TokensCommand) -> Res {
        use output::TOKEN;
        match cmd {
            TokensCommand::List(l) => {
                let items = self.api()?.list(&["tokens"], limit(l)).await?;
                self.show_list(TOKEN, items)
            }
            TokensCommand::Create {
                name,
                scope,
                projects,
                expires_in_days,
            } => {
                let mut body = json!({"name": name});
                if let Some(s) = scope {
                    body["scope"] = json!(match s {
                        Scope::Read => "read",
                        Scope::Full => "full",
                    });
                }
                if !projects.is_empty() {
                    body["projects"] = json!(projects);
                }
                if let Some(days) = expires_in_days {
                    body["expires_in_days"] = json!(days);
                }
                let created = self
                    .api()?
                    .call_json(Method::POST, &["tokens"], Some(&body))
                    .await?;
                if self.ctx.output == OutputFormat::Json {
                    return self.write_out(&Self::json_text(&created));
                }
                let mut details = created.clone();
                let secret = details.as_object_mut().and_then(|o| o.remove("token"));
                let mut pairs = output::object_pairs(TOKEN, &details);
                pairs.push(("token".into(), output::cell(secret.as_ref())));
                let mut text = output::pairs_to_text(&pairs);
                text.push_str("This token will not be shown again: store it now.\n");
                self.write_out(&text)
            }
            TokensCommand::Show { id } => {
                let token = self
                    .api()?
                    .call_json(Method::GET, &["tokens", &id], None)
                    .await?;
                self.show(TOKEN, &token)
            }
            TokensCommand::Revoke { id } => {
                let (client, creds) = self.client()?;
                client
                    .call(Method::DELETE, &["tokens", &id], &[], None)
                    .await?;
                self.done(&format!("Revoked token {id}."))?;
                if output::cell(Some(&creds.token_id)) == id {
                    self.warn("that was the CLI's own token: run `enclave login` again");
                }
                Ok(())
            }
        }
    }
}
