//! Shared test helpers: an engine, requests, and a small WAT guest whose callbacks each
//! test fills in.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hook_engine::{
    EngineConfig, HookEngine, HookOutcome, HookSpec, LogRecord, RequestContext, RequestParts,
    ResponseParts,
};

/// Asserts the phase continued.
pub fn continued(outcome: &HookOutcome) {
    assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
}

/// A bare `200` response head.
pub fn ok_response() -> ResponseParts {
    ResponseParts {
        status: 200,
        ..ResponseParts::default()
    }
}

pub fn engine() -> HookEngine {
    HookEngine::new(EngineConfig::default()).expect("engine starts")
}

pub fn context(container: &str) -> RequestContext {
    RequestContext {
        container_id: container.into(),
        source: "10.0.0.7:40100".parse().ok(),
        destination: "10.0.0.1:8000".parse().ok(),
        matched_group: Some("staff".to_string()),
        request_id: Some("req-1".to_string()),
    }
}

/// A header list of these pairs.
pub fn pairs(list: &[(&str, &str)]) -> hook_engine::HeaderList {
    list.iter().copied().collect()
}

pub fn get(path: &str) -> RequestParts {
    RequestParts::new("GET", path, "app.example.test")
}

pub fn spec(engine: &HookEngine, name: &str, module: Arc<hook_engine::CompiledModule>) -> HookSpec {
    let _ = engine;
    let mut spec = HookSpec::new(name, module);
    spec.timeout = Duration::from_millis(500);
    spec
}

/// Runs the request phase of a session and returns the outcome and the whole log.
pub fn run_request(
    engine: &HookEngine,
    spec: &HookSpec,
    request: &mut RequestParts,
) -> (HookOutcome, Vec<LogRecord>) {
    engine.on_request(spec, request, context("c1"))
}

pub fn header<'a>(request: &'a RequestParts, name: &str) -> Option<&'a str> {
    request
        .header(name)
        .and_then(|v| std::str::from_utf8(v).ok())
}

pub fn log_text(log: &[LogRecord]) -> String {
    log.iter()
        .map(|r| format!("[{}] {}", r.level.as_str(), r.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A proxy-wasm guest in WAT with a bump allocator (`malloc`, exercising the fallback)
/// and one body per callback. Memory layout: 16 "x-wat", 32 "yes", 48 "denied",
/// 64 invalid UTF-8 name, 96 "x-name-status", 128 "x-copy", 144 "x-bin", scratch at 200+.
#[derive(Default, Clone)]
pub struct Guest {
    pub imports: &'static str,
    pub initialize: &'static str,
    pub context_create: &'static str,
    pub vm_start: &'static str,
    pub configure: &'static str,
    pub request_headers: &'static str,
    pub request_body: &'static str,
    pub response_headers: &'static str,
    pub done: &'static str,
    pub tick: &'static str,
    pub extra: &'static str,
    pub memory_pages: u32,
}

/// Adds the header `x-wat: yes` to the request.
pub const ADD_HEADER: &str =
    "(drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3)))";

/// Answers 403 "denied".
pub const DENY: &str = "(drop (call $respond (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))";

pub const LOOP_FOREVER: &str = "(loop $spin (br $spin))";

impl Guest {
    pub fn wat(&self) -> String {
        let pages = self.memory_pages.max(1);
        format!(
            r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  {imports}
  (memory (export "memory") {pages})
  (global $heap (mut i32) (i32.const 4096))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize") {initialize})
  (func (export "proxy_on_context_create") (param i32 i32) {context_create})
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) {vm_start} (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {configure} (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {request_headers} (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) {request_body} (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) {response_headers} (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) {done} (i32.const 1))
  (func (export "proxy_on_tick") (param i32) {tick})
  (data (i32.const 16) "x-wat")
  (data (i32.const 32) "yes")
  (data (i32.const 48) "denied")
  (data (i32.const 64) "\ff\fe")
  (data (i32.const 96) "x-name-status")
  (data (i32.const 128) "x-copy")
  (data (i32.const 144) "x-bin")
  {extra}
)"#,
            imports = self.imports,
            pages = pages,
            initialize = self.initialize,
            context_create = self.context_create,
            vm_start = self.vm_start,
            configure = self.configure,
            request_headers = self.request_headers,
            request_body = self.request_body,
            response_headers = self.response_headers,
            done = self.done,
            tick = self.tick,
            extra = self.extra,
        )
    }

    pub fn compile(&self, engine: &HookEngine) -> Arc<hook_engine::CompiledModule> {
        engine.compile_text(&self.wat()).expect("guest compiles")
    }
}
