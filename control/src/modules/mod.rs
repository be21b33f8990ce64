//! The module store (our extension of the API): the WebAssembly modules a
//! container's hooks run, by name. Bytes live on disk by content
//! (`<data-dir>/modules/<sha256>.wasm`, where the data plane reads them and
//! caches compiled artifacts beside them); names, hashes and imports live in
//! sled. A container's unit carries `name → {sha256, size}` so remote data
//! planes fetch each module once by hash.

pub mod model;
pub mod routes;
pub mod service;

use std::path::{Path, PathBuf};

pub use service::refs_for_container;

/// Where module bytes are stored under the data directory.
pub fn module_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("modules")
}
