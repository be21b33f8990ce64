//! Hooks through the real proxy (`hoody-api dataplane --routes FILE`): every example guest
//! (our SDK, the official proxy-wasm crate, AssemblyScript) placed on a route, and
//! adversarial guests written in WAT (endless loops, traps in each callback, memory growth).
//! The example modules are built by `hooks-sdk/build-examples.sh` (Debian's rustc 1.63 and
//! npm), which the first test to need them runs.

mod common;
mod dataplane_support;

use std::path::Path;
use std::time::{Duration, Instant};

use dataplane_support::*;
use serde_json::json;

fn example(name: &str) -> String {
    common::hook_example(name).display().to_string()
}

/// A route whose every request runs `hook` (a hook object without its id), with the
/// route's module store holding `modules`.
fn hooked(
    host: &str,
    backend: &Backend,
    hook: serde_json::Value,
    modules: serde_json::Value,
) -> serde_json::Value {
    let mut hook = hook;
    hook["id"] = json!(format!("01hooks{:0>19}", host.len()));
    json!({
        "host": host,
        "upstream": backend.url(),
        "proxy": {"default": "allow", "hooks": {"http": [hook]}},
        "modules": modules,
    })
}

fn header_line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The backend's echo of what reached it.
fn echoed(text: &str) -> serde_json::Value {
    let body = &text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an echo ({e}): {text}"))
}

fn post(addr: std::net::SocketAddr, host: &str, path: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw_request(addr, &req);
    (
        status_of(&resp),
        String::from_utf8_lossy(&resp).into_owned(),
    )
}

#[test]
fn sdk_examples_edit_deny_route_and_answer_through_the_proxy() {
    let backend = Backend::start("app");
    let modules = |name: &str| json!({ format!("{name}.wasm"): example(name) });
    let routes = json!({"routes": [
        hooked("tag.test", &backend,
            json!({"script": {"path": "add_header.wasm", "config": "blue"}}), modules("add_header")),
        hooked("fresh.test", &backend,
            json!({"script": {"path": "add_header.wasm", "config": "fresh"}, "fresh_instance": true}),
            modules("add_header")),
        hooked("deny.test", &backend,
            json!({"script": {"path": "path_deny.wasm", "config": "/admin"}}), modules("path_deny")),
        hooked("jwt.test", &backend,
            json!({"script": {"path": "jwt_route.wasm"}}), modules("jwt_route")),
        hooked("limit.test", &backend,
            json!({"script": {"path": "rate_limit.wasm", "config": "2"}}), modules("rate_limit")),
    ]});
    let proxy = Proxy::start(&routes, &[]);

    let (status, text) = get(proxy.addr, "tag.test", "/orders", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["headers"]["x-hook"], "blue");
    assert_eq!(header_line(&text, "x-hook-response"), Some("blue"));
    let (status, text) = get(proxy.addr, "fresh.test", "/", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["headers"]["x-hook"], "fresh");

    let (status, text) = get(proxy.addr, "deny.test", "/admin/keys", "");
    assert_eq!(status, 403, "{text}");
    assert!(text.ends_with("forbidden by hook\n"), "{text}");
    let (status, _) = get(proxy.addr, "deny.test", "/public", "");
    assert_eq!(status, 200);

    // payload {"sub":"u1","tier":"gold","n":5}
    let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsInRpZXIiOiJnb2xkIiwibiI6NX0.sig";
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, text) = get(proxy.addr, "jwt.test", "/orders?page=1", &auth);
    assert_eq!(status, 200, "{text}");
    let echo = echoed(&text);
    assert_eq!(echo["request_line"], "GET /gold/orders?page=1 HTTP/1.1");
    assert_eq!(echo["headers"]["x-user"], "u1");
    let (status, _) = get(proxy.addr, "jwt.test", "/orders", "");
    assert_eq!(status, 401);

    for expected in ["1", "2"] {
        let (status, text) = get(proxy.addr, "limit.test", "/", "");
        assert_eq!(status, 200, "{text}");
        assert_eq!(echoed(&text)["headers"]["x-ratelimit-count"], expected);
    }
    let (status, text) = get(proxy.addr, "limit.test", "/", "");
    assert_eq!(status, 429, "{text}");
    assert_eq!(header_line(&text, "retry-after"), Some("60"));

    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("hoody_proxy_hook_runs_total{result=\"respond\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("hoody_proxy_hook_runs_total{result=\"continue\"} 0\n"),
        "{metrics}"
    );
}

