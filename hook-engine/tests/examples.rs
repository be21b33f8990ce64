//! Every example guest (our SDK, the official proxy-wasm crate, AssemblyScript) run
//! through the engine. The modules are built by `hooks-sdk/build-examples.sh`, which this
//! test runs first (Debian's rustc/cargo 1.63 and node/npm must be installed).

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;

use hook_engine::{
    HeaderEdit, HeaderList, HookEngine, HookOutcome, HookSpec, Provision, RequestParts,
    RequestPseudo,
};
use support::*;

fn examples_dir() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = root.join("target/hooks-examples");
        let status = std::process::Command::new("sh")
            .arg(root.join("hooks-sdk/build-examples.sh"))
            .env("HOOKS_EXAMPLES_OUT", &out)
            .status()
            .expect("runs build-examples.sh");
        assert!(status.success(), "hooks-sdk/build-examples.sh failed");
        out
    })
}

fn load(engine: &HookEngine, name: &str) -> HookSpec {
    let path = examples_dir().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let module = engine
        .compile(&bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    spec(engine, name, module)
}

fn changes_of(outcome: HookOutcome) -> hook_engine::Changes {
    match outcome {
        HookOutcome::Continue(changes) => changes,
        other => panic!("expected the request to continue, got {other:?}"),
    }
}

fn local(outcome: HookOutcome) -> hook_engine::LocalResponse {
    match outcome {
        HookOutcome::LocalResponse(response) => response,
        other => panic!("expected a local response, got {other:?}"),
    }
}

#[test]
fn add_header_tags_requests_and_responses() {
    let engine = engine();
    let hook = load(&engine, "add_header");
    let mut session = engine.session(&hook, context("c1"));
    let mut request = get("/orders");
    continued(&session.on_request(&mut request));
    assert_eq!(header(&request, "x-hook"), Some("hooks-sdk"));
    assert_eq!(header(&request, "x-client"), Some("10.0.0.7:40100"));
    let mut response = ok_response();
    continued(&session.on_response(&mut response));
    assert_eq!(response.header("x-hook-response"), Some(&b"hooks-sdk"[..]));
    assert!(log_text(&session.finish()).contains("tagged GET /orders"));
}

#[test]
fn guests_run_on_a_lent_head_and_their_edits_come_back_as_changes() {
    let engine = engine();
    let hook = load(&engine, "add_header");
    let mut session = engine.session(&hook, context("c1"));
    let pseudo = RequestPseudo {
        method: "GET",
        path: "/orders",
        authority: "shop.test",
        scheme: "http",
    };
    let headers: HeaderList = [("accept", "*/*")].into_iter().collect();
    let changes = changes_of(session.on_request_lent(pseudo, &headers));
    assert_eq!(
        changes.headers.iter().collect::<Vec<_>>(),
        [
            HeaderEdit::Replace(b"x-hook", b"hooks-sdk"),
            HeaderEdit::Replace(b"x-client", b"10.0.0.7:40100"),
        ]
    );
    assert!(changes.rewrite.is_none());
    let upstream: HeaderList = [("server", "up")].into_iter().collect();
    let changes = changes_of(session.on_response_lent(200, &upstream));
    assert_eq!(
        changes.headers.iter().collect::<Vec<_>>(),
        [HeaderEdit::Replace(b"x-hook-response", b"hooks-sdk")]
    );
    assert_eq!(changes.status, None);
    assert!(log_text(&session.finish()).contains("tagged GET /orders"));

    // A rewrite of the path comes back as one, the lent head left as it was.
    let hook = load(&engine, "jwt_route");
    let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsInRpZXIiOiJnb2xkIiwibiI6NX0.sig";
    let headers: HeaderList = [("authorization", format!("Bearer {token}"))]
        .into_iter()
        .collect();
    let mut session = engine.session(&hook, context("c1"));
    let pseudo = RequestPseudo {
        path: "/orders?page=1",
        ..pseudo
    };
    let changes = changes_of(session.on_request_lent(pseudo, &headers));
    assert_eq!(changes.path(), Some("/gold/orders?page=1"));
    assert_eq!((changes.method(), changes.authority()), (None, None));
    session.finish();
}

#[test]
fn log_lines_below_the_host_level_are_dropped() {
    // A host keeping warnings and errors only (the proxy's setting unless debug
    // logging is on): the SDK reads that level when the instance is configured and
    // its `log!` skips the line; the host would drop it anyway.
    let engine = HookEngine::new(hook_engine::EngineConfig {
        min_log_level: hook_engine::LogLevel::Warn,
        ..hook_engine::EngineConfig::default()
    })
    .expect("engine");
    let hook = load(&engine, "add_header");
    let mut session = engine.session(&hook, context("c1"));
    let mut request = get("/orders");
    continued(&session.on_request(&mut request));
    assert_eq!(header(&request, "x-hook"), Some("hooks-sdk"));
    assert!(session.finish().is_empty(), "no log lines at warn level");
}

#[test]
fn add_header_uses_its_configuration() {
    let engine = engine();
    let mut hook = load(&engine, "add_header");
    hook.config = b"blue".to_vec();
    let mut request = get("/");
    continued(&run_request(&engine, &hook, &mut request).0);
    assert_eq!(header(&request, "x-hook"), Some("blue"));
}

#[test]
fn add_header_builds_for_wasm32_unknown_unknown_without_wasi() {
    let engine = engine();
    let hook = load(&engine, "add_header_unknown");
    assert!(hook.module.imports().iter().all(|i| i.module == "env"));
    let mut request = get("/");
    continued(&run_request(&engine, &hook, &mut request).0);
    assert_eq!(header(&request, "x-hook"), Some("hooks-sdk"));
}

#[test]
fn path_deny_answers_403_for_configured_prefixes() {
    let engine = engine();
    let mut hook = load(&engine, "path_deny");
    hook.config = b"/admin, /private".to_vec();
    let response = local(run_request(&engine, &hook, &mut get("/private/keys")).0);
    assert_eq!(response.status, 403);
    assert_eq!(response.body, b"forbidden by hook\n".to_vec());
    let mut request = get("/public");
    let (outcome, _) = run_request(&engine, &hook, &mut request);
    match outcome {
        HookOutcome::Continue(changes) => assert!(changes.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn jwt_route_rewrites_the_path_by_claim() {
    let engine = engine();
    let hook = load(&engine, "jwt_route");
    // payload {"sub":"u1","tier":"gold","n":5}
    let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsInRpZXIiOiJnb2xkIiwibiI6NX0.sig";
    let mut request = get("/orders?page=1");
    request
        .headers
        .push(b"authorization", format!("Bearer {token}").as_bytes());
    let (outcome, _) = run_request(&engine, &hook, &mut request);
    match outcome {
        HookOutcome::Continue(changes) => {
            assert_eq!(changes.path(), Some("/gold/orders?page=1"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(request.path, "/gold/orders?page=1");
    assert_eq!(header(&request, "x-user"), Some("u1"));
    let response = local(run_request(&engine, &hook, &mut get("/orders")).0);
    assert_eq!(response.status, 401);
}

#[test]
fn json_responder_answers_with_json() {
    let engine = engine();
    let hook = load(&engine, "json_responder");
    let mut request = get("/hook/info");
    request.headers.push(b"user-agent", b"curl/8 \"quoted\"");
    let response = local(run_request(&engine, &hook, &mut request).0);
    assert_eq!(response.status, 200);
    assert!(response
        .headers
        .contains(&("content-type".to_string(), b"application/json".to_vec())));
    let body = String::from_utf8(response.body).expect("utf-8");
    assert!(
        body.starts_with("{\"method\":\"GET\",\"host\":\"app.example.test\""),
        "{body}"
    );
    assert!(
        body.contains("\"user_agent\":\"curl/8 \\\"quoted\\\"\""),
        "{body}"
    );
    assert!(body.contains("\"group\":\"staff\""), "{body}");
    continued(&run_request(&engine, &hook, &mut get("/other")).0);
}

#[test]
fn rate_limit_counts_in_shared_data_across_instances() {
    let engine = engine();
    let mut hook = load(&engine, "rate_limit");
    hook.config = b"2".to_vec();
    let mut fresh = hook.clone();
    fresh.fresh_instance = true;
    let mut first = get("/");
    continued(&run_request(&engine, &hook, &mut first).0);
    assert_eq!(header(&first, "x-ratelimit-count"), Some("1"));
    // A fresh instance sees the counter the pooled one wrote.
    let mut second = get("/");
    continued(&run_request(&engine, &fresh, &mut second).0);
    assert_eq!(header(&second, "x-ratelimit-count"), Some("2"));
    let response = local(run_request(&engine, &hook, &mut get("/")).0);
    assert_eq!(response.status, 429);
    assert!(response
        .headers
        .contains(&("retry-after".to_string(), b"60".to_vec())));
    // Another container has its own namespace.
    let mut other = get("/");
    let (outcome, _) = engine.on_request(&hook, &mut other, context("c2"));
    continued(&outcome);
    assert_eq!(header(&other, "x-ratelimit-count"), Some("1"));
}

#[test]
fn official_proxy_wasm_crate_guest_runs_unchanged() {
    let engine = engine();
    let mut hook = load(&engine, "proxy_wasm_official");
    assert_eq!(hook.module.abi_version(), Some("0.2.1"));
    assert!(hook
        .module
        .imports()
        .iter()
        .any(|i| i.name == "proxy_http_call" && i.provision == Provision::Unimplemented));
    hook.config = b"envoy-compatible".to_vec();
    let mut session = engine.session(&hook, context("c1"));
    let mut request = get("/items");
    continued(&session.on_request(&mut request));
    assert_eq!(header(&request, "x-proxy-wasm"), Some("envoy-compatible"));
    let mut response = ok_response();
    continued(&session.on_response(&mut response));
    assert_eq!(
        response.header("x-proxy-wasm-response"),
        Some(&b"envoy-compatible"[..])
    );
    assert!(log_text(&session.finish()).contains("tagged /items"));

    let response = local(run_request(&engine, &hook, &mut get("/official-deny/x")).0);
    assert_eq!(response.status, 403);
    assert!(response
        .headers
        .contains(&("x-denied-by".to_string(), b"proxy-wasm".to_vec())));
}

#[test]
fn assemblyscript_guest_runs() {
    let engine = engine();
    let hook = load(&engine, "as_tag");
    let mut request = get("/");
    let (outcome, log) = run_request(&engine, &hook, &mut request);
    continued(&outcome);
    assert_eq!(header(&request, "x-as-hook"), Some("assemblyscript"));
    assert!(log_text(&log).contains("tagged /"));
    let response = local(run_request(&engine, &hook, &mut get("/as-deny")).0);
    assert_eq!(response.status, 403);
}

#[test]
fn every_example_also_runs_in_fresh_instances() {
    let engine = engine();
    for name in [
        "add_header",
        "path_deny",
        "json_responder",
        "proxy_wasm_official",
        "as_tag",
    ] {
        let mut hook = load(&engine, name);
        hook.fresh_instance = true;
        let mut request: RequestParts = get("/fresh");
        let (outcome, _) = run_request(&engine, &hook, &mut request);
        continued(&outcome);
    }
    assert_eq!(engine.idle_instances(), 0);
}

#[test]
fn hook_run_prints_decision_changes_and_log() {
    let args = hook_engine::cli::RunArgs {
        module: examples_dir().join("add_header.wasm"),
        config: "cli".to_string(),
        request: "GET /cli".to_string(),
        headers: vec!["Accept: text/html".to_string()],
        body: None,
        host: "app.localhost".to_string(),
        response_status: 200,
        timeout_ms: 1000,
        group: None,
    };
    let report = hook_engine::cli::run_report(&args).expect("runs");
    assert!(report.contains("request decision: continue"), "{report}");
    assert!(report.contains("= x-hook: cli"), "{report}");
    assert!(report.contains("response decision: continue"), "{report}");
    assert!(report.contains("[info] tagged GET /cli"), "{report}");

    let deny = hook_engine::cli::RunArgs {
        module: examples_dir().join("path_deny.wasm"),
        config: String::new(),
        request: "GET /admin".to_string(),
        headers: Vec::new(),
        body: None,
        host: "app.localhost".to_string(),
        response_status: 200,
        timeout_ms: 1000,
        group: None,
    };
    let report = hook_engine::cli::run_report(&deny).expect("runs");
    assert!(
        report.contains("request decision: local response"),
        "{report}"
    );
    assert!(report.contains("status: 403"), "{report}");
}
