//! The `runc` command line, with a private `--root` so a runtime only ever sees (and
//! `runc list` only ever returns) its own containers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use crate::command::{self, CommandOutput};
use crate::error::{IoContext, Result, RuntimeError};

pub const RUNC: &str = "runc";

/// Status as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuncStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// The part of `runc state` / `runc list` the runtime needs.
#[derive(Debug, Clone, Deserialize)]
pub struct RuncState {
    pub id: String,
    pub pid: i32,
    pub status: RuncStatus,
}

/// A runc binary bound to one state root.
#[derive(Debug, Clone)]
pub struct Runc {
    root: PathBuf,
}

fn not_found(stderr: &str) -> bool {
    stderr.contains("does not exist") || stderr.contains("not exist")
}

impl Runc {
    pub fn new(root: PathBuf) -> Self {
        Runc { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--root", self.root.to_str().unwrap_or_default()];
        args.extend_from_slice(rest);
        args
    }

    async fn output(&self, rest: &[&str]) -> Result<CommandOutput> {
        command::output(RUNC, &self.args(rest), None).await
    }

    async fn run(&self, rest: &[&str]) -> Result<String> {
        command::run(RUNC, &self.args(rest)).await
    }

    /// Starts a container detached. The container's stdio goes to `log`: a pipe would be
    /// held open by the container and make this call wait forever.
    pub async fn run_detached(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        log: &Path,
    ) -> Result<()> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .at(log)?;
        let err_file = log_file.try_clone().at(log)?;
        let bundle_arg = bundle.to_string_lossy().into_owned();
        let pid_arg = pid_file.to_string_lossy().into_owned();
        let args = self.args(&[
            "run",
            "--detach",
            "--bundle",
            bundle_arg.as_str(),
            "--pid-file",
            pid_arg.as_str(),
            id,
        ]);
        let status = tokio::process::Command::new(RUNC)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .status()
            .await
            .map_err(|e| RuntimeError::Command {
                command: format!("runc run {id}"),
                stderr: e.to_string(),
            })?;
        if status.success() {
            return Ok(());
        }
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        Err(RuntimeError::Command {
            command: format!("runc run {id}"),
            stderr: tail,
        })
    }

    /// Whether runc keeps state for the container: a file check, no subprocess, so the
    /// common "not running" case of `start` costs nothing.
    pub fn has_state(&self, id: &str) -> bool {
        self.root.join(id).join("state.json").exists()
    }

    /// `None` when runc has no such container.
    pub async fn state(&self, id: &str) -> Result<Option<RuncState>> {
        if !self.has_state(id) {
            return Ok(None);
        }
        let out = self.output(&["state", id]).await?;
        if out.status != 0 {
            if not_found(&out.stderr) {
                return Ok(None);
            }
            return Err(RuntimeError::Command {
                command: format!("runc state {id}"),
                stderr: out.stderr,
            });
        }
        serde_json::from_str(&out.stdout)
            .map(Some)
            .map_err(|e| RuntimeError::Command {
                command: format!("runc state {id}"),
                stderr: format!("unreadable output: {e}"),
            })
    }

    /// All containers under this root.
    pub async fn list(&self) -> Result<Vec<RuncState>> {
        let out = self.run(&["list", "--format", "json"]).await?;
        let trimmed = out.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_str(trimmed).map_err(|e| RuntimeError::Command {
            command: "runc list".into(),
            stderr: format!("unreadable output: {e}"),
        })
    }

    /// Sends a signal to the init process; a container that is already gone is fine.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let out = self.output(&["kill", id, signal]).await?;
        if out.status == 0 || not_found(&out.stderr) || out.stderr.contains("not running") {
            return Ok(());
        }
        Err(RuntimeError::Command {
            command: format!("runc kill {id} {signal}"),
            stderr: out.stderr,
        })
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        self.run(&["pause", id]).await.map(|_| ())
    }

    pub async fn resume(&self, id: &str) -> Result<()> {
        self.run(&["resume", id]).await.map(|_| ())
    }

    /// Removes runc's state and cgroups of the container (idempotent).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let out = self.output(&["delete", "--force", id]).await?;
        if out.status == 0 || not_found(&out.stderr) {
            return Ok(());
        }
        Err(RuntimeError::Command {
            command: format!("runc delete --force {id}"),
            stderr: out.stderr,
        })
    }

    /// Runs a command inside the running container and returns its output.
    pub async fn exec(&self, id: &str, argv: &[String]) -> Result<CommandOutput> {
        let mut args: Vec<&str> = vec!["exec", id];
        args.extend(argv.iter().map(String::as_str));
        self.output(&args).await
    }
}