#[test]
fn json_responder_sees_the_group_that_admitted_the_request() {
    let backend = Backend::start("app");
    let mut route = hooked(
        "json.test",
        &backend,
        json!({"script": {"path": "responder"}, "applies_to": {"groups": ["staff"]}}),
        json!({"responder": example("json_responder")}),
    );
    route["proxy"]["groups"] = json!({
        "staff": {"type": "password", "username": "ann", "password": "pw", "salt": ""},
        "office": {"type": "ip", "range": "10.99.0.0/16"},
    });
    route["proxy"]["permissions"] = json!({"staff": {"http": true}, "office": {"http": true}});
    route["proxy"]["default"] = json!("deny");
    let proxy = Proxy::start(&json!({"routes": [route]}), &[]);

    let (status, text) = get(
        proxy.addr,
        "json.test",
        "/hook/info",
        "Authorization: Basic YW5uOnB3\r\nUser-Agent: probe\r\n",
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(header_line(&text, "content-type"), Some("application/json"));
    assert!(text.contains("\"group\":\"staff\""), "{text}");
    assert!(text.contains("\"host\":\"json.test\""), "{text}");
    let (status, text) = get(
        proxy.addr,
        "json.test",
        "/other",
        "Authorization: Basic YW5uOnB3\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(echoed(&text)["backend"], "app");
}

#[test]
fn a_hook_limited_to_a_group_skips_requests_of_other_groups() {
    let backend = Backend::start("app");
    let mut route = hooked(
        "groups.test",
        &backend,
        json!({"script": {"path": "deny", "config": "/"}, "applies_to": {"groups": ["admins"]}}),
        json!({"deny": example("path_deny")}),
    );
    route["proxy"]["groups"] =
        json!({"staff": {"type": "password", "username": "ann", "password": "pw", "salt": ""}});
    route["proxy"]["permissions"] = json!({"staff": {"http": true}});
    let proxy = Proxy::start(&json!({"routes": [route]}), &[]);
    let (status, text) = get(
        proxy.addr,
        "groups.test",
        "/",
        "Authorization: Basic YW5uOnB3\r\n",
    );
    assert_eq!(status, 200, "{text}");
}

#[test]
fn official_proxy_wasm_and_assemblyscript_guests_run_unchanged() {
    let backend = Backend::start("app");
    let routes = json!({"routes": [
        hooked("official.test", &backend,
            json!({"script": {"path": "filter.wasm", "config": "envoy-compatible"}}),
            json!({"filter.wasm": example("proxy_wasm_official")})),
        hooked("as.test", &backend,
            json!({"script": {"path": "as.wasm"}}), json!({"as.wasm": example("as_tag")})),
    ]});
    let proxy = Proxy::start(&routes, &[]);

    let (status, text) = get(proxy.addr, "official.test", "/items", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["headers"]["x-proxy-wasm"], "envoy-compatible");
    assert_eq!(
        header_line(&text, "x-proxy-wasm-response"),
        Some("envoy-compatible")
    );
    let (status, text) = get(proxy.addr, "official.test", "/official-deny/x", "");
    assert_eq!(status, 403, "{text}");
    assert_eq!(header_line(&text, "x-denied-by"), Some("proxy-wasm"));

    let (status, text) = get(proxy.addr, "as.test", "/", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["headers"]["x-as-hook"], "assemblyscript");
    let (status, _) = get(proxy.addr, "as.test", "/as-deny", "");
    assert_eq!(status, 403);
}

/// A proxy-wasm guest in WAT; each field is the body of one callback. Memory: 16
/// "x-wat", 32 "yes", 48 "denied", 64 "ticks" (a metric name; its id goes to 80),
/// 96 "rewritten!". `proxy_on_response_body` is exported only when given.
#[derive(Default)]
struct Wat {
    configure: &'static str,
    request_headers: &'static str,
    request_body: &'static str,
    response_headers: &'static str,
    response_body: &'static str,
    done: &'static str,
    tick: &'static str,
}

const ADD_HEADER: &str =
    "(drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3)))";
const ADD_RESPONSE_HEADER: &str =
    "(drop (call $add (i32.const 2) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3)))";
const LOOP_FOREVER: &str = "(loop $spin (br $spin))";
const TRAP: &str = "unreachable";
/// Replaces the whole buffered request (0) or response (1) body with "rewritten!".
const REWRITE_REQUEST_BODY: &str =
    "(drop (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 96) (i32.const 10)))";
const REWRITE_RESPONSE_BODY: &str =
    "(drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const -1) (i32.const 96) (i32.const 10)))";
/// Grows memory a page at a time until refused, then answers 507 when the memory stayed
/// within 32 MiB (512 pages) and 500 otherwise.
const GROW_UNTIL_REFUSED: &str = r#"(block $full (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
      (drop (call $respond
        (select (i32.const 507) (i32.const 500) (i32.le_u (memory.size) (i32.const 512)))
        (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))"#;

impl Wat {
    fn text(&self) -> String {
        let response_body = if self.response_body.is_empty() {
            String::new()
        } else {
            format!(
                r#"(func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) {} (i32.const 0))"#,
                self.response_body
            )
        };
        format!(
            r#"(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $period (param i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {} (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {} (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) {} (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) {} (i32.const 0))
  {}
  (func (export "proxy_on_done") (param i32) (result i32) {} (i32.const 1))
  (func (export "proxy_on_tick") (param i32) {})
  (data (i32.const 16) "x-wat")
  (data (i32.const 32) "yes")
  (data (i32.const 48) "denied")
  (data (i32.const 64) "ticks")
  (data (i32.const 96) "rewritten!")
)"#,
            self.configure,
            self.request_headers,
            self.request_body,
            self.response_headers,
            response_body,
            self.done,
            self.tick
        )
    }
}

/// Writes `guest` next to the routes file and returns a route running it.
fn wat_route(
    dir: &Path,
    host: &str,
    backend: &Backend,
    guest: Wat,
    hook: serde_json::Value,
) -> serde_json::Value {
    let file = format!("{host}.wat");
    std::fs::write(dir.join(&file), guest.text()).unwrap();
    let mut hook = hook;
    hook["script"] = json!({"path": "guest"});
    hooked(host, backend, hook, json!({ "guest": file }))
}

fn start_in(dir: &Path, routes: Vec<serde_json::Value>) -> Proxy {
    let file = dir.join("routes.json");
    std::fs::write(&file, json!({"routes": routes}).to_string()).unwrap();
    Proxy::start_with_file(file, &[])
}

fn error_code(text: &str) -> String {
    let body = &text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    value["code"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_endless_loop_is_stopped_at_its_timeout_while_other_requests_flow() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-loop");
    let spin = || Wat {
        request_headers: LOOP_FOREVER,
        ..Wat::default()
    };
    let proxy = start_in(
        &dir,
        vec![
            // Beyond the inline budget: runs on the blocking pool.
            wat_route(
                &dir,
                "slow.test",
                &backend,
                spin(),
                json!({"timeout": 1500}),
            ),
            // Within it: runs on the worker, which it holds for at most 20 ms.
            wat_route(&dir, "quick.test", &backend, spin(), json!({"timeout": 20})),
            wat_route(
                &dir,
                "fine.test",
                &backend,
                Wat {
                    request_headers: ADD_HEADER,
                    ..Wat::default()
                },
                json!({}),
            ),
        ],
    );
    let addr = proxy.addr;
    let stuck: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(addr, "slow.test", "/", "")))
        .collect();
    // While three guests spin, both workers keep serving.
    for _ in 0..20 {
        let (status, text) = get(proxy.addr, "fine.test", "/", "");
        assert_eq!(status, 200, "{text}");
        assert_eq!(echoed(&text)["headers"]["x-wat"], "yes");
    }
    for handle in stuck {
        let (status, text) = handle.join().unwrap();
        assert_eq!(status, 504, "{text}");
        assert_eq!(error_code(&text), "HOOK_TIMEOUT");
        assert!(text.contains("exceeded its timeout of 1500 ms"), "{text}");
    }
    let (status, text) = get(proxy.addr, "quick.test", "/", "");
    assert_eq!(status, 504, "{text}");
    assert_eq!(error_code(&text), "HOOK_TIMEOUT");
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("hoody_proxy_hook_runs_total{result=\"timeout\"} 4"),
        "{metrics}"
    );
}

