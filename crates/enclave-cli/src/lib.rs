//! Enclave's command-line client for the REST API (`/api/v1`, see `docs/API.md`).
//!
//! The `enclave` binary flattens [`ClientCommand`] into its top-level parser and calls [`run`].
//!
//! ```text
//! enclave login --server URL --username NAME --password-stdin [--ca FILE] [--token-name NAME] [--expires-in-days N] [--source LDAP] [--otp CODE]
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
//! enclave groups add-subgroup|remove-subgroup GROUP CHILD
//! enclave projects list [--limit N]
//! enclave projects create NAME [--description X] [--owner USER]
//! enclave projects show|delete NAME
//! enclave projects update NAME [--description X] [--classification C] [--requires-approval true|false]
//!                         [--tag KEY=VALUE]... [--remove-tag KEY]... [--clear-tags]
//! enclave projects members NAME [--limit N]
//! enclave projects set-member PROJECT USER --role owner|member|viewer
//! enclave projects remove-member PROJECT USER
//! enclave tokens list [--limit N]
//! enclave tokens create NAME [--scope read|full] [--project P]... [--expires-in-days N]
//! enclave tokens show|revoke ID
//! enclave policy list [--project P]
//! enclave policy show|delete ID
//! enclave policy create NAME [--project P] [--description X] (--file F | --stdin)
//! enclave policy update ID [--description X] [--file F | --stdin]
//! enclave policy check --principal WHO --action A --resource R [--context JSON]
//! enclave policy can --principal WHO --project P
//! enclave roles list [--project P]
//! enclave roles bind ROLE (--user U | --group G | --workload W) [--project P] [--expires-in DUR]
//! enclave roles unbind ID
//! enclave grants list --project P
//! enclave grants request --project P --role support|project_admin --reason TEXT --duration DUR
//! enclave grants approve|deny|revoke ID
//! enclave secrets list (--project P | --mine)
//! enclave secrets set NAME (--project P | --mine) (--from-file F | --from-stdin) [--description X]
//! enclave secrets versions|delete NAME (--project P | --mine)
//! enclave secrets get NAME (--project P | --mine) [--version N] [--out FILE]
//! enclave secrets plan --project P --map NAME=env:VAR|NAME=file:PATH ...
//! enclave keys status|rotate --project P
//! enclave keys retire --project P --version N
//! enclave keys master
//! enclave keys rotate-master
//! enclave jobs run --project P [--secret MAPPING]... [--cpus N] [--memory M] [--timeout T] [--detach] -- CMD...
//! enclave jobs list --project P
//! enclave jobs show|cancel|logs [--follow] ID --project P
//! enclave notebooks create NAME --project P [--env TEMPLATE] [--preset S] [--secret MAPPING]... [--no-wait]
//! enclave notebooks list --project P
//! enclave notebooks show|open|delete NAME --project P
//! enclave notebooks start|stop NAME --project P [--no-wait]
//! enclave notebooks code-audit --project P on|off
//! enclave envs list
//! enclave envs show|delete NAME
//! enclave envs put NAME (--python 3.N --package NAME==VERSION... --preset NAME:CPUS:MEMORY... | --file F) [--wait]
//! enclave envs build NAME [--no-wait]
//! enclave idp list
//! enclave idp show|delete|claims|scim-token|sync NAME
//! enclave idp put NAME --file FILE.json|FILE.toml|- [--client-secret-env VAR] [--bind-password-env VAR]
//! enclave idp test NAME [--username U]     (LDAP: password from stdin, or typed without echo)
//! enclave unseal --server URL [--ca FILE] --passphrase-stdin
//! enclave backup --out FILE [--force]
//! ```
//!
//! Backups: `backup` (platform admins) streams the server's encrypted archive into a
//! temporary file next to FILE (mode 0600) and renames it into place only when complete; an
//! existing FILE is kept unless `--force`. The archive opens only with the installation's
//! master key (`enclave restore`, a local command of the server binary).
//!
//! Secrets: values are read from a file or from all of stdin (any bytes, at most 64 KiB) and
//! sent once; no command prints a value except `secrets get`, which writes exactly the stored
//! bytes to stdout or to `--out FILE` (created 0600). `unseal` reads the passphrase from the
//! first line of stdin.
//!
//! Notebooks: `notebooks create` and `notebooks start` wait (polling every half second, at
//! most 5 minutes) until the server is `ready` and then print the URL to open (the server's
//! base URL plus the notebook's path) on stdout; a server that fails to start exits 1 with
//! the reason. `notebooks stop` waits until it has stopped. `envs build` (and `envs put
//! --wait`) follows a build's percent and latest message until it is ready, or exits 1 with
//! why it failed (at most 60 minutes). While waiting, progress goes to stderr: a spinner
//! line when stderr is a terminal, otherwise one line per change. Ctrl-C stops waiting, not
//! the server or the build.
//!
//! Policies, role bindings and grants: a custom policy is one Cedar `permit` or `forbid`, read
//! from `--file` or `--stdin` (UTF-8, at most 16 KiB, checked before anything is sent). When the
//! server refuses it, the error names the place as `FILE:LINE:COLUMN` and the offending line is
//! shown with a caret under the column. `policy check` simulates a request and prints `ALLOW` or
//! `DENY`, the explanation, the determining policy ids and the roles the principal holds; it
//! exits 0 for allow and 5 for deny (also with `--output json`), so scripts can branch on it.
//! `policy can` prints the actions a principal may do in a project, one per line. In
//! `projects update`, `--tag` adds or changes tags and keeps the others (the CLI reads the
//! current tags first, the server replaces the whole set); `--clear-tags` starts from none.
//! Durations (`--expires-in`, `--duration`) are a number with `s`, `m`, `h` or `d`, e.g. `30m`.
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
//! | 1 | local problem: config or credential file unreadable, not logged in, file not found, IO; also a job that did not succeed, a notebook server that failed to start (or is not running for `notebooks open`), a failed environment build, an identity source that failed `idp test`, and a wait that ran out of time |
//! | 2 | usage error: bad arguments or input (clap uses 2 as well) |
//! | 3 | refused by the server: any 4xx (unauthenticated, forbidden, not found, conflict, invalid input…) |
//! | 4 | server error (5xx), server unreachable, TLS failure or an answer that is not the API's |
//! | 5 | `policy check` only: the request was answered and the decision is deny ([`EXIT_DENIED`]) |

