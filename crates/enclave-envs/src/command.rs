//! The command lines Enclave runs to build an environment, and where it finds the programs.
//! Pure except for the `find_*` lookups, which only look at the file system.

use crate::{Error, Installer, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Directories searched for `python3.N`: the ones sandboxes see read-only, so the interpreter a
/// venv points at exists inside every sandbox too (never pyenv or a home directory).
pub const PYTHON_DIRS: [&str; 2] = ["/usr/bin", "/usr/local/bin"];

/// Where sandboxes mount an environment. Activate scripts of pip-built environments name it;
/// console scripts find their interpreter relative to themselves and work anywhere.
pub const MOUNT_PATH: &str = "/opt/enclave/env";

/// PATH for the installer when the server has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One program to run: the program, its arguments and its complete environment (the child
/// starts from an empty one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cmd {
    /// Program to run (an absolute path).
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Every environment variable the child gets.
    pub env: Vec<(String, OsString)>,
}

impl Cmd {
    fn new(program: &Path) -> Cmd {
        Cmd {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }

    /// For messages and logs: the program and its arguments.
    pub fn shown(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// What every child needs to know about the host: the inherited PATH, HOME and LANG (nothing
/// else is inherited) and the builder's cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host {
    /// The server's PATH (installers may be wrappers that need it).
    pub path: Option<OsString>,
    /// The server's HOME.
    pub home: Option<OsString>,
    /// The server's LANG.
    pub lang: Option<OsString>,
    /// `envs_dir/.cache`.
    pub cache_dir: PathBuf,
}

impl Host {
    /// The host as the current process sees it.
    pub fn current(cache_dir: PathBuf) -> Host {
        Host {
            path: std::env::var_os("PATH"),
            home: std::env::var_os("HOME"),
            lang: std::env::var_os("LANG"),
            cache_dir,
        }
    }

    /// The cleared environment: PATH/HOME/LANG, plus settings that make both installers ignore
    /// user and global configuration, keyrings and `.netrc`, never download a Python, and
    /// keep their cache under the builder's directory.
    fn env(&self) -> Vec<(String, OsString)> {
        let mut env = vec![(
            "PATH".to_string(),
            self.path
                .clone()
                .unwrap_or_else(|| OsString::from(DEFAULT_PATH)),
        )];
        if let Some(home) = &self.home {
            env.push(("HOME".into(), home.clone()));
        }
        if let Some(lang) = &self.lang {
            env.push(("LANG".into(), lang.clone()));
        }
        let mut pip_cache = self.cache_dir.clone().into_os_string();
        pip_cache.push("/pip");
        let fixed: [(&str, OsString); 16] = [
            ("UV_PYTHON_DOWNLOADS", "never".into()),
            ("UV_NO_CONFIG", "1".into()),
            ("UV_CACHE_DIR", self.cache_dir.clone().into_os_string()),
            ("UV_LINK_MODE", "copy".into()),
            ("UV_KEYRING_PROVIDER", "disabled".into()),
            ("UV_SYSTEM_CERTS", "1".into()),
            ("UV_NO_PROGRESS", "1".into()),
            ("PIP_CONFIG_FILE", "/dev/null".into()),
            ("PIP_CACHE_DIR", pip_cache),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1".into()),
            ("PIP_NO_INPUT", "1".into()),
            ("PIP_KEYRING_PROVIDER", "disabled".into()),
            ("NETRC", "/dev/null".into()),
            ("NO_COLOR", "1".into()),
            ("PYTHONNOUSERSITE", "1".into()),
            ("PYTHONUNBUFFERED", "1".into()),
        ];
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        env
    }
}

/// Creates the empty venv at `staging`, based on `python` (a host interpreter).
pub(crate) fn venv(
    installer: Installer,
    tool: &Path,
    python: &Path,
    staging: &Path,
    host: &Host,
) -> Cmd {
    let mut cmd = match installer {
        // --relocatable: console scripts and activate find the venv relative to themselves,
        // so they work where sandboxes mount it.
        Installer::Uv => Cmd::new(tool)
            .arg("venv")
            .arg("--relocatable")
            .arg("--python")
            .arg(python)
            .arg(staging),
        Installer::Pip => Cmd::new(python)
            .arg("-m")
            .arg("venv")
            .arg("--without-pip")
            .arg(staging),
    };
    cmd.env = host.env();
    cmd
}

/// Installs the pins into the venv at `staging`, wheels only, from `index_url` alone.
pub(crate) fn install(
    installer: Installer,
    tool: &Path,
    staging: &Path,
    index_url: &str,
    packages: &[String],
    host: &Host,
) -> Cmd {
    let venv_python = staging.join("bin/python");
    let mut cmd = match installer {
        Installer::Uv => Cmd::new(tool)
            .arg("pip")
            .arg("install")
            .arg("--python")
            .arg(venv_python)
            .arg("--index-url")
            .arg(index_url)
            .arg("--only-binary")
            .arg(":all:")
            .arg("--compile-bytecode"),
        Installer::Pip => Cmd::new(tool)
            .arg("--python")
            .arg(venv_python)
            .arg("install")
            .arg("--index-url")
            .arg(index_url)
            .arg("--only-binary")
            .arg(":all:")
            .arg("--no-input")
            .arg("--progress-bar")
            .arg("off")
            .arg("--no-color"),
    };
    // Pins are checked (`name==version`, no leading '-'), and "--" ends the options anyway.
    cmd = cmd.arg("--");
    for p in packages {
        cmd = cmd.arg(p);
    }
    cmd.env = host.env();
    cmd
}

/// Compiles the bytecode of a pip-built venv (uv does it during the install), so a read-only
/// environment does not compile at every start.
pub(crate) fn compile(staging: &Path, python_version: &str, host: &Host) -> Cmd {
    let mut cmd = Cmd::new(&staging.join("bin/python"))
        .arg("-m")
        .arg("compileall")
        .arg("-q")
        .arg("-j")
        .arg("0")
        .arg(staging.join(format!("lib/python{python_version}/site-packages")));
    cmd.env = host.env();
    cmd
}

/// Lists the installed packages as `name==version` lines on stdout.
pub(crate) fn freeze(installer: Installer, tool: &Path, staging: &Path, host: &Host) -> Cmd {
    let venv_python = staging.join("bin/python");
    let mut cmd = match installer {
        Installer::Uv => Cmd::new(tool)
            .arg("pip")
            .arg("freeze")
            .arg("--python")
            .arg(venv_python),
        Installer::Pip => Cmd::new(tool)
            .arg("--python")
            .arg(venv_python)
            .arg("freeze")
            .arg("--all"),
    };
    cmd.env = host.env();
    cmd
}

/// `pip --version`, to check that pip knows `--python` (22.3 and later).
pub(crate) fn pip_version(tool: &Path, host: &Host) -> Cmd {
    let mut cmd = Cmd::new(tool).arg("--version");
    cmd.env = host.env();
    cmd
}

/// Parses `pip X.Y[.Z] from …`; true when X.Y is at least 22.3.
pub(crate) fn pip_supports_python_option(version_line: &str) -> Option<bool> {
    let rest = version_line.trim().strip_prefix("pip ")?;
    let version = rest.split_whitespace().next()?;
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts
        .next()
        .map(|m| {
            m.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Some((major, minor) >= (22, 3))
}

/// Finds `python{version}` in `dirs` (normally [`PYTHON_DIRS`]).
pub(crate) fn find_python(version: &str, dirs: &[&Path]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(format!("python{version}")))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::NoPython {
            version: version.to_string(),
        })
}

/// Finds the installer's program on `path` (the server's PATH).
pub(crate) fn find_tool(installer: Installer, path: Option<&OsString>) -> Result<PathBuf> {
    let name = installer.as_str();
    let search = path
        .cloned()
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    std::env::split_paths(&search)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            let other = match installer {
                Installer::Uv => "pip",
                Installer::Pip => "uv",
            };
            Error::NoInstaller(format!(
                "{name} is not installed on the server (not found on PATH); install it (pip install {}) or set the environments installer to {other}",
                match installer {
                    Installer::Uv => "uv",
                    Installer::Pip => "pip>=22.3",
                }
            ))
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn host() -> Host {
        Host {
            path: Some("/usr/bin:/bin".into()),
            home: Some("/root".into()),
            lang: None,
            cache_dir: "/srv/envs/.cache".into(),
        }
    }

    fn args(c: &Cmd) -> Vec<String> {
        c.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn env(c: &Cmd, k: &str) -> Option<String> {
        c.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string_lossy().into_owned())
    }

    #[test]
    fn uv_command_lines() {
        let h = host();
        let staging = Path::new("/srv/envs/.build-ds-0123456789abcdef-7");
        let v = venv(
            Installer::Uv,
            Path::new("/usr/local/bin/uv"),
            Path::new("/usr/bin/python3.11"),
            staging,
            &h,
        );
        assert_eq!(v.program, Path::new("/usr/local/bin/uv"));
        assert_eq!(
            args(&v),
            [
                "venv",
                "--relocatable",
                "--python",
                "/usr/bin/python3.11",
                "/srv/envs/.build-ds-0123456789abcdef-7"
            ]
        );
        let pins = vec!["six==1.17.0".to_string(), "packaging==26.3".to_string()];
        let i = install(
            Installer::Uv,
            Path::new("/usr/local/bin/uv"),
            staging,
            "https://mirror.example/simple/",
            &pins,
            &h,
        );
        assert_eq!(
            args(&i),
            [
                "pip",
                "install",
                "--python",
                "/srv/envs/.build-ds-0123456789abcdef-7/bin/python",
                "--index-url",
                "https://mirror.example/simple/",
                "--only-binary",
                ":all:",
                "--compile-bytecode",
                "--",
                "six==1.17.0",
                "packaging==26.3"
            ]
        );
        let f = freeze(Installer::Uv, Path::new("/usr/local/bin/uv"), staging, &h);
        assert_eq!(
            args(&f),
            [
                "pip",
                "freeze",
                "--python",
                "/srv/envs/.build-ds-0123456789abcdef-7/bin/python"
            ]
        );
    }

    #[test]
    fn pip_command_lines() {
        let h = host();
        let staging = Path::new("/e/.build-x-1");
        let v = venv(
            Installer::Pip,
            Path::new("/usr/bin/pip"),
            Path::new("/usr/bin/python3.11"),
            staging,
            &h,
        );
        assert_eq!(v.program, Path::new("/usr/bin/python3.11"));
        assert_eq!(args(&v), ["-m", "venv", "--without-pip", "/e/.build-x-1"]);
        let i = install(
            Installer::Pip,
            Path::new("/usr/bin/pip"),
            staging,
            "http://127.0.0.1:9/simple/",
            &["six==1.17.0".to_string()],
            &h,
        );
        assert_eq!(
            args(&i),
            [
                "--python",
                "/e/.build-x-1/bin/python",
                "install",
                "--index-url",
                "http://127.0.0.1:9/simple/",
                "--only-binary",
                ":all:",
                "--no-input",
                "--progress-bar",
                "off",
                "--no-color",
                "--",
                "six==1.17.0"
            ]
        );
        let c = compile(staging, "3.11", &h);
        assert_eq!(c.program, Path::new("/e/.build-x-1/bin/python"));
        assert_eq!(
            args(&c),
            [
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "/e/.build-x-1/lib/python3.11/site-packages"
            ]
        );
        let f = freeze(Installer::Pip, Path::new("/usr/bin/pip"), staging, &h);
        assert_eq!(
            args(&f),
            ["--python", "/e/.build-x-1/bin/python", "freeze", "--all"]
        );
    }

    #[test]
    fn environment_is_cleared_and_pinned() {
        let c = venv(
            Installer::Uv,
            Path::new("/u"),
            Path::new("/usr/bin/python3.11"),
            Path::new("/s"),
            &host(),
        );
        let names: Vec<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
        // Only these names: nothing of the server's own environment but PATH/HOME/LANG.
        for n in &names {
            assert!(
                ["PATH", "HOME", "LANG", "NETRC", "NO_COLOR"].contains(n)
                    || n.starts_with("UV_")
                    || n.starts_with("PIP_")
                    || n.starts_with("PYTHON"),
                "{n}"
            );
        }
        assert_eq!(env(&c, "PATH").unwrap(), "/usr/bin:/bin");
        assert_eq!(env(&c, "UV_PYTHON_DOWNLOADS").unwrap(), "never");
        assert_eq!(env(&c, "UV_NO_CONFIG").unwrap(), "1");
        assert_eq!(env(&c, "UV_CACHE_DIR").unwrap(), "/srv/envs/.cache");
        assert_eq!(env(&c, "PIP_CONFIG_FILE").unwrap(), "/dev/null");
        assert_eq!(env(&c, "PIP_CACHE_DIR").unwrap(), "/srv/envs/.cache/pip");
        assert_eq!(env(&c, "PIP_DISABLE_PIP_VERSION_CHECK").unwrap(), "1");
        assert_eq!(env(&c, "NETRC").unwrap(), "/dev/null");
        assert!(env(&c, "LANG").is_none());
        let no_path = Host {
            path: None,
            ..host()
        };
        let c = freeze(Installer::Uv, Path::new("/u"), Path::new("/s"), &no_path);
        assert_eq!(env(&c, "PATH").unwrap(), DEFAULT_PATH);
    }

    #[test]
    fn pip_versions() {
        assert_eq!(
            pip_supports_python_option(
                "pip 22.3 from /usr/lib/python3/dist-packages/pip (python 3.11)"
            ),
            Some(true)
        );
        assert_eq!(pip_supports_python_option("pip 23.0.1 from x"), Some(true));
        assert_eq!(pip_supports_python_option("pip 26.3 from x"), Some(true));
        assert_eq!(pip_supports_python_option("pip 22.2.2 from x"), Some(false));
        assert_eq!(pip_supports_python_option("pip 9.0.1 from x"), Some(false));
        assert_eq!(pip_supports_python_option("garbage"), None);
    }

    #[test]
    fn finds_python_only_in_given_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("python3.42");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_python("3.42", &[Path::new("/nonexistent"), d.path()]).unwrap(),
            exe
        );
        let e = find_python("3.43", &[d.path()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Python 3.43 is not installed on the server; install python3.43 (in /usr/bin or /usr/local/bin) or change the template's Python version"
        );
        // Not executable: not found.
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find_python("3.42", &[d.path()]).is_err());
        // Tools are looked up on the given PATH only, relative entries ignored.
        let uv = d.path().join("uv");
        std::fs::write(&uv, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = OsString::from(format!("relative:{}", d.path().display()));
        assert_eq!(find_tool(Installer::Uv, Some(&path)).unwrap(), uv);
        let e = find_tool(Installer::Pip, Some(&path)).unwrap_err();
        assert!(e.to_string().contains("pip is not installed"), "{e}");
    }
}
