//! Validation and compilation of hook modules: a module is accepted only if it is valid
//! Wasm, speaks proxy-wasm 0.2.x, exports memory and an allocator, and imports nothing but
//! what [`crate::host`] and [`crate::wasi`] provide (or the spec functions linked as
//! "unimplemented"). Rejections say why, so the module store can answer 400 with it.

use sha2::{Digest, Sha256};
use wasmtime::{ExternType, FuncType, InstancePre, Linker, Module, Val, ValType};

use crate::error::HookError;
use crate::host;
use crate::module_store::ArtifactCache;
use crate::state::HostState;
use crate::wasi;

/// An import of a module, as the module store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    pub module: String,
    pub name: String,
    pub provision: Provision,
}

/// How the host answers an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provision {
    Implemented,
    /// Linked; accepted without effect.
    NoOp,
    /// Linked; answers `Unimplemented` (status 12), or traps when it cannot return one.
    Unimplemented,
}

/// A validated, compiled module ready to instantiate.
pub struct CompiledModule {
    pub(crate) pre: InstancePre<HostState>,
    sha256: String,
    size: usize,
    imports: Vec<ImportInfo>,
    abi_version: Option<String>,
    callbacks: Callbacks,
    /// Per-request callbacks the module exports that do nothing (see `inert.rs`).
    pub(crate) inert: Vec<&'static str>,
    /// Whether ending a request's context runs guest code (`proxy_on_done`,
    /// `proxy_on_log` or `proxy_on_delete` exported and not inert).
    pub(crate) ends_contexts: bool,
    from_cache: bool,
}

/// Which optional callbacks a module exports, so the proxy buffers a body or waits for the
/// response phase only for hooks that can see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Callbacks {
    pub request_body: bool,
    pub response_headers: bool,
    pub response_body: bool,
    pub response_trailers: bool,
}

impl Callbacks {
    /// Whether anything of the response phase runs guest code.
    pub fn response_phase(&self) -> bool {
        self.response_headers || self.response_body || self.response_trailers
    }
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("abi_version", &self.abi_version)
            .finish_non_exhaustive()
    }
}

impl CompiledModule {
    /// Hex sha256 of the Wasm bytes: the module's identity in the store and the cache.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn imports(&self) -> &[ImportInfo] {
        &self.imports
    }

    /// `0.2.1`, `0.2.0`, or `None` when the module exports no version marker.
    pub fn abi_version(&self) -> Option<&str> {
        self.abi_version.as_deref()
    }

    /// The optional callbacks the module exports.
    pub fn callbacks(&self) -> Callbacks {
        self.callbacks
    }

    /// Whether the artifact came from the on-disk cache instead of Cranelift.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) struct Compiler<'a> {
    pub engine: &'a wasmtime::Engine,
    pub linker: &'a Linker<HostState>,
    pub cache: Option<&'a ArtifactCache>,
    pub max_module_bytes: usize,
}

impl Compiler<'_> {
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledModule, HookError> {
        if bytes.len() > self.max_module_bytes {
            return Err(HookError::TooLarge {
                size: bytes.len(),
                limit: self.max_module_bytes,
            });
        }
        let sha256 = sha256_hex(bytes);
        Module::validate(self.engine, bytes)
            .map_err(|e| HookError::InvalidModule(error_text(&e)))?;
        let (module, from_cache) = self.load_or_compile(&sha256, bytes)?;
        let (linker, imports) = self.link(&module)?;
        let abi_version = check_exports(&module)?;
        let callbacks = exported_callbacks(&module);
        let imported_functions = module
            .imports()
            .filter(|i| matches!(i.ty(), ExternType::Func(_)))
            .count();
        let inert = crate::inert::inert_callbacks(bytes, imported_functions as u32);
        let ends_contexts = ["proxy_on_done", "proxy_on_log", "proxy_on_delete"]
            .iter()
            .any(|name| module.get_export(name).is_some() && !inert.contains(name));
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| HookError::InvalidModule(error_text(&e)))?;
        Ok(CompiledModule {
            pre,
            sha256,
            size: bytes.len(),
            imports,
            abi_version,
            callbacks,
            inert,
            ends_contexts,
            from_cache,
        })
    }

    fn load_or_compile(&self, sha256: &str, bytes: &[u8]) -> Result<(Module, bool), HookError> {
        if let Some(cache) = self.cache {
            if let Some(artifact) = cache.load(sha256) {
                // SAFETY: the cache directory is private to this process (see
                // `module_store`), and wasmtime rejects artifacts of another version.
                if let Ok(module) = unsafe { Module::deserialize(self.engine, &artifact) } {
                    return Ok((module, true));
                }
            }
        }
        let module = Module::new(self.engine, bytes)
            .map_err(|e| HookError::InvalidModule(error_text(&e)))?;
        if let Some(cache) = self.cache {
            let artifact = module
                .serialize()
                .map_err(|e| HookError::Engine(error_text(&e)))?;
            cache.store(sha256, &artifact)?;
        }
        Ok((module, false))
    }

    /// Checks every import and links the stubs this module needs with the signature it
    /// declares, so SDKs that disagree on an unimplemented function still instantiate.
    fn link(&self, module: &Module) -> Result<(Linker<HostState>, Vec<ImportInfo>), HookError> {
        let mut linker = self.linker.clone();
        linker.allow_shadowing(true);
        let mut imports = Vec::new();
        for import in module.imports() {
            let (m, name) = (import.module(), import.name());
            let ExternType::Func(ty) = import.ty() else {
                return Err(HookError::UnsupportedImportKind {
                    module: m.to_string(),
                    name: name.to_string(),
                    kind: extern_kind(&import.ty()),
                });
            };
            let provision = classify(m, name).ok_or_else(|| HookError::UnsupportedImport {
                module: m.to_string(),
                name: name.to_string(),
            })?;
            if provision != Provision::Implemented {
                define_stub(&mut linker, m, name, ty, provision)?;
            }
            imports.push(ImportInfo {
                module: m.to_string(),
                name: name.to_string(),
                provision,
            });
        }
        Ok((linker, imports))
    }
}

