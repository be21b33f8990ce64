//! Running host tools (runc, ip, nft, tar, mount helpers) as subprocesses with their
//! stderr turned into a typed error, so a failure says which command and why.

use std::ffi::OsStr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{Result, RuntimeError};

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

fn describe<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// Runs a command and returns its output whatever the exit status.
pub async fn output<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&[u8]>,
) -> Result<CommandOutput> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| RuntimeError::Command {
        command: describe(program, args),
        stderr: format!("cannot spawn: {e}"),
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let written = pipe.write_all(input).await;
        drop(pipe);
        written.map_err(|e| RuntimeError::Command {
            command: describe(program, args),
            stderr: format!("cannot write stdin: {e}"),
        })?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| RuntimeError::Command {
            command: describe(program, args),
            stderr: e.to_string(),
        })?;
    Ok(CommandOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command and fails unless it exits 0.
pub async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    run_with_input(program, args, None).await
}

/// Like [`run`], feeding `stdin` to the command (used for `nft -f -`).
pub async fn run_with_input<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&[u8]>,
) -> Result<String> {
    let out = output(program, args, stdin).await?;
    if out.status == 0 {
        Ok(out.stdout)
    } else {
        Err(RuntimeError::Command {
            command: describe(program, args),
            stderr: format!("exit {}: {}", out.status, out.stderr.trim()),
        })
    }
}
