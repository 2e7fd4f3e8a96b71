//! Runs one installer command: cleared environment, its own process group, output streamed line
//! by line, killed (with everything it started) at the deadline.

use crate::command::Cmd;
use crate::{Error, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest line kept from a child's output, in bytes (the rest of the line is dropped).
const MAX_LINE: usize = 4096;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// How a child ended.
pub(crate) enum Ended {
    /// It exited (or was killed by a signal) on its own.
    Exited(ExitStatus),
    /// It ran past the deadline and was killed.
    TimedOut,
}

/// Runs `cmd` in `cwd` until it ends or `deadline` passes, handing every output line to
/// `on_line`. The child is a process-group leader; at the deadline, and after it exits, the
/// whole group is killed, so nothing it started outlives the build.
pub(crate) fn run(
    cmd: &Cmd,
    cwd: &Path,
    deadline: Instant,
    on_line: &mut dyn FnMut(Stream, &str),
) -> Result<Ended> {
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Io {
            what: format!("cannot start {}", cmd.program.display()),
            source,
        })?;
    let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
    let kill_group = || {
        if let Some(pg) = group {
            // ESRCH: the group is already gone.
            let _ = killpg(pg, Signal::SIGKILL);
        }
    };

    let (tx, rx) = mpsc::channel::<(Stream, String)>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            read_lines(out, Stream::Out, &tx)
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            read_lines(err, Stream::Err, &tx)
        }));
    }
    drop(tx);

    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let ended = loop {
        let now = Instant::now();
        if now >= deadline {
            kill_group();
            let _ = child.wait();
            break Ended::TimedOut;
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok((stream, line)) => on_line(stream, &line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: the child is done or about to be.
                let st = match status {
                    Some(s) => Some(s),
                    None => wait_until(&mut child, deadline)?,
                };
                match st {
                    Some(s) => {
                        kill_group();
                        break Ended::Exited(s);
                    }
                    None => {
                        kill_group();
                        let _ = child.wait();
                        break Ended::TimedOut;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if status.is_none() {
            if let Some(s) = child.try_wait().map_err(|source| Error::Io {
                what: format!("cannot wait for {}", cmd.program.display()),
                source,
            })? {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        // The child exited but something it started still holds the pipes: give it a moment
        // to finish writing, then end the whole group.
        if let (Some(s), Some(at)) = (status, exited_at) {
            if at.elapsed() > Duration::from_secs(2) {
                kill_group();
                while let Ok((stream, line)) = rx.recv_timeout(Duration::from_millis(500)) {
                    on_line(stream, &line);
                }
                break Ended::Exited(s);
            }
        }
    };
    for r in readers {
        let _ = r.join();
    }
    // Lines still queued after the end (readers finished after the loop stopped).
    while let Ok((stream, line)) = rx.try_recv() {
        on_line(stream, &line);
    }
    Ok(ended)
}

fn wait_until(child: &mut std::process::Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(Error::Io {
                    what: "cannot wait for the installer".into(),
                    source,
                })
            }
        }
    }
}

/// Splits a pipe into lines at `\n` and `\r` (progress bars), lossy UTF-8, each at most
/// [`MAX_LINE`] bytes.
fn read_lines(pipe: impl Read, stream: Stream, tx: &mpsc::Sender<(Stream, String)>) {
    let mut reader = BufReader::new(pipe);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let mut used = 0;
        for &b in buf {
            used += 1;
            if b == b'\n' || b == b'\r' {
                if !line.is_empty() {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if tx.send((stream, text)).is_err() {
                        return;
                    }
                    line.clear();
                }
            } else if line.len() < MAX_LINE {
                line.push(b);
            }
        }
        reader.consume(used);
    }
    if !line.is_empty() {
        let _ = tx.send((stream, String::from_utf8_lossy(&line).into_owned()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::path::PathBuf;

    fn sh(script: &str) -> Cmd {
        Cmd {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("X".into(), "1".into()),
            ],
        }
    }

    fn collect(cmd: &Cmd, limit: Duration) -> (Ended, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        let ended = run(cmd, Path::new("/"), Instant::now() + limit, &mut |s, l| {
            lines.push((s, l.to_string()))
        })
        .unwrap();
        (ended, lines)
    }

    #[test]
    fn streams_lines_and_status() {
        let (ended, lines) = collect(
            &sh("echo one; echo two >&2; printf 'a\\rb\\n'; echo \"env=$X home=${HOME:-none}\"; exit 3"),
            Duration::from_secs(10),
        );
        let Ended::Exited(s) = ended else {
            panic!("timed out")
        };
        assert_eq!(s.code(), Some(3));
        let out: Vec<&str> = lines
            .iter()
            .filter(|(s, _)| *s == Stream::Out)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["one", "a", "b", "env=1 home=none"]);
        assert!(lines.contains(&(Stream::Err, "two".to_string())));
    }

    #[test]
    fn kills_the_group_at_the_deadline() {
        let started = Instant::now();
        let (ended, lines) = collect(
            &sh("echo started; sleep 30 & sleep 30; echo never"),
            Duration::from_millis(500),
        );
        assert!(matches!(ended, Ended::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(lines, [(Stream::Out, "started".to_string())]);
    }

    #[test]
    fn a_leftover_grandchild_does_not_hold_the_build() {
        let started = Instant::now();
        let (ended, _) = collect(&sh("sleep 60 & echo done"), Duration::from_secs(30));
        assert!(matches!(ended, Ended::Exited(s) if s.success()));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn long_lines_are_cut() {
        let (_, lines) = collect(
            &sh("head -c 10000 /dev/zero | tr '\\0' x"),
            Duration::from_secs(10),
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1.len(), MAX_LINE);
    }
}
