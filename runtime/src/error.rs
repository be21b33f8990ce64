//! Typed errors of the runtime, so the control plane can map each to an HTTP status
//! (NotFound → 404, AlreadyRunning/NotRunning → 409, InvalidSpec/ImageNotFound → 400).

use std::path::PathBuf;

/// Everything a runtime operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is paused")]
    Paused(String),
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    #[error("image {0:?} not found (known images: busybox, debian/11, debian/12, debian/13)")]
    ImageNotFound(String),
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    #[error("no free address left in subnet {0}")]
    AddressesExhausted(String),
    #[error("KVM is not available on this host: /dev/kvm does not exist")]
    KvmUnavailable,
    #[error("host is missing a requirement: {0}")]
    Host(String),
    #[error("command `{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt state file {path}: {message}")]
    State { path: PathBuf, message: String },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Attaches the path to an `io::Error`, because a bare "No such file or directory" is useless.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| RuntimeError::Io {
            path: path.into(),
            source,
        })
    }
}
