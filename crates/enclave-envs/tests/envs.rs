//! Builds real environments with real `uv` and `pip` from a real `pypi-server` on loopback
//! (the wheelhouse of `tests/notebooks/wheels.txt`; nothing leaves the machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use enclave_core::environments::{EnvTemplate, Preset};
use enclave_envs::{Builder, BuiltEnv, Error, Installer, Progress, Step, MANIFEST};
use enclave_testkit::pypi::{self, PyPi};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The Debian interpreter the wheelhouse was resolved for.
const PYTHON: &str = "3.11";

fn have_python() -> bool {
    if Path::new(&format!("/usr/bin/python{PYTHON}")).exists() {
        true
    } else {
        eprintln!("skipped: /usr/bin/python{PYTHON} is missing (the test wheels are for {PYTHON})");
        false
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A temporary envs_dir that other users may pass (as a real data directory is, 0711).
fn envs_dir() -> (TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let envs = d.path().join("envs");
    (d, envs)
}

fn template(name: &str, packages: &[&str]) -> EnvTemplate {
    EnvTemplate {
        name: name.to_string(),
        python: PYTHON.to_string(),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        presets: vec![Preset {
            name: "small".into(),
            cpu_millis: 1000,
            memory_bytes: 2 << 30,
        }],
    }
}

/// Pure-Python wheels from the wheelhouse, one with a console script (`pygmentize`).
const SMALL: [&str; 3] = ["six==1.17.0", "packaging==26.3", "pygments==2.21.0"];

fn build(b: &Builder, t: &EnvTemplate) -> (Result<BuiltEnv, Error>, Vec<Progress>) {
    let mut seen = Vec::new();
    let r = b.build(t, &mut |p| seen.push(p.clone()));
    (r, seen)
}

/// Entries of `envs_dir` other than the cache and lock files.
fn entries(envs: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(envs)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != ".cache" && !n.starts_with(".lock-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_progress(seen: &[Progress]) {
    assert!(!seen.is_empty());
    let mut last = 0;
    for p in seen {
        assert!(p.percent >= last, "percent went down: {seen:#?}");
        assert!(p.message.chars().count() <= enclave_envs::MAX_MESSAGE);
        last = p.percent;
    }
    let end = seen.last().unwrap();
    assert_eq!((end.step, end.percent), (Step::Done, 100));
    assert!(seen.iter().any(|p| p.step == Step::Installing), "{seen:#?}");
    assert!(seen.iter().any(|p| p.step == Step::Sealing), "{seen:#?}");
}

fn small_env_works(built: &BuiltEnv, installer: Installer) {
    assert_eq!(
        built.packages,
        ["packaging==26.3", "pygments==2.21.0", "six==1.17.0"],
        "{installer}"
    );
    assert_eq!(
        built.python,
        PathBuf::from(format!("/usr/bin/python{PYTHON}"))
    );
    let py = built.path.join("bin/python");
    let out = run_ok(Command::new(&py).args([
        "-c",
        "import sys, six, packaging; print(six.__version__, sys.prefix)",
    ]));
    assert_eq!(
        out.trim(),
        format!("1.17.0 {}", built.path.display()),
        "{installer}"
    );
    // The console script finds its interpreter next to itself, though it was installed under
    // the staging path.
    let out = run_ok(Command::new(built.path.join("bin/pygmentize")).arg("-V"));
    assert!(out.contains("2.21.0"), "{out}");
    // Bytecode is there, so a read-only tree costs no compile time.
    let pycache = built.path.join(format!(
        "lib/python{PYTHON}/site-packages/packaging/__pycache__"
    ));
    assert!(
        std::fs::read_dir(&pycache).unwrap().count() > 3,
        "{installer}: no bytecode in {}",
        pycache.display()
    );
    // Read-only for others, nothing writable by group or others, no set-id bits.
    for entry in walk(&built.path) {
        let m = std::fs::symlink_metadata(&entry).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = m.permissions().mode() & 0o7777;
        assert!(
            mode == 0o755 || mode == 0o644,
            "{installer}: {} has mode {mode:o}",
            entry.display()
        );
        if is_root() {
            assert_eq!((m.uid(), m.gid()), (0, 0), "{}", entry.display());
        }
    }
    // No trace of the staging path outside bytecode.
    for entry in walk(&built.path) {
        if entry.extension().is_some_and(|e| e == "pyc") || !entry.is_file() {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("/.build-"),
            "{installer}: {} names the staging directory",
            entry.display()
        );
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.push(p);
    }
    out
}

#[test]
fn uv_and_pip_build_a_small_environment_once() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    for installer in [Installer::Uv, Installer::Pip] {
        let (_d, envs) = envs_dir();
        // Credentials in the URL are used (pypi-server ignores them for downloads) but never
        // stored or shown.
        let url = index
            .index_url()
            .replace("http://", "http://ci-bot:Sup3r-Secret@");
        let b = Builder::new(envs.clone(), url, installer).unwrap();
        let t = template("small", &SMALL);
        assert!(b.built(&t).is_none());
        let started = Instant::now();
        let (r, seen) = build(&b, &t);
        let built = r.unwrap_or_else(|e| panic!("{installer}: {e}"));
        eprintln!(
            "{installer}: small environment built in {:?}",
            started.elapsed()
        );
        check_progress(&seen);
        for p in &seen {
            assert!(!p.message.contains("Sup3r-Secret"), "{}", p.message);
        }
        assert_eq!(built.path, b.path(&t));
        assert_eq!(
            built.path,
            envs.join(format!("small-{}", built.fingerprint))
        );
        small_env_works(&built, installer);
        let manifest = std::fs::read_to_string(built.path.join(MANIFEST)).unwrap();
        assert!(!manifest.contains("Sup3r-Secret") && !manifest.contains("ci-bot"));
        assert!(manifest.contains(&format!("\"index_url\": \"{}\"", index.index_url())));
        // Built once: the second call only reads the manifest.
        assert_eq!(b.built(&t).as_ref(), Some(&built));
        let (again, seen) = build(&b, &t);
        assert_eq!(again.unwrap(), built);
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0].message, "environment already built: 3 packages");
        assert_eq!(entries(&envs), [format!("small-{}", built.fingerprint)]);
        // The cache stays private to the server.
        let cache = std::fs::metadata(envs.join(".cache")).unwrap();
        assert_eq!(cache.permissions().mode() & 0o777, 0o700);
        eprintln!(
            "{installer}: cache holds {} entries",
            walk(&envs.join(".cache")).len()
        );
    }
}

