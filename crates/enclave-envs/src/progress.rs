//! Progress of a build: the steps, and the estimate made from the installer's output lines.
//! Pure.

use crate::Installer;
use serde::Serialize;

/// The step a build is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Creating the venv and resolving the pins (and, for pip, downloading).
    Resolving,
    /// Downloading and installing the packages.
    Installing,
    /// Compiling bytecode, recording the packages, making the tree read-only.
    Sealing,
    /// The environment is ready.
    Done,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Current step.
    pub step: Step,
    /// Estimated completion, 0–100; never goes down within one build.
    pub percent: u8,
    /// What is happening (an installer output line, or Enclave's own words); one line, at most
    /// [`MAX_MESSAGE`] characters, credentials removed.
    pub message: String,
}

/// Longest progress message, in characters.
pub const MAX_MESSAGE: usize = 200;

/// Turns installer output lines into [`Progress`] reports. The installer's share of a build is
/// 5–85 %; the builder reports the rest itself.
#[derive(Debug, Clone)]
pub(crate) struct Estimator {
    installer: Installer,
    step: Step,
    percent: u8,
    /// pip: "Collecting" lines seen.
    collected: u32,
    /// uv: "Downloading"/"Downloaded" lines seen.
    downloads: u32,
    /// Packages to install, once the installer has said.
    total: Option<u32>,
    /// uv: " + name==version" lines seen.
    installed: u32,
}

impl Estimator {
    /// A new estimate at 5 % (the venv exists).
    pub fn new(installer: Installer) -> Estimator {
        Estimator {
            installer,
            step: Step::Resolving,
            percent: 5,
            collected: 0,
            downloads: 0,
            total: None,
            installed: 0,
        }
    }

    /// Reads one output line (already redacted); `None` for blank lines.
    pub fn line(&mut self, line: &str) -> Option<Progress> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return None;
        }
        let (step, percent) = match self.installer {
            Installer::Uv => self.uv(trimmed),
            Installer::Pip => self.pip(trimmed),
        };
        self.step = step;
        self.percent = self.percent.max(percent.min(85));
        Some(Progress {
            step: self.step,
            percent: self.percent,
            message: one_line(trimmed),
        })
    }

    fn uv(&mut self, line: &str) -> (Step, u8) {
        let step = self.step;
        if let Some(n) = count_after(line, "Resolved ") {
            self.total = Some(n);
            return (Step::Installing, 35);
        }
        if line.starts_with("Downloading ") || line.starts_with("Downloaded ") {
            self.downloads += 1;
            return (Step::Installing, pct(35 + self.downloads.min(30)));
        }
        if line.starts_with("Prepared ") {
            return (Step::Installing, 70);
        }
        if line.starts_with("Installed ") {
            return (Step::Installing, 78);
        }
        if line.starts_with("Bytecode compiled ") {
            return (Step::Installing, 82);
        }
        if line.starts_with("+ ") {
            self.installed += 1;
            let total = self.total.unwrap_or(self.installed).max(1);
            return (
                Step::Installing,
                pct(82 + 3 * self.installed.min(total) / total),
            );
        }
        if line.starts_with("Using ") {
            return (step, 10);
        }
        (step, self.percent)
    }

    fn pip(&mut self, line: &str) -> (Step, u8) {
        let step = self.step;
        if line.starts_with("Collecting ") {
            self.collected += 1;
            // Approaches 55 % as the closure grows; pip does not say how big it is.
            let c = self.collected;
            return (Step::Resolving, pct(10 + 45 * c / (c + 20)));
        }
        if let Some(list) = line.strip_prefix("Installing collected packages:") {
            let n = list.split(',').filter(|s| !s.trim().is_empty()).count();
            self.total = u32::try_from(n).ok();
            return (Step::Installing, 60);
        }
        if line.starts_with("Successfully installed") {
            return (Step::Installing, 85);
        }
        (step, self.percent)
    }
}

fn count_after(line: &str, prefix: &str) -> Option<u32> {
    line.strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn pct(n: u32) -> u8 {
    u8::try_from(n.min(100)).unwrap_or(100)
}

/// One line of at most [`MAX_MESSAGE`] characters, control characters replaced.
pub(crate) fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_MESSAGE)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_MESSAGE {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn feed(e: &mut Estimator, lines: &str) -> Vec<Progress> {
        lines.lines().filter_map(|l| e.line(l)).collect()
    }

    #[test]
    fn uv_output() {
        let mut e = Estimator::new(Installer::Uv);
        let out = feed(
            &mut e,
            "Using Python 3.11.2 environment at: /srv/envs/.build-x\n\
             Resolved 4 packages in 20ms\n\
             Downloading jupyterlab (16.5MiB)\n\
             \n\
             Downloaded jupyterlab\n\
             Prepared 4 packages in 1.2s\n\
             Installed 4 packages in 80ms\n\
             Bytecode compiled 366 files in 450ms\n \
             + a==1\n + b==1\n + c==1\n + d==1\n",
        );
        let percents: Vec<u8> = out.iter().map(|p| p.percent).collect();
        assert_eq!(percents, [10, 35, 36, 37, 70, 78, 82, 82, 83, 84, 85]);
        assert_eq!(out[0].step, Step::Resolving);
        assert!(out[1..].iter().all(|p| p.step == Step::Installing));
        assert_eq!(out[1].message, "Resolved 4 packages in 20ms");
        assert_eq!(out.last().unwrap().message, "+ d==1");
    }

    #[test]
    fn pip_output() {
        let mut e = Estimator::new(Installer::Pip);
        let out = feed(
            &mut e,
            "Looking in indexes: http://127.0.0.1:1/simple/\n\
             Collecting six==1.17.0\n  \
             Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)\n\
             Collecting packaging==26.3\n\
             Installing collected packages: six, packaging\n\
             Successfully installed packaging-26.3 six-1.17.0\n",
        );
        let percents: Vec<u8> = out.iter().map(|p| p.percent).collect();
        assert_eq!(percents, [5, 12, 12, 14, 60, 85]);
        assert_eq!(out[4].step, Step::Installing);
        assert_eq!(e.total, Some(2));
        // A large closure stays below the install step.
        let mut e = Estimator::new(Installer::Pip);
        for i in 0..500 {
            e.line(&format!("Collecting p{i}"));
        }
        assert!(e.percent < 60, "{}", e.percent);
    }

    #[test]
    fn percent_never_goes_down_or_past_85() {
        let mut e = Estimator::new(Installer::Uv);
        e.line("Installed 3 packages in 1s");
        let p = e.line("Resolved 3 packages in 1s").unwrap();
        assert_eq!(p.percent, 78);
        for _ in 0..50 {
            e.line("+ x==1");
        }
        assert_eq!(e.percent, 85);
    }

    #[test]
    fn messages_are_one_short_line() {
        assert_eq!(one_line("a\tb\u{1b}[31mc"), "a b [31mc");
        let long = "é".repeat(500);
        let m = one_line(&long);
        assert_eq!(m.chars().count(), MAX_MESSAGE);
        assert!(m.ends_with('…'));
        assert_eq!(one_line(&"x".repeat(MAX_MESSAGE)), "x".repeat(MAX_MESSAGE));
    }
}
