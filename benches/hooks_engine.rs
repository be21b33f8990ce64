//! One request through a hook: a no-op guest and a header-adding guest, each with pooled
//! and fresh instances. Run: `cargo bench --bench hooks_engine`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hook_engine::{EngineConfig, HookEngine, HookSpec, RequestContext, RequestParts};

/// A minimal proxy-wasm guest; `$body` runs in `proxy_on_request_headers`.
fn guest(body: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {body} (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (data (i32.const 16) "x-hook")
  (data (i32.const 32) "bench")
)"#
    )
}

const ADD_HEADER: &str =
    "(drop (call $add (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 5)))";

fn request() -> RequestParts {
    let mut request = RequestParts::new("GET", "/api/items?page=2", "app.example.test");
    request.headers = [
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("x-request-id", "0123456789abcdef"),
    ]
    .into_iter()
    .collect();
    request
}

fn hooks(c: &mut Criterion) {
    let engine = HookEngine::new(EngineConfig::default()).expect("engine");
    let context = RequestContext {
        container_id: "bench".into(),
        source: "127.0.0.1:40000".parse().ok(),
        ..RequestContext::default()
    };
    let template = request();
    for (name, body) in [("noop", ""), ("add_header", ADD_HEADER)] {
        let module = engine.compile_text(&guest(body)).expect("compiles");
        for fresh in [false, true] {
            let mut spec = HookSpec::new(name, module.clone());
            spec.timeout = Duration::from_secs(1);
            spec.fresh_instance = fresh;
            let label = format!(
                "hook_request/{name}/{}",
                if fresh { "fresh" } else { "pooled" }
            );
            c.bench_function(&label, |b| {
                b.iter(|| {
                    let mut parts = template.clone();
                    let (outcome, _log) = engine.on_request(&spec, &mut parts, context.clone());
                    black_box((outcome, parts))
                })
            });
        }
    }
    // The cost the proxy pays without a hook, for comparison: cloning the request.
    c.bench_function("hook_request/baseline_clone", |b| {
        b.iter(|| black_box(template.clone()))
    });
}

criterion_group!(benches, hooks);
criterion_main!(benches);
