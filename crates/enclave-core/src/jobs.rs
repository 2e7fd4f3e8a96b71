//! Batch jobs: their states and transitions, what a job request may ask for, and the
//! admin's limits it is checked against. Pure: the runner and the store live elsewhere.

use crate::error::{Error, Result};
use crate::secrets::{check_plan, SecretMapping};
use crate::Timestamp;

/// Most arguments in a job's command.
pub const MAX_ARGS: usize = 256;
/// Most bytes in a job's command, all arguments together.
pub const MAX_COMMAND_BYTES: usize = 32 * 1024;
/// Largest piece of a job's log one request returns.
pub const MAX_LOG_CHUNK: usize = 256 * 1024;

/// Where a job is in its life. `Queued → Running → {Succeeded, Failed, TimedOut, Cancelled}`;
/// a queued job may also be cancelled, or fail before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Accepted, waiting for a free slot.
    Queued,
    /// Its sandbox runs.
    Running,
    /// Exited with code 0.
    Succeeded,
    /// Exited with another code, was killed, could not start, or the server stopped under it.
    Failed,
    /// Cancelled by a person.
    Cancelled,
    /// Killed at its time limit.
    TimedOut,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed_out",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job has ended (no further transition).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// Whether a job may go from `self` to `to`.
    pub fn can_become(self, to: JobState) -> bool {
        match self {
            JobState::Queued => matches!(
                to,
                JobState::Running | JobState::Cancelled | JobState::Failed
            ),
            JobState::Running => to.is_final(),
            _ => false,
        }
    }
}

/// Resources of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// CPU in thousandths of a CPU (1000 = one CPU).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Wall-clock limit in seconds.
    pub timeout_secs: u64,
}

/// What the admin allows a job to ask for, and what it gets when it asks for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCaps {
    /// Limits given when a request names none.
    pub default: JobLimits,
    /// The most a request may ask for.
    pub max: JobLimits,
}

impl Default for JobCaps {
    fn default() -> Self {
        JobCaps {
            default: JobLimits {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
                timeout_secs: 3600,
            },
            max: JobLimits {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                timeout_secs: 24 * 3600,
            },
        }
    }
}

/// Smallest memory a job may ask for.
pub const MIN_MEMORY: u64 = 16 << 20;
/// Smallest CPU share a job may ask for (0.01 CPU).
pub const MIN_CPU_MILLIS: u64 = 10;

/// A job as asked for, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct JobRequest {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Its injection plan.
    pub secrets: Vec<SecretMapping>,
    /// CPU in thousandths of a CPU, or the default.
    pub cpu_millis: Option<u64>,
    /// Memory in bytes, or the default.
    pub memory_bytes: Option<u64>,
    /// Time limit in seconds, or the default.
    pub timeout_secs: Option<u64>,
}

impl JobRequest {
    /// Checks the command, the plan and the limits against `caps`; returns the limits the job
    /// gets. Errors name the field and what to change.
    pub fn check(&self, caps: &JobCaps) -> Result<JobLimits> {
        check_command(&self.command)?;
        check_plan(&self.secrets)?;
        let limits = JobLimits {
            cpu_millis: self.cpu_millis.unwrap_or(caps.default.cpu_millis),
            memory_bytes: self.memory_bytes.unwrap_or(caps.default.memory_bytes),
            timeout_secs: self.timeout_secs.unwrap_or(caps.default.timeout_secs),
        };
        let max = caps.max;
        if !(MIN_CPU_MILLIS..=max.cpu_millis).contains(&limits.cpu_millis) {
            return Err(Error::invalid(
                "cpus",
                format!(
                    "a job may use between 0.01 and {} CPUs; ask for fewer",
                    cpus(max.cpu_millis)
                ),
            ));
        }
        if !(MIN_MEMORY..=max.memory_bytes).contains(&limits.memory_bytes) {
            return Err(Error::invalid(
                "memory",
                format!(
                    "a job may use between 16 MiB and {}; ask for less",
                    format_size(max.memory_bytes)
                ),
            ));
        }
        if !(1..=max.timeout_secs).contains(&limits.timeout_secs) {
            return Err(Error::invalid(
                "timeout",
                format!(
                    "a job's time limit must be between 1 second and {} seconds",
                    max.timeout_secs
                ),
            ));
        }
        Ok(limits)
    }
}

/// A command: 1 to [`MAX_ARGS`] arguments, [`MAX_COMMAND_BYTES`] in all, the program not
/// empty, no NUL bytes.
pub fn check_command(command: &[String]) -> Result<()> {
    let bad = |m: String| Err(Error::invalid("command", m));
    match command.first() {
        None => {
            return bad("the command is empty; give the program to run and its arguments".into())
        }
        Some(p) if p.trim().is_empty() => {
            return bad("the program to run is empty; give its name or path".into())
        }
        Some(_) => {}
    }
    if command.len() > MAX_ARGS {
        return bad(format!("a command may have at most {MAX_ARGS} arguments"));
    }
    let total: usize = command.iter().map(|a| a.len()).sum();
    if total > MAX_COMMAND_BYTES {
        return bad(format!(
            "the command is {total} bytes long; the limit is {MAX_COMMAND_BYTES} bytes (put long inputs in a file on the project volume)"
        ));
    }
    if command.iter().any(|a| a.contains('\0')) {
        return bad("a command argument contains a NUL byte".into());
    }
    Ok(())
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Opaque id (`job-…`), also its sandbox's id.
    pub id: String,
    /// Project name.
    pub project: String,
    /// Where it is.
    pub state: JobState,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The injection plan as written (`NAME=env:VAR` …).
    pub secrets: Vec<String>,
    /// Its resources.
    pub limits: JobLimits,
    /// Exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it failed, was cancelled or timed out.
    pub reason: Option<String>,
    /// The workload principal it runs as.
    pub workload_id: String,
    /// Who submitted it (username).
    pub created_by: String,
    /// Submitted.
    pub created_at: Timestamp,
    /// Started.
    pub started_at: Option<Timestamp>,
    /// Ended.
    pub ended_at: Option<Timestamp>,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
}