use std::io::{BufRead, BufReader, Write};

mod client;
mod commands;
mod config;
mod output;

pub use commands::idp::IdpCommand;

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
    /// Your second factor (TOTP): status, enroll, confirm, disable.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Custom Cedar policies, and what a principal may do (`check`, `can`).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Role bindings: give a user, group or workload a built-in role, platform-wide or in a
    /// project, optionally for a limited time.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Time-bound access grants to a project (support, project_admin): request, approve, deny,
    /// revoke.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// The tamper-evident audit trail: search, export, verify, the public key, and who accessed
    /// your work.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A project's secrets: set (new version), list, versions, get the value, delete, and
    /// check an injection plan. Values are never listed or echoed.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Encryption keys: a project's data key (status, rotate, retire) and the master key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Batch jobs in sandboxes on the project's private network: run (and follow the log),
    /// list, show, logs, cancel.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// JupyterLab notebook servers in a project: create (and wait until ready), list, show,
    /// open (print the URL), stop, start, delete, and the project's code-audit setting.
    #[command(subcommand)]
    Notebooks(NotebooksCommand),
    /// Environment templates notebook servers run (Python version, pinned packages, resource
    /// presets): list, show, put (create or replace, platform admins), build (and follow),
    /// delete.
    #[command(subcommand, alias = "environments")]
    Envs(EnvsCommand),
    /// Identity sources users sign in through (OIDC providers, LDAP directories; platform
    /// admins): list, show, put (from a JSON or TOML file), delete, test a sign-in, the last
    /// OIDC claims, the SCIM token, and a directory sync.
    #[command(subcommand)]
    Idp(IdpCommand),
    /// Download an encrypted backup archive of the whole installation (platform admins),
    /// made while the server keeps serving. Restore it with `enclave restore FILE --data-dir
    /// NEW --master-key KEYFILE`: keep the master key apart from the archives.
    Backup {
        /// Write the archive to this file (created with mode 0600).
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Replace FILE if it already exists.
        #[arg(long)]
        force: bool,
    },
    /// Unseal a server started with a passphrase-sealed master key.
    Unseal {
        /// Server base URL, e.g. https://127.0.0.1:8443.
        #[arg(long, value_name = "URL")]
        server: String,
        /// PEM file with the CA (or self-signed certificate) to trust.
        #[arg(long, value_name = "FILE")]
        ca: Option<std::path::PathBuf>,
        /// Read the passphrase from stdin (one line). Required: passphrases are never arguments.
        #[arg(long, required = true)]
        passphrase_stdin: bool,
    },
}

