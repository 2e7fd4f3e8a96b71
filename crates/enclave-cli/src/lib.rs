//! Enclave's command-line client for the REST API (`/api/v1`, see `docs/API.md`).
//!
//! The `enclave` binary flattens [`ClientCommand`] into its top-level parser and calls [`run`].
//!
//! ```text
//! enclave login --server URL --username NAME --password-stdin [--ca FILE] [--token-name NAME] [--expires-in-days N]
//! enclave whoami
//! enclave logout
//! enclave passwd --password-stdin          (current, then new password, one line each)
//! enclave users list [--limit N]
//! enclave users create NAME --password-stdin [--display-name X] [--email X] [--admin]
//! enclave users show|delete|unlock|revoke-sessions NAME
//! enclave users update NAME [--display-name X] [--email X] [--disable|--enable] [--admin true|false]
//! enclave users reset-password NAME --password-stdin
//! enclave groups list [--limit N]
//! enclave groups create NAME [--description X]
//! enclave groups show|delete NAME
//! enclave groups update NAME --description X
//! enclave groups members NAME [--limit N]
//! enclave groups add-member|remove-member GROUP USER
//! enclave projects list [--limit N]
//! enclave projects create NAME [--description X] [--owner USER]
//! enclave projects show|delete NAME
//! enclave projects update NAME --description X
//! enclave projects members NAME [--limit N]
//! enclave projects set-member PROJECT USER --role owner|member|viewer
//! enclave projects remove-member PROJECT USER
//! enclave tokens list [--limit N]
//! enclave tokens create NAME [--scope read|full] [--project P]... [--expires-in-days N]
//! enclave tokens show|revoke ID
//! ```
//!
//! `login` stores `{server, username, token, token_id}` in `credentials.json` (mode 0600) in the
//! config directory (mode 0700): `$ENCLAVE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/enclave`, else
//! `$HOME/.config/enclave`. With `--ca FILE` the PEM file is copied to `ca.pem` there and only
//! that CA is trusted afterwards; without it the system roots are used.
//!
//! With `--output json` the server's JSON is printed (a list as one array of all items);
//! otherwise tables and `key: value` lines. Errors go to stderr as
//! `error: <message> (<code>)` followed by `hint: …`. Tokens and passwords are never printed,
//! except the new secret of `tokens create`, shown once.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | local problem: config or credential file unreadable, not logged in, file not found, IO |
//! | 2 | usage error: bad arguments or input (clap uses 2 as well) |
//! | 3 | refused by the server: any 4xx (unauthenticated, forbidden, not found, conflict, invalid input…) |
//! | 4 | server error (5xx), server unreachable, TLS failure or an answer that is not the API's |

use std::io::{BufRead, BufReader, Write};

mod client;
mod commands;
mod config;
mod output;

/// Client subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Log in to an Enclave server and store a personal API token for the CLI.
    Login(LoginArgs),
    /// Show the user and credential the CLI uses.
    Whoami,
    /// Revoke the stored token on the server and forget the local credentials.
    Logout,
    /// Change your own password: reads the current password, then the new one, from stdin
    /// (one line each). Your browser sessions end; API tokens stay valid.
    Passwd {
        /// Read both passwords from stdin. Required: passwords are never arguments.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Manage users (platform admins).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage groups (platform admins).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Manage projects and their members.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Manage your personal API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

/// Output format, a global flag `--output text|json` defined by the binary.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable tables and `key: value` lines.
    #[default]
    Text,
    /// The server's JSON (lists as one array of all items).
    Json,
}

/// Arguments of `login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Server base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Username to log in as.
    #[arg(long, value_name = "NAME")]
    pub username: String,
    /// Read the password from stdin (one line). Required: passwords are never arguments.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// PEM file with the CA (or self-signed certificate) to trust instead of the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// Name of the token created for the CLI (default `cli@<hostname>`).
    #[arg(long, value_name = "NAME")]
    pub token_name: Option<String>,
    /// Let the token expire after this many days (default: the server's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub expires_in_days: Option<u32>,
}

