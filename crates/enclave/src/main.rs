//! `enclave`: the server (`serve`), local administration (`admin`, `config`) and the CLI client
//! (`login`, `users`, `projects`, …) in one binary. This file only wires the crates together.

mod backup;
mod master;
mod sandbox;
mod serve;
mod trail;

use clap::{Args, Parser, Subcommand};
use enclave_cli::{ClientCommand, OutputFormat};
use enclave_config::{LogFormat, Overrides};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Enclave: a secure, self-hosted data science platform.
#[derive(Parser, Debug)]
#[command(
    name = "enclave",
    version,
    about = "Enclave: a secure, self-hosted data science platform",
    propagate_version = true
)]
struct Cli {
    /// Output format of client commands.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the server (HTTPS API and web console).
    Serve(ServerFlags),
    /// Administration on the server host.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Restore an encrypted backup archive (from `enclave backup`) into a new data directory;
    /// needs the master key that made it.
    Restore(backup::RestoreArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// Flags shared by `serve` and `config check`; they override the file and the environment.
#[derive(Args, Debug, Clone, Default)]
struct ServerFlags {
    /// TOML configuration file (also `ENCLAVE_CONFIG`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (also `ENCLAVE_DATA_DIR`; default ./enclave-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address (also `ENCLAVE_LISTEN`; default 127.0.0.1:8443).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Base URL printed in links such as the setup URL.
    #[arg(long)]
    public_url: Option<String>,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only).
    #[arg(long)]
    insecure_plain_http: bool,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `enclave=debug`.
    #[arg(long)]
    log_level: Option<String>,
}

impl ServerFlags {
    fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            public_url: self.public_url.clone(),
            insecure_plain_http: self.insecure_plain_http,
            log_format: self.log_format,
            log_level: self.log_level.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    /// Create a platform admin directly in the data directory (for automation).
    Bootstrap {
        /// Data directory of the server.
        #[arg(long, env = "ENCLAVE_DATA_DIR", default_value = "./enclave-data")]
        data_dir: PathBuf,
        /// Username of the new admin.
        #[arg(long)]
        username: String,
        /// File holding the password (first line).
        #[arg(long)]
        password_file: PathBuf,
    },
    /// Create a passphrase-sealed master key (`master.sealed`) in a new data directory; the
    /// passphrase (at least 12 bytes) is read from the first line of standard input. Start the
    /// server with `keys.master = "passphrase"`, then `enclave unseal`.
    InitSealed {
        /// Data directory of the server.
        #[arg(long, env = "ENCLAVE_DATA_DIR", default_value = "./enclave-data")]
        data_dir: PathBuf,
        /// Read the passphrase from standard input (the only way; required for clarity).
        #[arg(long, required = true)]
        passphrase_stdin: bool,
    },
    /// Verify the audit trail in the data directory: hash chain and checkpoint signatures.
    /// Exits 0 when intact, 6 when tampered (naming the first bad record), 1 on errors.
    VerifyAudit {
        /// Data directory of the server.
        #[arg(long, env = "ENCLAVE_DATA_DIR", default_value = "./enclave-data")]
        data_dir: PathBuf,
        /// Start at the checkpoint with this sequence number (default: the beginning).
        #[arg(long)]
        from: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Validate the configuration (file, environment, flags) and report every error.
    Check(ServerFlags),
    /// Print a commented example configuration file with the defaults.
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.cmd {
            Cmd::Serve(flags) => serve::serve(flags.overrides()).await,
            Cmd::Admin(AdminCmd::Bootstrap {
                data_dir,
                username,
                password_file,
            }) => serve::bootstrap(&data_dir, &username, &password_file).await,
            Cmd::Admin(AdminCmd::InitSealed { data_dir, .. }) => master::init_sealed(&data_dir),
            Cmd::Admin(AdminCmd::VerifyAudit { data_dir, from }) => {
                serve::verify_audit(&data_dir, from).await
            }
            Cmd::Config(ConfigCmd::Check(flags)) => serve::check_config(&flags.overrides()),
            Cmd::Config(ConfigCmd::Example) => {
                print!("{}", enclave_config::Config::example_toml());
                0
            }
            Cmd::Restore(args) => backup::restore(&args),
            Cmd::Client(cmd) => enclave_cli::run(cmd, cli.output).await,
        }
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
