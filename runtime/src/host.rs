//! Host facts and process plumbing: what must be installed, whether KVM exists, and the
//! child-subreaper role that makes container inits our children so their exits are
//! reaped here instead of piling up as zombies.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Result, RuntimeError};
use crate::image::BUSYBOX_STATIC;

/// The apt command that installs everything the runtime needs.
pub const INSTALL_HINT: &str = "apt-get install runc busybox-static nftables iproute2 tar";

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// True when the ELF file has no program interpreter, i.e. is statically linked: the
/// busybox image copies the binary into a root filesystem that has no libc.
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        data.get(at..at + 4)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != 3)
            .unwrap_or(false)
    })
}

/// Verifies the host tools; the error names what is missing and how to install it.
pub fn check_host() -> Result<()> {
    let mut missing = Vec::new();
    for (tool, package) in [
        ("runc", "runc"),
        ("nft", "nftables"),
        ("ip", "iproute2"),
        ("tar", "tar"),
    ] {
        if find_in_path(tool).is_none() {
            missing.push(format!("{tool} (package {package})"));
        }
    }
    if !is_static_elf(Path::new(BUSYBOX_STATIC)) {
        missing.push(format!(
            "a static {BUSYBOX_STATIC} (package busybox-static)"
        ));
    }
    if !missing.is_empty() {
        return Err(RuntimeError::Host(format!(
            "missing {}; install with `{INSTALL_HINT}`",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Whether /dev/kvm exists, for `setContainerKvm`.
pub fn kvm_available() -> bool {
    Path::new("/dev/kvm").exists()
}

/// Fails with [`RuntimeError::KvmUnavailable`] on a host without KVM.
pub fn require_kvm() -> Result<()> {
    if kvm_available() {
        Ok(())
    } else {
        Err(RuntimeError::KvmUnavailable)
    }
}

/// Makes this process the reaper of orphaned descendants: `runc run --detach` exits
/// after starting the container, and its init is re-parented to us rather than pid 1.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(RuntimeError::Host(format!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Reaps the container inits this runtime started. Only known pids are waited for, so
/// exit statuses of other children (tokio's subprocesses) are never stolen.
#[derive(Default)]
pub struct Reaper {
    pids: Mutex<HashSet<i32>>,
}

impl Reaper {
    pub fn watch(&self, pid: i32) {
        self.lock().insert(pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.pids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Collects exited inits; forgets pids that are not our children (adopted containers
    /// started by a previous hoody-api are reaped by whoever inherited them).
    pub fn reap(&self) {
        let mut pids = self.lock();
        pids.retain(
            |pid| match waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(status) => {
                    tracing::debug!(pid, ?status, "container init reaped");
                    false
                }
                Err(_) => false,
            },
        );
    }

    /// Reaps on every SIGCHLD (and every second as a safety net) until the owner is dropped.
    pub fn spawn(self: &Arc<Self>) {
        let weak: Weak<Reaper> = Arc::downgrade(self);
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child());
        tokio::spawn(async move {
            let mut signal = signal.ok();
            loop {
                match signal.as_mut() {
                    Some(sig) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), sig.recv()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(1)).await,
                }
                let Some(reaper) = weak.upgrade() else { break };
                reaper.reap();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_has_the_tools_installed() {
        check_host().unwrap();
        assert!(is_static_elf(Path::new(BUSYBOX_STATIC)));
        assert!(!is_static_elf(Path::new("/bin/sh")));
    }
}