/// `jobs` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum JobsCommand {
    /// Run a job: `enclave jobs run --project P [--secret NAME=env:VAR]… -- CMD ARGS…`. Follows
    /// its log until it ends (exit status 0 only when the job succeeded), unless --detach.
    Run {
        /// Project.
        #[arg(long)]
        project: String,
        /// A secret it receives: NAME=env:VAR, NAME=file:/run/secrets/F, @NAME=… for your
        /// personal secret. Repeat for more.
        #[arg(long = "secret", value_name = "MAPPING")]
        secrets: Vec<String>,
        /// CPUs, e.g. 2 or 0.5 (default: the server's).
        #[arg(long)]
        cpus: Option<String>,
        /// Memory, e.g. 512M or 2G.
        #[arg(long)]
        memory: Option<String>,
        /// Time limit, e.g. 90s, 30m, 2h.
        #[arg(long)]
        timeout: Option<String>,
        /// Print the job's id and return at once.
        #[arg(long)]
        detach: bool,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// A project's jobs, newest first.
    List {
        /// Project.
        #[arg(long)]
        project: String,
    },
    /// One job's state, limits, secrets plan and exit code.
    Show {
        /// Job id.
        id: String,
        /// Project.
        #[arg(long)]
        project: String,
    },
    /// Print a job's log (stdout and stderr); --follow waits for more until it ends.
    Logs {
        /// Job id.
        id: String,
        /// Project.
        #[arg(long)]
        project: String,
        /// Keep printing until the job ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: String,
        /// Project.
        #[arg(long)]
        project: String,
    },
}

/// `notebooks` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NotebooksCommand {
    /// Create a notebook server and start it; waits until it is ready and prints the URL to
    /// open in your browser (exit 1 if it fails to start), unless --no-wait.
    ///
    /// Its files live on the project volume and outlive the server. The environment template
    /// must be built (`enclave envs list` shows which are ready).
    Create {
        /// Notebook server name: 2 to 40 lowercase letters, digits and single `-`, starting
        /// with a letter; unique in the project.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
        /// Environment template (default: the server's default, e.g. `datascience`).
        #[arg(long = "env", value_name = "TEMPLATE")]
        environment: Option<String>,
        /// Resource preset of the template, e.g. small, medium, large (default: its first).
        #[arg(long, value_name = "PRESET")]
        preset: Option<String>,
        /// A secret it receives: NAME=env:VAR, NAME=file:/run/secrets/F, @NAME=… for your
        /// personal secret. Repeat for more.
        #[arg(long = "secret", value_name = "MAPPING")]
        secrets: Vec<String>,
        /// Return as soon as the server accepted the request (state `starting`).
        #[arg(long)]
        no_wait: bool,
    },
    /// A project's notebook servers: state, owner, environment, preset and resources.
    List {
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
    },
    /// One notebook server: state (and why it stopped or failed), resources, secrets plan,
    /// code audit, times, and the URL to open.
    Show {
        /// Notebook server name.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
    },
    /// Print the URL to open a notebook server in your browser (it does not launch one).
    Open {
        /// Notebook server name.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
    },
    /// Start a stopped or failed notebook server again (same name, files and secrets plan);
    /// waits until it is ready and prints the URL, unless --no-wait.
    Start {
        /// Notebook server name.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
        /// Return as soon as the server accepted the request (state `starting`).
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop a notebook server; its files stay on the project volume. Waits until it has
    /// stopped, unless --no-wait.
    Stop {
        /// Notebook server name.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
        /// Return as soon as the server accepted the request (state `stopping`).
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a notebook server (stopping it first); its files stay on the project volume.
    Delete {
        /// Notebook server name.
        name: String,
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
    },
    /// Turn the recording of code executed in the project's notebooks (in the audit trail) on
    /// or off. Project owners; applies to servers started afterwards. On by default.
    CodeAudit {
        /// Project.
        #[arg(long, value_name = "P")]
        project: String,
        /// `on` or `off`.
        #[arg(value_enum)]
        setting: Switch,
    },
}

/// On or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Turn it on.
    On,
    /// Turn it off.
    Off,
}

