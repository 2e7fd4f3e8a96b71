//! Notebook environment templates: what an admin declares (a Python version, exact package pins
//! and resource presets), the rules a template must follow before anything is built from it, and
//! the fingerprint that names one build.
//!
//! Building happens elsewhere (`enclave-envs`); this module only decides whether a template is
//! acceptable. The pins reach a package installer's command line, so the rules are strict: every
//! entry is `name==version` with a PEP 508 name and a version made of version characters only —
//! no URLs, paths, options or ranges can pass.

use crate::error::{Error, Result};
use crate::names;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most packages a template may pin.
pub const MAX_PACKAGES: usize = 200;
/// Longest package name.
pub const MAX_PACKAGE_NAME: usize = 100;
/// Longest package version.
pub const MAX_PACKAGE_VERSION: usize = 64;
/// Most resource presets a template may offer.
pub const MAX_PRESETS: usize = 10;
/// Oldest Python minor version a template may ask for (`3.8`).
pub const MIN_PYTHON_MINOR: u32 = 8;
/// Newest Python minor version a template may ask for (`3.20`).
pub const MAX_PYTHON_MINOR: u32 = 20;
/// Smallest CPU share of a preset, in thousandths of a CPU (0.1 CPU).
pub const MIN_CPU_MILLIS: u64 = 100;
/// Largest CPU share of a preset, in thousandths of a CPU (64 CPUs).
pub const MAX_CPU_MILLIS: u64 = 64_000;
/// Smallest memory of a preset (256 MiB).
pub const MIN_MEMORY_BYTES: u64 = 256 << 20;
/// Largest memory of a preset (256 GiB).
pub const MAX_MEMORY_BYTES: u64 = 256 << 30;
/// Packages every notebook environment must pin.
pub const NOTEBOOK_PACKAGES: [&str; 2] = ["jupyterlab", "ipykernel"];

/// A named size for a notebook: how much CPU and memory its sandbox gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Slug shown to users (`small`, `gpu-large`).
    pub name: String,
    /// CPU share in thousandths of a CPU (`1500` = 1.5 CPUs).
    pub cpu_millis: u64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
}

/// An environment template: the Python version, exact package pins and resource presets a
/// notebook can be started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvTemplate {
    /// Slug naming the template (`datascience`).
    pub name: String,
    /// Python version as `3.N` (`3.11`); the server must have `/usr/bin/python3.N`.
    pub python: String,
    /// Exact pins, `name==version` each.
    pub packages: Vec<String>,
    /// Resource presets; the first is the default.
    pub presets: Vec<Preset>,
}