#[test]
fn concurrent_builds_build_once() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    let (_d, envs) = envs_dir();
    let t = template("shared", &SMALL);
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            // A builder each, as two servers sharing the directory would have.
            let b = Builder::new(envs.clone(), index.index_url(), Installer::Uv).unwrap();
            let t = t.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                build(&b, &t)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let installed = results
        .iter()
        .filter(|(_, seen)| seen.iter().any(|p| p.step == Step::Installing))
        .count();
    assert_eq!(installed, 1, "exactly one builder installs");
    let a = results[0].0.as_ref().unwrap();
    let b = results[1].0.as_ref().unwrap();
    assert_eq!(a, b);
    let waited = results
        .iter()
        .find(|(_, seen)| !seen.iter().any(|p| p.step == Step::Installing))
        .unwrap();
    assert_eq!(waited.1.last().unwrap().step, Step::Done);
    assert_eq!(entries(&envs), [format!("shared-{}", a.fingerprint)]);
}

#[test]
fn a_failed_build_leaves_nothing() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    for installer in [Installer::Uv, Installer::Pip] {
        let (_d, envs) = envs_dir();
        let b = Builder::new(envs.clone(), index.index_url(), installer).unwrap();
        let t = template("broken", &["six==1.17.0", "no-such-package-enclave==1.0"]);
        let (r, seen) = build(&b, &t);
        let e = r.unwrap_err();
        let Error::Install { hint, log_tail } = &e else {
            panic!("{installer}: {e}")
        };
        assert!(
            hint.contains("pins of template 'broken' cannot be installed"),
            "{installer}: {hint}"
        );
        assert!(
            log_tail
                .iter()
                .any(|l| l.contains("no-such-package-enclave")),
            "{installer}: {log_tail:#?}"
        );
        assert!(e
            .to_string()
            .contains("last lines of the installer's output"));
        assert!(!seen.iter().any(|p| p.step == Step::Done));
        assert!(
            entries(&envs).is_empty(),
            "{installer}: {:?}",
            entries(&envs)
        );
        assert!(b.built(&t).is_none());
    }
}