/// A resource preset given as `NAME:CPUS:MEMORY`, e.g. `small:1:2G`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetArg {
    /// Preset name, e.g. `small`.
    pub name: String,
    /// CPUs, e.g. `1` or `0.5`.
    pub cpus: String,
    /// Memory, e.g. `2G` or `512M`.
    pub memory: String,
}

/// `envs` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum EnvsCommand {
    /// Every environment template with its build status.
    List,
    /// One template: build status (percent and latest message while building, the reason
    /// when it failed), presets, pinned packages and every installed package once built.
    Show {
        /// Template name.
        name: String,
    },
    /// Create or replace a template (platform admins); the server starts building it at once.
    ///
    /// Give it with flags (`--python`, `--package`… and `--preset`…) or as JSON with `--file`:
    /// `{"python": "3.11", "packages": ["jupyterlab==4.6.6", …], "presets": [{"name": "small",
    /// "cpus": "1", "memory": "2G"}, …]}` (the output of `enclave --output json envs show`
    /// works too). Pins must be exact and include jupyterlab and ipykernel; the first preset
    /// is the default. Follow the build with --wait or `enclave envs build NAME`.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["file", "python"])))]
    Put {
        /// Template name: 2 to 40 lowercase letters, digits and single `-`, starting with a
        /// letter.
        name: String,
        /// Python version, e.g. 3.11 (the server needs that interpreter installed).
        #[arg(long, value_name = "3.N", value_parser = parse_python,
            requires_all = ["packages", "presets"], conflicts_with = "file")]
        python: Option<String>,
        /// An exact pin NAME==VERSION, e.g. jupyterlab==4.6.6. Repeat for each package.
        #[arg(long = "package", value_name = "NAME==VERSION", value_parser = parse_pin,
            conflicts_with = "file")]
        packages: Vec<String>,
        /// A resource preset NAME:CPUS:MEMORY, e.g. small:1:2G or large:4:16G. Repeat for
        /// more; the first is the default.
        #[arg(long = "preset", value_name = "NAME:CPUS:MEMORY", value_parser = parse_preset,
            conflicts_with = "file")]
        presets: Vec<PresetArg>,
        /// Read the template as JSON from this file (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Follow the build that starts (like `envs build`) until it is ready or failed.
        #[arg(long)]
        wait: bool,
    },
    /// Build a template's environment (platform admins) and follow the progress until it is
    /// ready (exit 1 if the build fails), unless --no-wait. A built one is kept as it is; a
    /// build already under way is just followed.
    Build {
        /// Template name.
        name: String,
        /// Return as soon as the build is queued.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a template no notebook server uses (platform admins).
    Delete {
        /// Template name.
        name: String,
    },
}