impl EnvTemplate {
    /// Checks everything a notebook needs: [`EnvTemplate::check_buildable`], plus pins for
    /// `jupyterlab` and `ipykernel`.
    pub fn check(&self) -> Result<()> {
        self.check_buildable()?;
        for required in NOTEBOOK_PACKAGES {
            if !self
                .packages
                .iter()
                .any(|p| split_pin(p).is_some_and(|(n, _)| normalize_name(n) == required))
            {
                return Err(Error::invalid(
                    "packages",
                    format!(
                        "packages must pin {required} (a notebook needs jupyterlab and ipykernel); add a line like '{required}==VERSION'"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks what any build of the template needs (name, Python version, pins, presets),
    /// without requiring the notebook packages. Environment builders call this one.
    pub fn check_buildable(&self) -> Result<()> {
        names::slug("name", &self.name)?;
        python_minor(&self.python)?;
        check_packages(&self.packages)?;
        check_presets(&self.presets)
    }

    /// The fingerprint of one build: 16 lowercase hex characters of the SHA-256 of the Python
    /// version, the sorted pins (names normalized) and the package index URL. Two templates
    /// with the same fingerprint install the same packages; the template's name and presets do
    /// not enter it.
    pub fn fingerprint(&self, index_url: &str) -> String {
        let mut pins: Vec<String> = self
            .packages
            .iter()
            .map(|p| match split_pin(p) {
                Some((name, version)) => {
                    format!("{}=={}", normalize_name(name), version.to_ascii_lowercase())
                }
                None => p.clone(),
            })
            .collect();
        pins.sort();
        let mut h = Sha256::new();
        h.update(b"enclave-env-v1\n");
        for field in [self.python.as_str(), index_url] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        h.update((pins.len() as u64).to_be_bytes());
        for pin in &pins {
            h.update((pin.len() as u64).to_be_bytes());
            h.update(pin.as_bytes());
        }
        let digest = h.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The preset called `name`, or the first preset when `name` is `None`.
    pub fn preset(&self, name: Option<&str>) -> Result<&Preset> {
        let found = match name {
            None => self.presets.first(),
            Some(n) => self.presets.iter().find(|p| p.name == n),
        };
        found.ok_or_else(|| {
            let choices: Vec<&str> = self.presets.iter().map(|p| p.name.as_str()).collect();
            let wanted = name.unwrap_or("(default)");
            Error::invalid(
                "preset",
                if choices.is_empty() {
                    format!(
                        "template '{}' has no presets; a platform admin must add one",
                        self.name
                    )
                } else {
                    format!(
                        "template '{}' has no preset '{wanted}'; choose one of: {}",
                        self.name,
                        choices.join(", ")
                    )
                },
            )
        })
    }

    /// The built-in template: JupyterLab with the usual data-science packages for Python 3.11
    /// (every pin has `cp311` manylinux wheels), and three presets.
    pub fn default_template() -> EnvTemplate {
        let pins = [
            "jupyterlab==4.6.6",
            "ipykernel==7.4.0",
            "numpy==2.4.6",
            "pandas==3.1.1",
            "matplotlib==3.11.2",
            "scikit-learn==1.9.1",
        ];
        let preset = |name: &str, cpus: u64, gib: u64| Preset {
            name: name.to_string(),
            cpu_millis: cpus * 1000,
            memory_bytes: gib << 30,
        };
        EnvTemplate {
            name: "datascience".to_string(),
            python: "3.11".to_string(),
            packages: pins.iter().map(|p| (*p).to_string()).collect(),
            presets: vec![
                preset("small", 1, 2),
                preset("medium", 2, 4),
                preset("large", 4, 8),
            ],
        }
    }
}

/// The minor version of a `3.N` Python version, checked against the allowed range.
pub fn python_minor(python: &str) -> Result<u32> {
    let bad = || {
        Error::invalid(
            "python",
            format!(
                "python must be a version like 3.11 (3.{MIN_PYTHON_MINOR} to 3.{MAX_PYTHON_MINOR})"
            ),
        )
    };
    let minor = python.strip_prefix("3.").ok_or_else(bad)?;
    if minor.is_empty()
        || minor.len() > 2
        || !minor.chars().all(|c| c.is_ascii_digit())
        || (minor.len() > 1 && minor.starts_with('0'))
    {
        return Err(bad());
    }
    let n: u32 = minor.parse().map_err(|_| bad())?;
    if (MIN_PYTHON_MINOR..=MAX_PYTHON_MINOR).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// A package name normalized as PEP 503 does: lowercase, every run of `-`, `_` and `.` one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Splits `name==version`; `None` when there is not exactly one `==`.
fn split_pin(pin: &str) -> Option<(&str, &str)> {
    let (name, version) = pin.split_once("==")?;
    if version.contains("==") {
        return None;
    }
    Some((name, version))
}

fn valid_name(name: &str) -> bool {
    // PEP 508: letters, digits, '.', '_', '-', starting and ending with a letter or digit.
    !name.is_empty()
        && name.len() <= MAX_PACKAGE_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= MAX_PACKAGE_VERSION
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_' | '-'))
}

fn check_packages(packages: &[String]) -> Result<()> {
    if packages.is_empty() || packages.len() > MAX_PACKAGES {
        return Err(Error::invalid(
            "packages",
            format!("packages must list 1 to {MAX_PACKAGES} pins"),
        ));
    }
    let mut seen: Vec<String> = Vec::with_capacity(packages.len());
    for (i, pin) in packages.iter().enumerate() {
        let shown: String = pin
            .chars()
            .take(80)
            .collect::<String>()
            .escape_debug()
            .to_string();
        let Some((name, version)) = split_pin(pin) else {
            return Err(Error::invalid(
                "packages",
                format!(
                    "package {} ('{shown}') must be an exact pin 'name==version', like 'numpy==2.4.6' (no ranges, URLs, paths or options)",
                    i + 1
                ),
            )
            .with("index", i));
        };
        if !valid_name(name) {
            return Err(Error::invalid(
                "packages",
                format!(
                    "package {} ('{shown}') has an invalid name: use letters, digits, '.', '_' and '-' (at most {MAX_PACKAGE_NAME}), starting and ending with a letter or digit",
                    i + 1
                ),
            )
            .with("index", i));
        }
        if !valid_version(version) {
            return Err(Error::invalid(
                "packages",
                format!(
                    "package {} ('{shown}') has an invalid version: use an exact version like 1.2.3 (letters, digits, '.', '+', '!', '_', '-'; at most {MAX_PACKAGE_VERSION})",
                    i + 1
                ),
            )
            .with("index", i));
        }
        let normalized = normalize_name(name);
        if seen.contains(&normalized) {
            return Err(Error::invalid(
                "packages",
                format!("package {normalized} is pinned twice; keep one pin per package"),
            )
            .with("index", i));
        }
        seen.push(normalized);
    }
    Ok(())
}

fn check_presets(presets: &[Preset]) -> Result<()> {
    if presets.is_empty() || presets.len() > MAX_PRESETS {
        return Err(Error::invalid(
            "presets",
            format!("presets must list 1 to {MAX_PRESETS} presets"),
        ));
    }
    for (i, p) in presets.iter().enumerate() {
        names::slug("presets.name", &p.name).map_err(|e| e.with("index", i))?;
        if presets[..i].iter().any(|q| q.name == p.name) {
            return Err(Error::invalid(
                "presets.name",
                format!(
                    "preset '{}' is listed twice; preset names must be unique",
                    p.name
                ),
            )
            .with("index", i));
        }
        if !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&p.cpu_millis) {
            return Err(Error::invalid(
                "presets.cpu_millis",
                format!(
                    "preset '{}' must have 0.1 to 64 CPUs (cpu_millis {MIN_CPU_MILLIS} to {MAX_CPU_MILLIS})",
                    p.name
                ),
            )
            .with("index", i));
        }
        if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&p.memory_bytes) {
            return Err(Error::invalid(
                "presets.memory_bytes",
                format!(
                    "preset '{}' must have 256 MiB to 256 GiB of memory (memory_bytes {MIN_MEMORY_BYTES} to {MAX_MEMORY_BYTES})",
                    p.name
                ),
            )
            .with("index", i));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn field(r: Result<()>) -> String {
        let e = r.unwrap_err();
        e.details["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn default_template_passes() {
        let t = EnvTemplate::default_template();
        t.check().unwrap();
        assert_eq!(t.preset(None).unwrap().name, "small");
        assert_eq!(t.preset(Some("large")).unwrap().cpu_millis, 4000);
        assert_eq!(t.preset(Some("large")).unwrap().memory_bytes, 8 << 30);
        let e = t.preset(Some("huge")).unwrap_err();
        assert!(e.message.contains("small, medium, large"), "{}", e.message);
    }

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        let t = EnvTemplate::default_template();
        let fp = t.fingerprint("https://pypi.example/simple/");
        assert_eq!(fp.len(), 16);
        assert!(fp
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        // Order, name spelling and template name/presets do not matter.
        let mut u = t.clone();
        u.packages.reverse();
        u.packages[0] = u.packages[0].replace("scikit-learn", "Scikit_Learn");
        u.name = "other".into();
        u.presets.pop();
        assert_eq!(u.fingerprint("https://pypi.example/simple/"), fp);
        // Python, pins and index do.
        assert_ne!(t.fingerprint("https://mirror.example/simple/"), fp);
        let mut v = t.clone();
        v.python = "3.12".into();
        assert_ne!(v.fingerprint("https://pypi.example/simple/"), fp);
        let mut w = t.clone();
        w.packages.push("six==1.17.0".into());
        assert_ne!(w.fingerprint("https://pypi.example/simple/"), fp);
        // A pinned value, so a change of hash function or encoding is noticed.
        let small = EnvTemplate {
            name: "x1".into(),
            python: "3.11".into(),
            packages: vec!["six==1.17.0".into()],
            presets: vec![],
        };
        // Computed independently: sha256("enclave-env-v1\n" ‖ len-prefixed fields)[..8].
        assert_eq!(
            small.fingerprint("http://127.0.0.1/simple/"),
            "cf1657e0bac0d9cf"
        );
    }

    #[test]
    fn python_versions() {
        for ok in ["3.8", "3.11", "3.20"] {
            assert!(python_minor(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "3", "3.", "3.7", "3.21", "2.7", "3.011", "3.11.2", " 3.11", "3.x", "4.1",
        ] {
            assert!(python_minor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_normalize() {
        assert_eq!(normalize_name("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("a-_.b"), "a-b");
    }

    #[test]
    fn bad_packages() {
        let base = EnvTemplate::default_template();
        let long_name = format!("{}==1", "a".repeat(MAX_PACKAGE_NAME + 1));
        let long_version = format!("six=={}", "1".repeat(MAX_PACKAGE_VERSION + 1));
        for bad in [
            "numpy",
            "numpy>=1",
            "numpy==",
            "==1.0",
            "numpy==1.0==2",
            "numpy ==1.0",
            "numpy== 1.0",
            "numpy==1.*",
            "numpy==1.0;python_version<'3'",
            "numpy[extra]==1.0",
            "--index-url==1",
            "-e==1",
            "./pkg==1",
            "/tmp/x==1",
            "pkg @ https://evil.example/x.whl",
            "pkg==https://evil.example/x.whl",
            "pkg==1.0 --index-url http://evil",
            "pkg==1\n--extra-index-url=http://evil",
            "pkg-==1.0",
            "pkg==-1.0",
            "pkg==1/2",
            long_name.as_str(),
            long_version.as_str(),
        ] {
            let mut t = base.clone();
            t.packages.push(bad.to_string());
            assert_eq!(field(t.check()), "packages", "{bad:?}");
        }
        let mut dup = base.clone();
        dup.packages.push("Scikit_Learn==1.0".into());
        let e = dup.check().unwrap_err();
        assert!(e.message.contains("pinned twice"), "{}", e.message);

        let mut none = base.clone();
        none.packages.clear();
        assert_eq!(field(none.check()), "packages");
        let mut many = base.clone();
        for i in 0..MAX_PACKAGES {
            many.packages.push(format!("pkg{i}==1.0"));
        }
        assert_eq!(field(many.check()), "packages");

        for good in [
            "zope.interface==7.0",
            "a==2!1.0+local.1",
            "x_y==1.0rc1",
            "A1==1",
        ] {
            let mut t = base.clone();
            t.packages.push(good.to_string());
            assert!(t.check().is_ok(), "{good}");
        }
    }

    #[test]
    fn notebook_packages_required_but_not_for_builds() {
        let mut t = EnvTemplate::default_template();
        t.packages.retain(|p| !p.starts_with("ipykernel"));
        let e = t.check().unwrap_err();
        assert!(e.message.contains("ipykernel"), "{}", e.message);
        assert!(t.check_buildable().is_ok());
        // Spelled differently still counts.
        let mut u = EnvTemplate::default_template();
        u.packages[0] = "JupyterLab==4.6.6".into();
        assert!(u.check().is_ok());
    }

    #[test]
    fn bad_names_and_presets() {
        let base = EnvTemplate::default_template();
        for bad in ["", "A", "data science", "../x", "x--y", &"a".repeat(41)] {
            let mut t = base.clone();
            t.name = bad.to_string();
            assert_eq!(field(t.check()), "name", "{bad}");
        }
        let mut t = base.clone();
        t.python = "3.99".into();
        assert_eq!(field(t.check()), "python");

        let mut t = base.clone();
        t.presets.clear();
        assert_eq!(field(t.check()), "presets");
        let mut t = base.clone();
        while t.presets.len() <= MAX_PRESETS {
            let mut p = t.presets[0].clone();
            p.name = format!("p{}", t.presets.len());
            t.presets.push(p);
        }
        assert_eq!(field(t.check()), "presets");

        let mut t = base.clone();
        t.presets[1].name = "small".into();
        assert_eq!(field(t.check()), "presets.name");
        let mut t = base.clone();
        t.presets[0].name = "Small!".into();
        assert_eq!(field(t.check()), "presets.name");

        for (cpu, ok) in [
            (99, false),
            (100, true),
            (64_000, true),
            (64_001, false),
            (0, false),
        ] {
            let mut t = base.clone();
            t.presets[0].cpu_millis = cpu;
            assert_eq!(t.check().is_ok(), ok, "{cpu}");
        }
        for (mem, ok) in [
            ((256 << 20) - 1, false),
            (256 << 20, true),
            (256 << 30, true),
            ((256 << 30) + 1, false),
        ] {
            let mut t = base.clone();
            t.presets[0].memory_bytes = mem;
            assert_eq!(t.check().is_ok(), ok, "{mem}");
        }
        let empty = EnvTemplate {
            presets: vec![],
            ..base.clone()
        };
        assert!(empty
            .preset(None)
            .unwrap_err()
            .message
            .contains("no presets"));
    }

    #[test]
    fn serde_round_trip_refuses_unknown_fields() {
        let t = EnvTemplate::default_template();
        let json = serde_json::to_string(&t).unwrap();
        let back: EnvTemplate = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        let bad = json.replacen("{", "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<EnvTemplate>(&bad).is_err());
    }
}