/// Stop a list after this many items (default: fetch all pages).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct ListArgs {
    /// Show at most N items.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// `users` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// List users.
    List(ListArgs),
    /// Create a user; the password is read from stdin.
    Create {
        /// Username.
        name: String,
        /// Read the password from stdin (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Display name.
        #[arg(long, value_name = "X")]
        display_name: Option<String>,
        /// Email address.
        #[arg(long, value_name = "X")]
        email: Option<String>,
        /// Make the user a platform admin.
        #[arg(long)]
        admin: bool,
    },
    /// Show a user.
    Show {
        /// Username.
        name: String,
    },
    /// Change a user's attributes.
    Update {
        /// Username.
        name: String,
        /// New display name.
        #[arg(long, value_name = "X")]
        display_name: Option<String>,
        /// New email address.
        #[arg(long, value_name = "X")]
        email: Option<String>,
        /// Disable the account (ends its sessions and tokens).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable the account.
        #[arg(long)]
        enable: bool,
        /// Grant or remove platform admin rights.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        admin: Option<bool>,
    },
    /// Delete a user.
    Delete {
        /// Username.
        name: String,
    },
    /// Set a new password (read from stdin); ends the user's sessions.
    ResetPassword {
        /// Username.
        name: String,
        /// Read the password from stdin (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Clear a lockout after too many failed logins.
    Unlock {
        /// Username.
        name: String,
    },
    /// End all sessions of a user.
    RevokeSessions {
        /// Username.
        name: String,
    },
}

/// `groups` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GroupsCommand {
    /// List groups.
    List(ListArgs),
    /// Create a group.
    Create {
        /// Group name.
        name: String,
        /// Description.
        #[arg(long, value_name = "X")]
        description: Option<String>,
    },
    /// Show a group.
    Show {
        /// Group name.
        name: String,
    },
    /// Change a group's description.
    Update {
        /// Group name.
        name: String,
        /// New description.
        #[arg(long, value_name = "X")]
        description: String,
    },
    /// Delete a group.
    Delete {
        /// Group name.
        name: String,
    },
    /// List a group's members.
    Members {
        /// Group name.
        name: String,
        /// Paging.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Add a user to a group.
    AddMember {
        /// Group name.
        group: String,
        /// Username.
        user: String,
    },
    /// Remove a user from a group.
    RemoveMember {
        /// Group name.
        group: String,
        /// Username.
        user: String,
    },
}

/// A project role.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Manages the project and its members.
    Owner,
    /// Works in the project.
    Member,
    /// Reads the project.
    Viewer,
}

/// `projects` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ProjectsCommand {
    /// List the projects you can see.
    List(ListArgs),
    /// Create a project (platform admins).
    Create {
        /// Project name.
        name: String,
        /// Description.
        #[arg(long, value_name = "X")]
        description: Option<String>,
        /// Owner (default: you).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// Show a project.
    Show {
        /// Project name.
        name: String,
    },
    /// Change a project's description.
    Update {
        /// Project name.
        name: String,
        /// New description.
        #[arg(long, value_name = "X")]
        description: String,
    },
    /// Delete a project.
    Delete {
        /// Project name.
        name: String,
    },
    /// List a project's members and their roles.
    Members {
        /// Project name.
        name: String,
        /// Paging.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Add a member or change their role.
    SetMember {
        /// Project name.
        project: String,
        /// Username.
        user: String,
        /// Role.
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Remove a member (the last owner cannot be removed).
    RemoveMember {
        /// Project name.
        project: String,
        /// Username.
        user: String,
    },
}

/// A token scope.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only reads.
    Read,
    /// Everything your account may do.
    Full,
}

/// `tokens` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// List your tokens.
    List(ListArgs),
    /// Create a token; its secret is printed once.
    Create {
        /// Token name.
        name: String,
        /// Scope (default: the server's, `full`).
        #[arg(long, value_enum)]
        scope: Option<Scope>,
        /// Limit the token to this project (repeatable).
        #[arg(long = "project", value_name = "P")]
        projects: Vec<String>,
        /// Let the token expire after this many days.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        expires_in_days: Option<u32>,
    },
    /// Show a token (never its secret).
    Show {
        /// Token id.
        id: String,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Where a command reads and writes; [`run`] uses the process's stdio and environment.
pub(crate) struct Ctx<'a> {
    /// The config directory (`credentials.json`, `ca.pem`).
    pub config_dir: std::path::PathBuf,
    /// Source of `--password-stdin`.
    pub stdin: &'a mut (dyn BufRead + Send),
    /// Command output.
    pub out: &'a mut (dyn Write + Send),
    /// Warnings and errors.
    pub err: &'a mut (dyn Write + Send),
    /// The chosen output format.
    pub output: OutputFormat,
}

/// Runs one client command; returns the process exit code.
pub async fn run(cmd: ClientCommand, output: OutputFormat) -> i32 {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut stdin = BufReader::new(std::io::stdin());
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let config_dir = match config::config_dir_from(|k| std::env::var_os(k)) {
        Ok(dir) => dir,
        Err(f) => {
            let _ = err.write_all(f.render(&[]).as_bytes());
            return f.exit_code();
        }
    };
    let mut ctx = Ctx {
        config_dir,
        stdin: &mut stdin,
        out: &mut out,
        err: &mut err,
        output,
    };
    commands::execute(&mut ctx, cmd).await
}

#[cfg(test)]
mod mock_tests;