/// `secrets` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SecretsCommand {
    /// List a project's secrets (names and metadata, never values).
    List {
        /// Project (or --mine for your personal secrets).
        #[arg(long, required_unless_present = "mine", conflicts_with = "mine")]
        project: Option<String>,
        /// Your personal secrets instead of a project's.
        #[arg(long)]
        mine: bool,
    },
    /// Create a secret, or add a new version of it.
    Set {
        /// Secret name, e.g. DB_PASSWORD.
        name: String,
        /// Project (or --mine for your personal secrets).
        #[arg(long, required_unless_present = "mine", conflicts_with = "mine")]
        project: Option<String>,
        /// Your personal secrets instead of a project's.
        #[arg(long)]
        mine: bool,
        /// Read the value from this file (any bytes).
        #[arg(
            long,
            conflicts_with = "from_stdin",
            required_unless_present = "from_stdin"
        )]
        from_file: Option<std::path::PathBuf>,
        /// Read the value from all of standard input (any bytes).
        #[arg(long)]
        from_stdin: bool,
        /// What the secret is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a secret's versions (never values).
    Versions {
        /// Secret name.
        name: String,
        /// Project (or --mine for your personal secrets).
        #[arg(long, required_unless_present = "mine", conflicts_with = "mine")]
        project: Option<String>,
        /// Your personal secrets instead of a project's.
        #[arg(long)]
        mine: bool,
    },
    /// Print a secret's value (needs its own permission; every read is audited).
    #[command(disable_version_flag = true)]
    Get {
        /// Secret name.
        name: String,
        /// Project (or --mine for your personal secrets).
        #[arg(long, required_unless_present = "mine", conflicts_with = "mine")]
        project: Option<String>,
        /// Your personal secrets instead of a project's.
        #[arg(long)]
        mine: bool,
        /// Version (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// Write the value to this new file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Delete a secret and every version of it.
    Delete {
        /// Secret name.
        name: String,
        /// Project (or --mine for your personal secrets).
        #[arg(long, required_unless_present = "mine", conflicts_with = "mine")]
        project: Option<String>,
        /// Your personal secrets instead of a project's.
        #[arg(long)]
        mine: bool,
    },
    /// Check what a job in the project would receive: each secret as an environment variable
    /// or a file under /run/secrets (mode 0400); `@NAME` is your personal secret NAME. No
    /// value is read.
    Plan {
        /// Project.
        #[arg(long)]
        project: String,
        /// NAME=env:VARIABLE or NAME=file:PATH (repeat).
        #[arg(long = "map", value_name = "MAPPING", required = true)]
        maps: Vec<String>,
    },
}

/// `keys` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// A project's data-key versions and re-encryption progress.
    Status {
        /// Project.
        #[arg(long)]
        project: String,
    },
    /// Add a version of a project's data key; existing data is re-encrypted in the background.
    Rotate {
        /// Project.
        #[arg(long)]
        project: String,
    },
    /// Retire an old version of a project's data key (once nothing uses it).
    #[command(disable_version_flag = true)]
    Retire {
        /// Project.
        #[arg(long)]
        project: String,
        /// The version to retire.
        #[arg(long)]
        version: u32,
    },
    /// The master key: provider, current key, keys still held.
    Master,
    /// Rotate the master key: every data key is rewrapped while the server keeps serving.
    RotateMaster,
}

