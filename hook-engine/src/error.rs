//! Errors of the engine's own API (compiling modules, configuring the engine). Failures of
//! a running hook are not errors of the caller: they are [`crate::HookOutcome::Failed`].

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),
    #[error("module imports {module}.{name}, which hooks do not provide")]
    UnsupportedImport { module: String, name: String },
    #[error("module imports {module}.{name} as a {kind}; hooks only import functions")]
    UnsupportedImportKind {
        module: String,
        name: String,
        kind: &'static str,
    },
    #[error("import {module}.{name} does not have the proxy-wasm signature: {reason}")]
    ImportSignature {
        module: String,
        name: String,
        reason: String,
    },
    #[error("module speaks proxy-wasm ABI {0}; hooks support 0.2.0 and 0.2.1")]
    UnsupportedAbi(String),
    #[error("module exports no memory; proxy-wasm guests must export `memory`")]
    NoMemory,
    #[error("module exports neither proxy_on_memory_allocate nor malloc")]
    NoAllocator,
    #[error("module too large: {size} bytes (limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("engine setup failed: {0}")]
    Engine(String),
    #[error("compiled-module cache: {0}")]
    Cache(#[from] std::io::Error),
}
