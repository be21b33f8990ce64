//! A dependency-free latency probe for the engine: the same guests and requests as the
//! criterion bench `benches/hooks_engine.rs`, timed in a plain loop. Useful when building
//! criterion is too slow:
//! `cargo --config profile.dev.opt-level=3 run -p hook-engine --example hook_latency`,
//! or in the release profile: `cargo build --release --workspace --example hook_latency`.
//! `HOOK_MODULE=file.wasm` adds a whole request (both phases) through a real module;
//! `HOOK_CASE=module/pooled` runs one case alone; `HOOK_INFLIGHT=N` instead runs the
//! module with N requests in flight at a time (their request phases, then their
//! response phases), as a loaded proxy does.

use std::time::{Duration, Instant};

use hook_engine::{
    EngineConfig, HookEngine, HookSpec, RequestContext, RequestParts, ResponseParts,
};

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

/// CPU time of this process (user + system) from /proc, so a busy machine's scheduling
/// does not inflate the figures; zero where /proc is unavailable.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // HOOK_ALLOCATOR_SLOTS=N sets the pooling allocator's slots; 0 maps memory per
    // instance instead; unset keeps the engine's default.
    let slots = match std::env::var("HOOK_ALLOCATOR_SLOTS")
        .ok()
        .map(|s| s.parse::<u32>())
    {
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        _ => EngineConfig::default().allocator_slots,
    };
    let engine = HookEngine::new(EngineConfig {
        allocator_slots: slots,
        ..EngineConfig::default()
    })?;
    let context = RequestContext {
        container_id: "bench".into(),
        source: "127.0.0.1:40000".parse().ok(),
        ..RequestContext::default()
    };
    let mut template = RequestParts::new("GET", "/api/items?page=2", "app.example.test");
    template.headers = [
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        ("x-request-id", "0123456789abcdef"),
    ]
    .into_iter()
    .collect();
    // HOOK_CASE=add_header/pooled (etc.) runs one case alone, e.g. under `perf stat`.
    let only = std::env::var("HOOK_CASE").ok();
    for (name, body) in [("noop", ""), ("add_header", ADD_HEADER)] {
        let module = engine.compile_text(&guest(body))?;
        for fresh in [false, true] {
            let mode = if fresh { "fresh" } else { "pooled" };
            if only
                .as_ref()
                .is_some_and(|c| *c != format!("{name}/{mode}"))
            {
                continue;
            }
            let mut spec = HookSpec::new(name, module.clone());
            spec.timeout = Duration::from_secs(1);
            spec.fresh_instance = fresh;
            measure(&format!("{name}/{mode}"), fresh, || {
                let mut parts = template.clone();
                let (outcome, _) = engine.on_request(&spec, &mut parts, context.clone());
                std::hint::black_box((outcome, parts));
            });
        }
    }
    if let Ok(path) = std::env::var("HOOK_MODULE") {
        module_cases(&engine, &path, &template, &context, only.as_deref())?;
    }
    Ok(())
}

/// HOOK_MODULE=file.wasm: a whole request through a real module, as the proxy runs it
/// (request phase, response phase, end of context), pooled and fresh.
fn module_cases(
    engine: &HookEngine,
    path: &str,
    template: &RequestParts,
    context: &RequestContext,
    only: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let module = engine.compile(&std::fs::read(path)?)?;
    let response = ResponseParts {
        status: 200,
        headers: [
            ("content-type", "text/plain"),
            ("content-length", "23"),
            ("server", "nginx"),
        ]
        .into_iter()
        .collect(),
        ..ResponseParts::default()
    };
    // HOOK_INFLIGHT=N keeps N requests in flight, as a loaded proxy does.
    let inflight: usize = std::env::var("HOOK_INFLIGHT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if let Some(rounds) = 200_000usize.checked_div(inflight) {
        let mut spec = HookSpec::new("module", module.clone());
        spec.config = b"bench".to_vec();
        in_flight(
            engine,
            &spec,
            (template, &response, context),
            inflight,
            rounds,
        );
        return Ok(());
    }
    for fresh in [false, true] {
        let mode = if fresh { "fresh" } else { "pooled" };
        if only.is_some_and(|c| c != format!("module/{mode}")) {
            continue;
        }
        let mut spec = HookSpec::new("module", module.clone());
        spec.config = b"bench".to_vec();
        spec.fresh_instance = fresh;
        measure(&format!("module/{mode}"), fresh, || {
            let mut request = template.clone();
            let mut reply = response.clone();
            let mut session = engine.session(&spec, context.clone());
            let outcome = session.on_request(&mut request);
            let answer = session.on_response(&mut reply);
            std::hint::black_box((outcome, answer, request, reply, session.finish()));
        });
    }
    Ok(())
}

/// `inflight` requests at a time: their request phases, then their response phases.
fn in_flight(
    engine: &HookEngine,
    spec: &HookSpec,
    (request, response, context): (&RequestParts, &ResponseParts, &RequestContext),
    inflight: usize,
    rounds: usize,
) {
    let (started, cpu_started) = (Instant::now(), cpu_time());
    for _ in 0..rounds {
        let mut sessions: Vec<_> = (0..inflight)
            .map(|_| {
                let mut parts = request.clone();
                let mut session = engine.session(spec, context.clone());
                std::hint::black_box((session.on_request(&mut parts), parts));
                session
            })
            .collect();
        for session in &mut sessions {
            let mut reply = response.clone();
            std::hint::black_box((session.on_response(&mut reply), reply));
        }
        for session in sessions {
            std::hint::black_box(session.finish());
        }
    }
    let n = (rounds * inflight) as u32;
    println!(
        "hook_request/module/inflight-{inflight}: {:?} wall, {:?} CPU per request",
        started.elapsed() / n,
        cpu_time().saturating_sub(cpu_started) / n
    );
}

/// Warms up, then times `run` and prints wall and CPU time per request (fewer
/// iterations for fresh instances, which cost ten times more).
fn measure(label: &str, fresh: bool, run: impl Fn()) {
    let iterations = if fresh { 20_000 } else { 200_000 };
    for _ in 0..iterations / 10 {
        run();
    }
    let (started, cpu_started) = (Instant::now(), cpu_time());
    for _ in 0..iterations {
        run();
    }
    let wall = started.elapsed() / iterations;
    let cpu = cpu_time().saturating_sub(cpu_started) / iterations;
    println!("hook_request/{label}: {wall:?} wall, {cpu:?} CPU per request");
}