/// `audit` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Search records, newest first: everything for auditors and admins, a project's records
    /// for its owners, your own actions otherwise.
    Search {
        /// Who (username).
        #[arg(long)]
        actor: Option<String>,
        /// Action, e.g. project.update or auth.login.
        #[arg(long)]
        action: Option<String>,
        /// Resource, e.g. project:fraud.
        #[arg(long)]
        resource: Option<String>,
        /// Project.
        #[arg(long)]
        project: Option<String>,
        /// success, denied or failure.
        #[arg(long)]
        outcome: Option<String>,
        /// At or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At or before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Most records to show (default 50).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write the trail as JSON Lines (header, records, signed checkpoints), verifiable offline
    /// with the public key.
    Export {
        /// Output format (only jsonl).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Start at the checkpoint with this sequence number.
        #[arg(long)]
        from: Option<u64>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Verify the hash chain and checkpoint signatures: on the server, or offline on an export
    /// with --export FILE --public-key KEY. Exits 6 when the trail was altered.
    Verify {
        /// Start at the checkpoint with this sequence number.
        #[arg(long)]
        from: Option<u64>,
        /// Verify this export file offline instead of asking the server.
        #[arg(long, requires = "public_key")]
        export: Option<std::path::PathBuf>,
        /// The installation's public key (base64 or hex), for --export.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Show the public key and the latest signed checkpoint, to keep outside.
    Key,
    /// Actions in your projects by people who are not members there (admins, support).
    MyWork {
        /// Most records to show (default 100).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Exit code of `audit verify` when the trail was altered.
pub const EXIT_TAMPERED: i32 = 6;

/// Exit code of `policy check` when the decision is deny (the request itself succeeded).
pub const EXIT_DENIED: i32 = 5;

/// Largest custom policy the CLI sends, in bytes (the server's limit).
pub const MAX_POLICY_BYTES: u64 = 16 * 1024;

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
    /// Check the password with this LDAP / Active Directory identity source (see
    /// `GET /api/v1/auth/sources`) instead of an Enclave password.
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// The current code of your authenticator app (or a recovery code), for an account with
    /// MFA; without it the code is read from the line after the password on stdin.
    #[arg(long, value_name = "CODE")]
    pub otp: Option<String>,
}

/// `mfa` subcommands: your account's second factors (TOTP, passkeys).
#[derive(clap::Subcommand, Debug)]
pub enum MfaCommand {
    /// Show whether MFA is on, with TOTP and how many passkeys, and the recovery codes left.
    Status,
    /// List your passkeys. Passkeys are added in the console (Account → Two-factor
    /// authentication), where the browser can reach your authenticator.
    Passkeys,
    /// Remove one of your passkeys (not your last second factor: `disable` turns MFA off);
    /// reads your password from stdin.
    RemovePasskey {
        /// The passkey's id, as `enclave mfa passkeys` shows it.
        id: String,
        /// Read the password from stdin (one line). Required: passwords are never arguments.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Start enrolling an authenticator app: reads your password from stdin, prints the
    /// secret and the `otpauth://` URI (then run `enclave mfa confirm --code CODE`).
    Enroll {
        /// Read the password from stdin (one line). Required: passwords are never arguments.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Turn MFA on with a first code; prints the recovery codes once.
    Confirm {
        /// The current code of the authenticator app.
        #[arg(long, value_name = "CODE")]
        code: String,
    },
    /// Turn MFA off: reads your password from stdin and needs a current code or a recovery
    /// code.
    Disable {
        /// Read the password from stdin (one line). Required: passwords are never arguments.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// A current code or an unused recovery code.
        #[arg(long, value_name = "CODE")]
        code: String,
    },
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
    /// Show a user's second factors: TOTP and passkeys.
    Mfa {
        /// Username.
        name: String,
    },
    /// Remove a user's second factors (TOTP, passkeys, recovery codes) after they lost them,
    /// and end their sessions; they sign in with the password and may enrol again.
    ResetMfa {
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
    /// Nest a group in another: CHILD's members get the roles bound to GROUP.
    AddSubgroup {
        /// The parent group.
        group: String,
        /// The group to nest in it.
        child: String,
    },
    /// Take a nested group out of its parent.
    RemoveSubgroup {
        /// The parent group.
        group: String,
        /// The nested group.
        child: String,
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
    /// Change a project's description and the attributes policies can test.
    ///
    /// `--tag` adds or changes a tag and keeps the others (the current tags are read first);
    /// with `--clear-tags` the project keeps only the tags given with `--tag`.
    Update {
        /// Project name.
        name: String,
        /// New description.
        #[arg(long, value_name = "X")]
        description: Option<String>,
        /// Data classification label, e.g. public, internal, confidential, restricted.
        #[arg(long, value_name = "C")]
        classification: Option<String>,
        /// Set a tag (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Remove a tag (repeatable).
        #[arg(long = "remove-tag", value_name = "KEY", conflicts_with = "clear_tags")]
        remove_tags: Vec<String>,
        /// Remove all tags (before those given with --tag are set).
        #[arg(long)]
        clear_tags: bool,
        /// Whether support and project_admin access grants need a project owner's approval.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        requires_approval: Option<bool>,
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

/// `policy` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// List custom policies: the platform-wide ones, or a project's with --project.
    List {
        /// Project whose policies to list.
        #[arg(long, value_name = "P")]
        project: Option<String>,
    },
    /// Show a custom policy with its Cedar text.
    Show {
        /// Policy id.
        id: String,
    },
    /// Add a custom policy: one Cedar `permit` or `forbid`, from --file or --stdin.
    ///
    /// A project's policy may only concern that project's resources. If the server refuses
    /// the text, the error shows FILE:LINE:COLUMN and the offending line.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["file", "stdin"])))]
    Create {
        /// Policy name, unique in its scope.
        name: String,
        /// Project the policy belongs to (default: platform-wide, platform admins only).
        #[arg(long, value_name = "P")]
        project: Option<String>,
        /// Description.
        #[arg(long, value_name = "X")]
        description: Option<String>,
        /// Read the Cedar text from this file (UTF-8, at most 16 KiB).
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Read the Cedar text from stdin.
        #[arg(long)]
        stdin: bool,
    },
    /// Change a custom policy's description or Cedar text.
    Update {
        /// Policy id.
        id: String,
        /// New description.
        #[arg(long, value_name = "X")]
        description: Option<String>,
        /// Read the new Cedar text from this file (UTF-8, at most 16 KiB).
        #[arg(long, value_name = "FILE", conflicts_with = "stdin")]
        file: Option<std::path::PathBuf>,
        /// Read the new Cedar text from stdin.
        #[arg(long)]
        stdin: bool,
    },
    /// Delete a custom policy.
    Delete {
        /// Policy id.
        id: String,
    },
    /// Ask whether a principal may do an action on a resource, and why.
    ///
    /// Prints ALLOW or DENY, the explanation, the determining policies and the principal's
    /// roles. Exit code 0 for allow, 5 for deny (with --output json too).
    Check {
        /// Who: `alice`, `user:alice` or `workload:ID`.
        #[arg(long, value_name = "WHO")]
        principal: String,
        /// Action, e.g. `project.read`.
        #[arg(long, value_name = "A")]
        action: String,
        /// Resource, e.g. `platform`, `project:fraud`, `user:bob`.
        #[arg(long, value_name = "R")]
        resource: String,
        /// Circumstances as a JSON object, e.g. '{"mfa":true,"source_ip":"10.0.0.5"}'.
        #[arg(long, value_name = "JSON", value_parser = parse_context)]
        context: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// List the actions a principal may do in a project, one per line.
    Can {
        /// Who: `alice`, `user:alice` or `workload:ID`.
        #[arg(long, value_name = "WHO")]
        principal: String,
        /// Project name.
        #[arg(long, value_name = "P")]
        project: String,
    },
}

/// `roles` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RolesCommand {
    /// List role bindings: the platform-wide ones, or a project's with --project.
    List {
        /// Project whose bindings to list.
        #[arg(long, value_name = "P")]
        project: Option<String>,
    },
    /// Bind a built-in role (e.g. data_scientist, viewer) to a user, group or workload.
    #[command(group(
        clap::ArgGroup::new("subject").required(true).args(["user", "group", "workload"])
    ))]
    Bind {
        /// Role name.
        role: String,
        /// Bind to this user.
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Bind to this group (and the groups nested in it).
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Bind to this workload id.
        #[arg(long, value_name = "W")]
        workload: Option<String>,
        /// Bind in this project (default: platform-wide).
        #[arg(long, value_name = "P")]
        project: Option<String>,
        /// Let the binding expire after this long: a number with s, m, h or d, e.g. `8h`.
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expires_in: Option<String>,
    },
    /// Remove a role binding.
    Unbind {
        /// Binding id.
        id: String,
    },
}

/// The role a time-bound grant gives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantRole {
    /// Read access for support work.
    Support,
    /// A project owner's rights.
    #[value(name = "project_admin", alias = "project-admin")]
    ProjectAdmin,
}

/// `grants` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GrantsCommand {
    /// List a project's access grants.
    List {
        /// Project name.
        #[arg(long, value_name = "P")]
        project: String,
    },
    /// Request time-bound access to a project.
    ///
    /// The grant starts at once when the project does not require approval; otherwise it is
    /// pending until a project owner approves it (`enclave grants approve ID`).
    Request {
        /// Project name.
        #[arg(long, value_name = "P")]
        project: String,
        /// Role to get.
        #[arg(long, value_enum)]
        role: GrantRole,
        /// Why, e.g. a ticket number (recorded in the audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// How long: a number with s, m, h or d, e.g. `2h` (at most the server's
        /// `[access] max_grant_duration`, 4h by default).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        duration: String,
    },
    /// Approve a pending grant (project owners; not your own).
    Approve {
        /// Grant id.
        id: String,
    },
    /// Deny a pending grant.
    Deny {
        /// Grant id.
        id: String,
    },
    /// End a grant before it expires.
    Revoke {
        /// Grant id.
        id: String,
    },
}

/// Parses `KEY=VALUE` (a non-empty key; the value may be empty).
fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. --tag team=fraud".to_string()),
    }
}

/// Checks a duration in the API's form: digits, then `s`, `m`, `h` or `d` (none means
/// seconds); it is sent as given.
fn parse_duration(text: &str) -> Result<String, String> {
    let digits = text.trim_end_matches(['s', 'm', 'h', 'd']);
    let unit_len = text.len() - digits.len();
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && unit_len <= 1 {
        Ok(text.to_string())
    } else {
        Err("expected a number with s, m, h or d, e.g. 30m, 8h or 2d".to_string())
    }
}

/// Checks a Python version of the form `3.N`.
fn parse_python(text: &str) -> Result<String, String> {
    match text.strip_prefix("3.") {
        Some(minor)
            if !minor.is_empty()
                && minor.len() <= 2
                && minor.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(text.to_string())
        }
        _ => Err("expected a Python version like 3.11".to_string()),
    }
}

