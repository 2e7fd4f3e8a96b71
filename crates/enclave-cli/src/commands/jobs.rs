//! The jobs commands: run (and follow), list, show, logs, cancel.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{Res, Runner};
use crate::client::Failure;
use crate::output::{sanitize_multiline, Column};
use crate::{JobsCommand, OutputFormat};

const JOB: &[Column] = &[
    ("ID", "id"),
    ("STATE", "state"),
    ("EXIT", "exit_code"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
    ("COMMAND", "command"),
];

const JOB_DETAIL: &[Column] = &[
    ("id", "id"),
    ("project", "project"),
    ("state", "state"),
    ("reason", "reason"),
    ("exit code", "exit_code"),
    ("command", "command"),
    ("secrets", "secrets"),
    ("cpus", "cpus"),
    ("memory bytes", "memory_bytes"),
    ("timeout secs", "timeout_secs"),
    ("created", "created_at"),
    ("by", "created_by"),
    ("started", "started_at"),
    ("ended", "ended_at"),
];

/// How often a followed log is asked for more.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

fn path<'a>(project: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["projects", project, "jobs"];
    v.extend_from_slice(more);
    v
}

impl Runner<'_, '_> {
    pub(super) async fn jobs(&mut self, cmd: JobsCommand) -> Res {
        match cmd {
            JobsCommand::Run {
                project,
                secrets,
                cpus,
                memory,
                timeout,
                detach,
                command,
            } => {
                let mut body = json!({ "command": command, "secrets": secrets });
                for (k, v) in [("cpus", cpus), ("memory", memory), ("timeout", timeout)] {
                    if let Some(v) = v {
                        body[k] = json!(v);
                    }
                }
                let job = self
                    .api()?
                    .call_json(Method::POST, &path(&project, &[]), Some(&body))
                    .await?;
                let id = job["id"].as_str().unwrap_or_default().to_string();
                if detach {
                    return match self.ctx.output {
                        OutputFormat::Json => self.show(JOB_DETAIL, &job),
                        OutputFormat::Text => self.done(&id),
                    };
                }
                self.note(&format!(
                    "job {id} queued; following its log (Ctrl-C stops following, not the job)"
                ));
                self.follow(&project, &id).await
            }
            JobsCommand::List { project } => {
                let page = self
                    .api()?
                    .call_json(Method::GET, &path(&project, &[]), None)
                    .await?;
                let items = page["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(joined_command)
                    .collect();
                self.show_list(JOB, items)
            }
            JobsCommand::Show { id, project } => {
                let job = self
                    .api()?
                    .call_json(Method::GET, &path(&project, &[&id]), None)
                    .await?;
                self.show(JOB_DETAIL, &joined_command(job))
            }
            JobsCommand::Logs {
                id,
                project,
                follow,
            } => {
                if follow {
                    return self.follow(&project, &id).await;
                }
                let mut offset = 0u64;
                loop {
                    let piece = self.log_piece(&project, &id, offset).await?;
                    if let Some(text) = piece["data"].as_str() {
                        self.write_out(&sanitize_multiline(text))?;
                    }
                    let next = piece["next_offset"].as_u64().unwrap_or(offset);
                    if next == offset {
                        return Ok(());
                    }
                    offset = next;
                }
            }
            JobsCommand::Cancel { id, project } => {
                let job = self
                    .api()?
                    .call_json(Method::POST, &path(&project, &[&id, "cancel"]), None)
                    .await?;
                match self.ctx.output {
                    OutputFormat::Json => self.show(JOB_DETAIL, &job),
                    OutputFormat::Text => self.done(&format!(
                        "Cancelled job {id} ({}).",
                        job["state"].as_str().unwrap_or("?")
                    )),
                }
            }
        }
    }

    async fn log_piece(&mut self, project: &str, id: &str, offset: u64) -> Result<Value, Failure> {
        let query = [("offset", offset.to_string())];
        Ok(self
            .api()?
            .call(Method::GET, &path(project, &[id, "log"]), &query, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Prints the log as it grows until the job ends, then its outcome; fails unless the job
    /// succeeded.
    async fn follow(&mut self, project: &str, id: &str) -> Res {
        let mut offset = 0u64;
        let mut state = String::new();
        loop {
            let piece = self.log_piece(project, id, offset).await?;
            if let Some(text) = piece["data"].as_str() {
                if !text.is_empty() && self.ctx.output == OutputFormat::Text {
                    self.write_out(&sanitize_multiline(text))?;
                }
            }
            offset = piece["next_offset"].as_u64().unwrap_or(offset);
            let now = piece["state"].as_str().unwrap_or_default().to_string();
            if now != state && now == "running" {
                self.note(&format!("job {id} running"));
            }
            state = now;
            if piece["complete"].as_bool() == Some(true) {
                break;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
        let job = self
            .api()?
            .call_json(Method::GET, &path(project, &[id]), None)
            .await?;
        if self.ctx.output == OutputFormat::Json {
            self.show(JOB_DETAIL, &job)?;
        }
        let state = job["state"].as_str().unwrap_or("?");
        let exit = job["exit_code"]
            .as_i64()
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default();
        let reason = job["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        if state == "succeeded" {
            self.note(&format!("job {id} succeeded{exit}"));
            Ok(())
        } else {
            Err(Failure::local(
                "job_failed",
                format!("job {id} {state}{exit}{reason}"),
                Some(format!("see `enclave jobs show {id} --project {project}`")),
            ))
        }
    }

    /// A progress line on standard error (never mixed with the job's output).
    pub(super) fn note(&mut self, text: &str) {
        let _ = writeln!(self.ctx.err, "{}", crate::client::sanitize(text));
    }
}

/// The command as one line for tables.
fn joined_command(mut job: Value) -> Value {
    if let Some(parts) = job["command"].as_array() {
        let line: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
        job["command"] = json!(line.join(" "));
    }
    if let Some(parts) = job["secrets"].as_array() {
        let line: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
        job["secrets"] = json!(line.join(", "));
    }
    job
}