fn classify(module: &str, name: &str) -> Option<Provision> {
    if module == "env" {
        if host::IMPLEMENTED.contains(&name) {
            return Some(Provision::Implemented);
        }
        if host::NO_OPS.contains(&name) {
            return Some(Provision::NoOp);
        }
        if host::UNIMPLEMENTED.contains(&name) {
            return Some(Provision::Unimplemented);
        }
        return None;
    }
    (wasi::MODULES.contains(&module) && wasi::FUNCTIONS.contains(&name))
        .then_some(Provision::Implemented)
}

fn define_stub(
    linker: &mut Linker<HostState>,
    module: &str,
    name: &str,
    ty: FuncType,
    provision: Provision,
) -> Result<(), HookError> {
    let status = match provision {
        Provision::NoOp => 0,
        _ => crate::abi::Status::Unimplemented.code(),
    };
    let returns_status =
        ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
    let label = format!("{module}.{name}");
    linker
        .func_new(module, name, ty, move |_caller, _params, results| {
            if !returns_status {
                return Err(wasmtime::Error::msg(format!("{label} is not implemented")));
            }
            results[0] = Val::I32(status);
            Ok(())
        })
        .map_err(|e| HookError::Engine(error_text(&e)))?;
    Ok(())
}

/// The ABI marker export; 0.1.0 guests use other callback signatures and are refused.
fn check_exports(module: &Module) -> Result<Option<String>, HookError> {
    let mut abi = None;
    let mut memory = false;
    let mut allocator = false;
    for export in module.exports() {
        match export.name() {
            "memory" => memory = matches!(export.ty(), ExternType::Memory(_)),
            "proxy_on_memory_allocate" | "malloc" => allocator = true,
            name => {
                if let Some(version) = name.strip_prefix("proxy_abi_version_") {
                    abi = Some(version.replace('_', "."));
                }
            }
        }
    }
    if let Some(version) = &abi {
        if version != "0.2.1" && version != "0.2.0" {
            return Err(HookError::UnsupportedAbi(version.clone()));
        }
    }
    if !memory {
        return Err(HookError::NoMemory);
    }
    if !allocator {
        return Err(HookError::NoAllocator);
    }
    Ok(abi)
}

fn exported_callbacks(module: &Module) -> Callbacks {
    let exports = |name: &str| module.get_export(name).is_some();
    Callbacks {
        request_body: exports("proxy_on_request_body"),
        response_headers: exports("proxy_on_response_headers"),
        response_body: exports("proxy_on_response_body"),
        response_trailers: exports("proxy_on_response_trailers"),
    }
}

/// Converts the WebAssembly text format to a binary module (tests, `hook run file.wat`,
/// `.wat` modules in a standalone routes file).
pub fn wat_to_wasm(text: &str) -> Result<Vec<u8>, HookError> {
    wat::parse_str(text).map_err(|e| HookError::InvalidModule(e.to_string()))
}

fn extern_kind(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        _ => "tag",
    }
}

/// The message of an error with its causes, on one line.
pub(crate) fn error_text(error: &wasmtime::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}
