//! Wires the sandbox runtime into the server: where sandboxes keep their state, the project
//! volumes and networks, and what to do with leftovers of a previous run.

use enclave_app::{App, NotebookSettings, SandboxHost};
use enclave_config::Config;
use enclave_core::notebooks::CullPolicy;
use enclave_sandbox::net::NetConfig;
use enclave_sandbox::runc::RuncRuntime;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where this server's sandboxes keep bundles and runc state: a tmpfs directory named after
/// the data directory, so two servers on one host never touch each other's sandboxes.
fn runtime_dir(data_dir: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    PathBuf::from(format!(
        "/dev/shm/enclave-{}",
        enclave_sandbox::net::runtime_tag(&abs)
    ))
}

/// Every directory from `/` down to `dir` must let other users through (`o+x`): sandboxes
/// run as unprivileged host uids and mount the project volumes from under it.
fn check_traversable(dir: &Path) -> Result<(), String> {
    let mut p = PathBuf::new();
    for c in dir.components() {
        p.push(c);
        let m = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if m.permissions().mode() & 0o001 == 0 {
            return Err(format!(
                "{} does not let other users through, so sandboxes cannot reach the project volumes; run `chmod o+x {}` or move the data directory",
                p.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// Builds the sandbox host, or says why jobs cannot run here (not root, no runc, …).
fn host(cfg: &Config) -> Result<SandboxHost, String> {
    let euid = std::fs::metadata("/proc/self")
        .map_err(|e| format!("cannot read /proc/self: {e}"))?
        .uid();
    if euid != 0 {
        return Err("sandboxes need root (user namespaces with a uid range per project, cgroups and project networks); start Enclave as root".into());
    }
    let data_dir = std::fs::canonicalize(&cfg.data_dir)
        .map_err(|e| format!("{}: {e}", cfg.data_dir.display()))?;
    // The data directory stays unlistable; its files are 0600. Sandboxes only pass through.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| format!("{}: {e}", data_dir.display()))?;
    check_traversable(&data_dir)?;
    let net = NetConfig::new(
        &format!("{}/{}", cfg.sandbox.network.0, cfg.sandbox.network.1),
        cfg.sandbox.subnet_prefix,
    )
    .map_err(|e| e.to_string())?;
    let rt = RuncRuntime::new(&data_dir.join("sandbox"), &runtime_dir(&data_dir))
        .and_then(|rt| rt.with_network(net))
        .map_err(|e| e.to_string())?;
    // Nothing survives a restart: whatever this runtime finds was left by a crash.
    match rt.reap_orphans() {
        Ok(ids) if !ids.is_empty() => {
            tracing::warn!(
                count = ids.len(),
                "removed sandboxes left by an earlier run"
            )
        }
        Ok(_) => {}
        Err(e) => {
            return Err(format!(
                "cannot remove sandboxes left by an earlier run: {e}"
            ))
        }
    }
    Ok(SandboxHost {
        runtime: Arc::new(rt),
        volumes_dir: data_dir.join("volumes"),
        max_running: cfg.jobs.max_running,
        log_bytes: cfg.jobs.log_bytes,
        caps: cfg.jobs.caps,
        project_networks: true,
    })
}

/// The environment builder notebooks use.
fn notebooks(cfg: &Config) -> Result<enclave_envs::Builder, String> {
    let installer: enclave_envs::Installer = cfg
        .notebooks
        .installer
        .parse()
        .map_err(|e| format!("notebooks.installer: {e}"))?;
    let dir = cfg.notebooks.envs_dir(&cfg.data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    check_traversable(&dir)?;
    enclave_envs::Builder::new(dir, cfg.notebooks.index_url.clone(), installer)
        .map_err(|e| e.to_string())
}

/// The application with jobs enabled where this host can run sandboxes; otherwise the same
/// application, whose job requests answer "unavailable" (the reason is logged and printed).
pub async fn enable(app: App, cfg: &Config) -> App {
    let app = match host(cfg) {
        Ok(h) => app.with_sandbox(h),
        Err(why) => {
            tracing::warn!(reason = %why, "jobs are unavailable on this server");
            println!("Jobs are unavailable on this server: {why}");
            return app;
        }
    };
    let app = match notebooks(cfg) {
        Ok(builder) => app
            .with_environments(Arc::new(builder), cfg.notebooks.index_url.clone())
            .with_notebooks(NotebookSettings {
                cull: CullPolicy {
                    idle_secs: cfg.notebooks.idle_timeout.as_secs(),
                },
                start_timeout: cfg.notebooks.start_timeout,
                max_running: cfg.notebooks.max_running,
                subdomains: cfg.notebooks.subdomain_domain.is_some(),
            }),
        Err(why) => {
            tracing::warn!(reason = %why, "notebooks are unavailable on this server");
            println!("Notebooks are unavailable on this server: {why}");
            app
        }
    };
    match app.recover_notebooks().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            notebooks = n,
            "notebook servers that were running when the server stopped are marked stopped"
        ),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not record notebook servers interrupted by the last stop")
        }
    }
    if let Err(e) = app.seed_default_environment().await {
        tracing::warn!(error = %e.message, "could not add the default environment template");
    }
    match app.recover_jobs().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            jobs = n,
            "jobs that were running when the server stopped are marked failed"
        ),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not record jobs interrupted by the last stop")
        }
    }
    app
}