#[test]
fn guests_rewrite_buffered_bodies_both_ways() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-bodies");
    let routes = vec![
        wat_route(
            &dir,
            "request-body.test",
            &backend,
            Wat {
                request_body: REWRITE_REQUEST_BODY,
                ..Wat::default()
            },
            json!({}),
        ),
        wat_route(
            &dir,
            "response-body.test",
            &backend,
            Wat {
                response_headers: ADD_RESPONSE_HEADER,
                response_body: REWRITE_RESPONSE_BODY,
                ..Wat::default()
            },
            json!({}),
        ),
    ];
    let proxy = start_in(&dir, routes);
    // The upstream gets the guest's body, framed by its own length.
    let (status, text) = post(proxy.addr, "request-body.test", "/", "payload");
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["body_len"], 10, "{text}");
    // The client gets the guest's body, and the header it added alongside.
    let (status, text) = post(proxy.addr, "response-body.test", "/", "payload");
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nrewritten!"), "{text}");
    assert_eq!(header_line(&text, "content-length"), Some("10"), "{text}");
    assert_eq!(header_line(&text, "x-wat"), Some("yes"), "{text}");
}

#[test]
fn a_trap_in_each_callback_follows_the_failure_mode() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-traps");
    let cases = ["headers", "body", "response", "configure"];
    let mut routes = Vec::new();
    for name in cases {
        for mode in ["fail-closed", "fail-open"] {
            let guest = match name {
                "headers" => Wat {
                    request_headers: TRAP,
                    ..Wat::default()
                },
                "body" => Wat {
                    request_body: TRAP,
                    ..Wat::default()
                },
                "response" => Wat {
                    response_headers: TRAP,
                    ..Wat::default()
                },
                _ => Wat {
                    configure: TRAP,
                    ..Wat::default()
                },
            };
            routes.push(wat_route(
                &dir,
                &format!("{name}-{mode}.test"),
                &backend,
                guest,
                json!({"failure_mode": mode}),
            ));
        }
    }
    routes.push(wat_route(
        &dir,
        "done.test",
        &backend,
        Wat {
            request_headers: ADD_HEADER,
            done: TRAP,
            ..Wat::default()
        },
        json!({}),
    ));
    let proxy = start_in(&dir, routes);
    for name in cases {
        // Twice each: the trapped instance is thrown away and a new one fails the same way.
        for _ in 0..2 {
            let closed = format!("{name}-fail-closed.test");
            let (status, text) = post(proxy.addr, &closed, "/", "payload");
            assert_eq!(status, 502, "{name}: {text}");
            assert_eq!(error_code(&text), "HOOK_FAILED", "{name}");
            let open = format!("{name}-fail-open.test");
            let (status, text) = post(proxy.addr, &open, "/", "payload");
            assert_eq!(status, 200, "{name}: {text}");
            assert_eq!(echoed(&text)["body_len"], 7, "{name}");
        }
    }
    // A trap after the response (proxy_on_done) cannot change the answer.
    for _ in 0..2 {
        let (status, text) = get(proxy.addr, "done.test", "/", "");
        assert_eq!(status, 200, "{text}");
        assert_eq!(echoed(&text)["headers"]["x-wat"], "yes");
    }
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("hoody_proxy_hook_fail_open_total 8"),
        "{metrics}"
    );
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-memory");
    let proxy = start_in(
        &dir,
        vec![wat_route(
            &dir,
            "grow.test",
            &backend,
            Wat {
                request_headers: GROW_UNTIL_REFUSED,
                ..Wat::default()
            },
            json!({"timeout": 2000, "fresh_instance": true}),
        )],
    );
    for _ in 0..2 {
        let (status, text) = get(proxy.addr, "grow.test", "/", "");
        assert_eq!(status, 507, "{text}");
        assert!(text.ends_with("denied"), "{text}");
    }
}

