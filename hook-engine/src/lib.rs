//! The proxy-wasm ABI v0.2.1 host that runs tenants' HTTP hooks, on wasmtime 48.
//!
//! A hook is a WebAssembly module written with any proxy-wasm SDK (our `hooks-sdk`, the
//! official Rust `proxy-wasm` crate, AssemblyScript...). The proxy compiles it once when
//! it is uploaded, then, per request, hands the engine the request (and later the
//! response) and acts on the [`HookOutcome`].
//!
//! ```no_run
//! use hook_engine::{EngineConfig, HookEngine, HookOutcome, HookSpec, RequestContext, RequestParts};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = HookEngine::new(EngineConfig::default())?;
//! let module = engine.compile(&std::fs::read("hook.wasm")?)?; // 400 on Err at upload
//! let mut spec = HookSpec::new("add-header", module);
//! spec.config = br#"{"tag":"v1"}"#.to_vec();
//!
//! let context = RequestContext { container_id: "c1".into(), ..Default::default() };
//! let mut session = engine.session(&spec, context);
//! let mut request = RequestParts::new("GET", "/api", "app.example.test");
//! match session.on_request(&mut request) {
//!     HookOutcome::Continue(_changes) => { /* forward `request` (already edited) */ }
//!     HookOutcome::LocalResponse(_response) => { /* answer it, skip the upstream */ }
//!     HookOutcome::Failed(failure) => { /* fail-open: forward; fail-closed: failure.response */
//!         let _ = failure;
//!     }
//! }
//! // ... upstream answers, then: session.on_response(&mut response_parts) ...
//! let _log = session.finish(); // ends the context, pools the instance
//! # Ok(()) }
//! ```
//!
//! What the engine guarantees:
//! - every call into a guest ends by its hook's timeout (epoch deadline, one ticker
//!   thread per engine) and a guest's memory never exceeds [`HookLimits::memory_bytes`];
//! - an instance that trapped or timed out is dropped, never pooled; requests whose
//!   contexts it hosted (a pooled instance is shared by its thread's requests in
//!   flight, see [`HookSpec::shared_instance`]) fail their next phase;
//! - the request or response given to a phase is edited only when the phase continues;
//! - guests see no files, sockets, environment or arguments; WASI output becomes the log;
//! - shared data and metrics are namespaced by [`RequestContext::container_id`].
//!
//! What it never does: block on I/O, or depend on the proxy's HTTP types.

pub mod abi;
pub mod cli;
mod compile;
mod edits;
mod engine;
mod error;
mod fields;
mod head_map;
mod headers;
mod host;
mod inert;
mod instance;
pub mod module_store;
mod outcome;
mod pool;
mod properties;
mod sandbox;
mod shared;
mod state;
mod wasi;

pub use abi::LogLevel;
pub use compile::{sha256_hex, wat_to_wasm, Callbacks, CompiledModule, ImportInfo, Provision};
pub use edits::{HeaderEdit, HeaderEdits};
pub use engine::{EngineConfig, HookEngine, HookSession};
pub use error::HookError;
pub use fields::Fields;
pub use headers::HeaderList;
pub use outcome::{
    Changes, FailureKind, FailurePolicy, HookFailure, HookOutcome, HookSpec, LocalResponse,
    LogRecord, RequestContext, RequestParts, RequestPseudo, ResponseParts, Rewrite,
};
pub use state::HookLimits;
