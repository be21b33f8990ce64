//! The on-disk cache of compiled artifacts, keyed by the sha256 of the Wasm bytes, so a
//! restart or a remote data plane does not pay Cranelift again for a known module.
//!
//! Artifacts are native code: the directory must be writable only by this process. A file
//! that wasmtime refuses (another version, another CPU) is recompiled and overwritten.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    pub fn load(&self, sha256: &str) -> Option<Vec<u8>> {
        fs::read(self.path_for(sha256)).ok()
    }

    /// Writes through a temporary file and a rename so readers never see half an artifact.
    pub fn store(&self, sha256: &str, artifact: &[u8]) -> io::Result<()> {
        let target = self.path_for(sha256);
        let temporary = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        fs::write(&temporary, artifact)?;
        fs::rename(&temporary, &target)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