#[test]
fn a_hook_whose_module_is_missing_fails_closed_and_the_routes_still_apply() {
    let backend = Backend::start("app");
    let mut route = hooked(
        "missing.test",
        &backend,
        json!({"script": {"path": "nowhere.wasm"}}),
        json!({}),
    );
    let open = hooked(
        "missing-open.test",
        &backend,
        json!({"script": {"path": "nowhere.wasm"}, "failure_mode": "fail-open"}),
        json!({}),
    );
    route["proxy"]["enable_proxy"] = json!(true);
    let proxy = Proxy::start(&json!({"routes": [route, open]}), &[]);
    let (status, text) = get(proxy.addr, "missing.test", "/", "");
    assert_eq!(status, 502, "{text}");
    assert_eq!(error_code(&text), "HOOK_FAILED");
    let (status, _) = get(proxy.addr, "missing-open.test", "/", "");
    assert_eq!(status, 200);
}

#[test]
fn an_invalid_module_file_rejects_the_routes_file() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-invalid");
    std::fs::write(dir.join("bad.wasm"), b"not wasm at all").unwrap();
    let routes = json!({"routes": [hooked("bad.test", &backend,
        json!({"script": {"path": "bad"}}), json!({"bad": "bad.wasm"}))]});
    let file = dir.join("routes.json");
    std::fs::write(&file, routes.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoody-api"))
        .args(["dataplane", "--routes"])
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("module `bad`"), "{stderr}");
    assert!(stderr.contains("invalid WebAssembly module"), "{stderr}");
}