#[test]
fn an_index_that_is_down_is_named() {
    if !have_python() {
        return;
    }
    let (_d, envs) = envs_dir();
    let url = format!("http://127.0.0.1:{}/simple/", pypi::free_port());
    let b = Builder::new(envs.clone(), url.clone(), Installer::Uv).unwrap();
    let e = build(&b, &template("offline", &["six==1.17.0"]))
        .0
        .unwrap_err();
    let Error::Install { hint, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        hint.contains(&format!("the package index {url} could not be reached")),
        "{hint}"
    );
    assert!(hint.contains("check the index URL"), "{hint}");
    assert!(entries(&envs).is_empty(), "{:?}", entries(&envs));
}

#[test]
fn missing_python_and_bad_templates_are_refused_before_anything_runs() {
    let (_d, envs) = envs_dir();
    let b = Builder::new(
        envs.clone(),
        "http://127.0.0.1:9/simple/".into(),
        Installer::Uv,
    )
    .unwrap();
    let mut t = template("future", &["six==1.17.0"]);
    t.python = "3.19".into();
    let e = build(&b, &t).0.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Python 3.19 is not installed on the server; install python3.19 (in /usr/bin or /usr/local/bin) or change the template's Python version"
    );
    let bad = template("bad", &["six==1.17.0", "--index-url==http://evil/"]);
    let e = build(&b, &bad).0.unwrap_err();
    assert!(matches!(e, Error::Template(_)), "{e}");
    assert!(entries(&envs).is_empty(), "{:?}", entries(&envs));
}

#[test]
fn the_time_limit_stops_a_build_and_keeps_nothing() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    let (_d, envs) = envs_dir();
    let b = Builder::new(envs.clone(), index.index_url(), Installer::Uv)
        .unwrap()
        .with_timeout(Duration::from_millis(1));
    let e = build(&b, &template("slow", &SMALL)).0.unwrap_err();
    assert!(matches!(e, Error::TimedOut { .. }), "{e}");
    assert!(e.to_string().contains("nothing was kept"), "{e}");
    assert!(entries(&envs).is_empty(), "{:?}", entries(&envs));
}

#[test]
fn remove_unused_keeps_what_is_asked_and_clears_leftovers() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    let (_d, envs) = envs_dir();
    let b = Builder::new(envs.clone(), index.index_url(), Installer::Uv).unwrap();
    let old = build(&b, &template("team", &["six==1.17.0"])).0.unwrap();
    let new = build(&b, &template("team", &["six==1.17.0", "packaging==26.3"]))
        .0
        .unwrap();
    assert_ne!(old.path, new.path);
    // What a crashed build leaves, and things that are not environments.
    let leftover = envs.join(format!(".build-team-{}-999999", old.fingerprint));
    std::fs::create_dir_all(leftover.join("lib")).unwrap();
    std::fs::write(envs.join("README"), "not an environment").unwrap();
    assert_eq!(b.remove_unused(std::slice::from_ref(&new.path)).unwrap(), 1);
    assert!(!old.path.exists() && !leftover.exists());
    assert!(new.path.join("bin/python").exists());
    assert!(envs.join("README").exists());
    assert_eq!(
        entries(&envs),
        ["README".to_string(), format!("team-{}", new.fingerprint)]
    );
    // Nothing else to remove; a removed environment is built again on demand.
    assert_eq!(b.remove_unused(std::slice::from_ref(&new.path)).unwrap(), 0);
    let rebuilt = build(&b, &template("team", &["six==1.17.0"])).0.unwrap();
    assert_eq!(rebuilt.path, old.path);
}