/// Parses a size: a whole number with an optional unit `K`, `M`, `G`, `T` (powers of 1024;
/// `KiB`, `MiB`, `GiB`, `TiB` and `B` are accepted too), e.g. `512M`, `2GiB`, `1048576`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let invalid = || format!("expected a size like \"512M\" or \"2G\", got {s:?}");
    if digits.is_empty() {
        return Err(invalid());
    }
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(invalid()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Formats a size in the largest binary unit that divides it exactly (`"512MiB"`, `"8GiB"`).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes > 0 && bytes.checked_rem(1u64 << shift) == Some(0) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses a CPU count such as `2`, `0.5` or `1.25` into thousandths of a CPU.
pub fn parse_cpus(s: &str) -> std::result::Result<u64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of CPUs like \"2\" or \"0.5\", got {s:?}"))?;
    if !v.is_finite() || v <= 0.0 || v > 1_000_000.0 {
        return Err(format!("the number of CPUs must be positive, got {s:?}"));
    }
    Ok((v * 1000.0).round() as u64)
}

/// Formats thousandths of a CPU as a CPU count (`"0.5"`, `"2"`).
pub fn cpus(millis: u64) -> String {
    if millis.checked_rem(1000) == Some(0) {
        (millis / 1000).to_string()
    } else {
        let s = format!("{:.3}", millis as f64 / 1000.0);
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::secrets::parse_mapping;

    fn req(cmd: &[&str]) -> JobRequest {
        JobRequest {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..JobRequest::default()
        }
    }

    #[test]
    fn transitions() {
        use JobState::*;
        assert!(Queued.can_become(Running));
        assert!(Queued.can_become(Cancelled));
        assert!(!Queued.can_become(Succeeded));
        assert!(Running.can_become(TimedOut));
        assert!(!Running.can_become(Queued));
        for s in [Succeeded, Failed, Cancelled, TimedOut] {
            assert!(s.is_final());
            assert!(JobState::ALL.iter().all(|t| !s.can_become(*t)));
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    #[test]
    fn defaults_and_caps() {
        let caps = JobCaps::default();
        assert_eq!(req(&["true"]).check(&caps).unwrap(), caps.default);
        let mut r = req(&["python3", "-c", "1"]);
        r.cpu_millis = Some(4001);
        assert_eq!(r.check(&caps).unwrap_err().details["field"], "cpus");
        r.cpu_millis = Some(5);
        assert!(r.check(&caps).is_err());
        r.cpu_millis = Some(500);
        r.memory_bytes = Some(9 << 30);
        let e = r.check(&caps).unwrap_err();
        assert!(e.message.contains("8GiB"), "{}", e.message);
        r.memory_bytes = Some(1 << 20);
        assert!(r.check(&caps).is_err());
        r.memory_bytes = Some(64 << 20);
        r.timeout_secs = Some(0);
        assert_eq!(r.check(&caps).unwrap_err().details["field"], "timeout");
        r.timeout_secs = Some(25 * 3600);
        assert!(r.check(&caps).is_err());
        r.timeout_secs = Some(60);
        assert_eq!(
            r.check(&caps).unwrap(),
            JobLimits {
                cpu_millis: 500,
                memory_bytes: 64 << 20,
                timeout_secs: 60
            }
        );
    }

    #[test]
    fn commands() {
        let caps = JobCaps::default();
        for bad in [vec![], vec![""], vec![" "], vec!["a\0b"]] {
            let e = req(&bad).check(&caps).unwrap_err();
            assert_eq!(e.details["field"], "command", "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_ARGS).map(|i| i.to_string()).collect();
        assert!(check_command(&many).is_err());
        let long = vec!["x".repeat(MAX_COMMAND_BYTES + 1)];
        assert!(check_command(&long).is_err());
        let mut r = req(&["env"]);
        r.secrets = vec![
            parse_mapping("A=env:X").unwrap(),
            parse_mapping("B=env:X").unwrap(),
        ];
        assert_eq!(r.check(&caps).unwrap_err().details["field"], "map");
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1024"), Ok(1024));
        for bad in ["", "M", "1.5G", "-1", "2X", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(8 << 30), "8GiB");
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(parse_cpus("0.5"), Ok(500));
        assert_eq!(parse_cpus("2"), Ok(2000));
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(cpus(2000), "2");
        assert_eq!(cpus(500), "0.5");
        assert_eq!(cpus(1250), "1.25");
    }
}