#[test]
fn a_port_specific_hook_list_runs_before_the_program_wide_one() {
    let backend = Backend::start("app");
    let port = backend.addr.port();
    let route = json!({
        "host": "ports.test",
        "upstream": backend.url(),
        "proxy": {"default": "allow", "hooks": {
            "http": [{"id": "01hooksgeneral000000000000", "script": {"path": "tag", "config": "general"}}],
            format!("http-{port}"): [{"id": "01hooksspecific00000000000", "script": {"path": "tag", "config": "specific"},
                "match": {"path": "/api/**"}}],
        }},
        "modules": {"tag": example("add_header")},
    });
    let proxy = Proxy::start(&json!({"routes": [route]}), &[]);
    let (_, text) = get(proxy.addr, "ports.test", "/api/x", "");
    assert_eq!(echoed(&text)["headers"]["x-hook"], "specific");
    let (_, text) = get(proxy.addr, "ports.test", "/web", "");
    assert_eq!(echoed(&text)["headers"]["x-hook"], "general");
}

/// A guest that asks for a tick period is ticked by the proxy on its own: its tick
/// counter (a guest metric) climbs with no request in between.
#[test]
fn guests_that_ask_for_ticks_get_them() {
    let backend = Backend::start("app");
    let dir = scratch_dir("hook-ticks");
    let guest = Wat {
        configure:
            "(drop (call $define (i32.const 0) (i32.const 64) (i32.const 5) (i32.const 80))) \
                    (drop (call $period (i32.const 10)))",
        tick: "(drop (call $inc (i32.load (i32.const 80)) (i64.const 1)))",
        ..Wat::default()
    };
    let proxy = start_in(
        &dir,
        vec![wat_route(&dir, "ticks.test", &backend, guest, json!({}))],
    );
    // The first request starts the instance, which then asks for ticks.
    assert_eq!(get(proxy.addr, "ticks.test", "/", "").0, 200);
    let ticks = || {
        let metrics = proxy.metrics_text();
        metrics
            .lines()
            .find(|l| l.starts_with("hoody_hook_counter{") && l.contains("name=\"ticks\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ticks() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ticks() >= 3, "{}", proxy.metrics_text());
}