/// Checks an exact package pin `NAME==VERSION` (the server checks the names and versions).
fn parse_pin(text: &str) -> Result<String, String> {
    match text.split_once("==") {
        Some((name, version))
            if !name.trim().is_empty() && !version.trim().is_empty() && !version.contains('=') =>
        {
            Ok(text.to_string())
        }
        _ => Err(
            "expected an exact pin NAME==VERSION, e.g. jupyterlab==4.6.6 (no ranges)".to_string(),
        ),
    }
}

/// Whether `text` is a number of CPUs like `2` or `0.5`.
pub(crate) fn is_cpus(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
}

/// Whether `text` is a size like `512M`, `2G` or `2GiB`.
pub(crate) fn is_size(text: &str) -> bool {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    !digits.is_empty()
        && matches!(
            unit.to_ascii_uppercase().as_str(),
            "" | "B"
                | "K"
                | "KB"
                | "KIB"
                | "M"
                | "MB"
                | "MIB"
                | "G"
                | "GB"
                | "GIB"
                | "T"
                | "TB"
                | "TIB"
        )
}

/// Parses a preset `NAME:CPUS:MEMORY`, e.g. `small:1:2G`.
fn parse_preset(text: &str) -> Result<PresetArg, String> {
    let example = "expected NAME:CPUS:MEMORY, e.g. small:1:2G or large:4:16G";
    let parts: Vec<&str> = text.split(':').collect();
    let [name, cpus, memory] = parts.as_slice() else {
        return Err(example.to_string());
    };
    if name.is_empty() {
        return Err(format!("the preset name is empty; {example}"));
    }
    if !is_cpus(cpus) {
        return Err(format!(
            "`{cpus}` is not a number of CPUs like 2 or 0.5; {example}"
        ));
    }
    if !is_size(memory) {
        return Err(format!(
            "`{memory}` is not a memory size like 512M or 2G; {example}"
        ));
    }
    Ok(PresetArg {
        name: (*name).to_string(),
        cpus: (*cpus).to_string(),
        memory: (*memory).to_string(),
    })
}

/// Parses a JSON object.
fn parse_context(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object, e.g. '{\"mfa\":true}'".to_string()),
        Err(e) => Err(format!(
            "not valid JSON ({e}); expected an object, e.g. '{{\"mfa\":true}}'"
        )),
    }
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
    /// Whether `err` is a terminal, so waits may draw a spinner there.
    pub err_is_terminal: bool,
    /// Whether `stdin` is a terminal, so a password may be typed without echo.
    pub stdin_is_terminal: bool,
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
        err_is_terminal: stderr_is_terminal(),
        stdin_is_terminal: std::io::IsTerminal::is_terminal(&std::io::stdin()),
    };
    commands::execute(&mut ctx, cmd).await
}

/// Whether standard error is a terminal that can redraw a line (not `TERM=dumb`).
fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod mock_tests;