/// The real thing: JupyterLab and ipykernel (91 wheels), built with uv from the loopback index,
/// then started from the environment, as the server would and as an unprivileged user.
#[test]
fn jupyterlab_environment_runs_read_only() {
    if !have_python() {
        return;
    }
    let index = PyPi::start(&PyPi::wheels_dir());
    let (_d, envs) = envs_dir();
    let b = Builder::new(envs.clone(), index.index_url(), Installer::Uv).unwrap();
    let t = template("jupyter", &["jupyterlab==4.6.6", "ipykernel==7.4.0"]);
    t.check().unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let r = b.build(&t, &mut |p| {
        eprintln!(
            "{:>7.2}s {:?} {:>3}% {}",
            started.elapsed().as_secs_f64(),
            p.step,
            p.percent,
            p.message
        );
        seen.push(p.clone());
    });
    let built = r.unwrap();
    eprintln!(
        "uv: JupyterLab environment ({} packages) built in {:?}",
        built.packages.len(),
        started.elapsed()
    );
    check_progress(&seen);
    assert!(built.packages.contains(&"jupyterlab==4.6.6".to_string()));
    assert!(built.packages.contains(&"ipykernel==7.4.0".to_string()));
    let py = built.path.join("bin/python");
    run_ok(Command::new(&py).args(["-c", "import ipykernel, zmq, tornado"]));
    if !is_root() {
        let version = run_ok(Command::new(&py).args(["-m", "jupyterlab", "--version"]));
        assert_eq!(version.trim(), "4.6.6");
        let version = run_ok(Command::new(built.path.join("bin/jupyter-lab")).arg("--version"));
        assert_eq!(version.trim(), "4.6.6");
        eprintln!("skipped the unprivileged-user and mount checks: they need root");
        return;
    }
    // As an unprivileged uid (what a sandbox user is on the host): it runs, and nothing in the
    // tree can be written or created.
    let nobody = |cmd: &mut Command| -> String {
        cmd.uid(65534).gid(65534).env("HOME", "/nonexistent");
        run_ok(cmd)
    };
    let version = nobody(Command::new(&py).args(["-m", "jupyterlab", "--version"]));
    assert_eq!(version.trim(), "4.6.6");
    let probe = r#"
import os, sys
bad = []
for d, dirs, files in os.walk(sys.argv[1]):
    try:
        open(os.path.join(d, ".enclave-write-probe"), "w").close()
        bad.append(d)
    except OSError:
        pass
    for f in files:
        p = os.path.join(d, f)
        if os.path.islink(p):
            continue
        try:
            open(p, "a").close()
            bad.append(p)
        except OSError:
            pass
print(len(bad), *bad[:5])
"#;
    let out = nobody(
        Command::new(format!("/usr/bin/python{PYTHON}"))
            .args(["-c", probe])
            .arg(&built.path),
    );
    assert_eq!(out.trim(), "0", "writable by an unprivileged user: {out}");

    // Mounted read-only at another path, as sandboxes see it.
    if !Path::new("/opt").is_dir() || Command::new("unshare").arg("--help").output().is_err() {
        eprintln!("skipped the mount check: needs /opt and unshare");
        return;
    }
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /opt; mkdir -p {m}; mount --bind -o ro '{src}' {m}; \
         {m}/bin/jupyter-lab --version; {m}/bin/python -c 'import sys; print(sys.prefix)'",
        m = enclave_envs::MOUNT_PATH,
        src = built.path.display()
    );
    let out = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["4.6.6", enclave_envs::MOUNT_PATH]
    );
}
