//! Adversarial and lifecycle behaviour of the sandbox, with guests written in WAT.

mod support;

use std::time::Duration;

use hook_engine::{
    EngineConfig, FailureKind, FailurePolicy, HeaderEdit, HookEngine, HookError, HookLimits,
    HookOutcome, RequestContext,
};
use support::*;

fn failure(outcome: &HookOutcome) -> &hook_engine::HookFailure {
    match outcome {
        HookOutcome::Failed(failure) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn adds_a_header_and_reports_the_change() {
    let engine = engine();
    let module = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let mut request = get("/");
    let (outcome, _) = run_request(&engine, &spec(&engine, "wat", module), &mut request);
    match outcome {
        HookOutcome::Continue(changes) => {
            let edits: Vec<_> = changes.headers.iter().collect();
            assert_eq!(edits, [HeaderEdit::Add(b"x-wat", b"yes")]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(header(&request, "x-wat"), Some("yes"));
}

#[test]
fn local_response_leaves_the_request_untouched() {
    let engine = engine();
    let body = "(drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3))) (drop (call $respond (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))";
    let module = Guest {
        request_headers: body,
        ..Guest::default()
    }
    .compile(&engine);
    let mut request = get("/x");
    let before = request.clone();
    let (outcome, _) = run_request(&engine, &spec(&engine, "wat", module), &mut request);
    match outcome {
        HookOutcome::LocalResponse(response) => {
            assert_eq!(response.status, 403);
            assert_eq!(response.body, b"denied".to_vec());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(request, before);
}

#[test]
fn infinite_loop_is_killed_at_its_timeout_while_other_calls_flow() {
    let engine = engine();
    let looping = Guest {
        request_headers: LOOP_FOREVER,
        ..Guest::default()
    }
    .compile(&engine);
    let healthy = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let mut loop_spec = spec(&engine, "loop", looping);
    loop_spec.timeout = Duration::from_millis(200);
    let healthy_spec = spec(&engine, "healthy", healthy);

    let looper = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            let mut request = get("/");
            engine.on_request(&loop_spec, &mut request, context("c1"))
        })
    };
    let mut served = 0;
    while !looper.is_finished() || served == 0 {
        let mut request = get("/");
        let (outcome, _) = run_request(&engine, &healthy_spec, &mut request);
        assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
        served += 1;
    }
    let (outcome, log) = looper.join().expect("thread ends");
    let failure = failure(&outcome);
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.response.status, 504);
    assert!(String::from_utf8_lossy(&failure.response.body).contains("HOOK_TIMEOUT"));
    assert!(log_text(&log).contains("exceeded its timeout of 200 ms"));
    assert!(served > 0);
}

#[test]
fn fail_open_reports_the_policy_and_keeps_the_request() {
    let engine = engine();
    let body = "(drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 3))) unreachable";
    let module = Guest {
        request_headers: body,
        ..Guest::default()
    }
    .compile(&engine);
    let mut hook = spec(&engine, "open", module);
    hook.policy = FailurePolicy::FailOpen;
    let mut request = get("/");
    let before = request.clone();
    let (outcome, _) = run_request(&engine, &hook, &mut request);
    assert_eq!(failure(&outcome).policy, FailurePolicy::FailOpen);
    assert_eq!(request, before);
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let engine = engine();
    let grow = r#"
      (block $full (loop $grow
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
      (drop (call $respond (memory.size) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))"#;
    let module = Guest {
        request_headers: grow,
        ..Guest::default()
    }
    .compile(&engine);
    let (outcome, _) = run_request(&engine, &spec(&engine, "grow", module), &mut get("/"));
    // The guest reports its page count as the status: 32 MiB is 512 pages of 64 KiB.
    match outcome {
        HookOutcome::LocalResponse(response) => assert_eq!(response.status, 512),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn initial_memory_over_the_cap_fails_to_start() {
    // With the pooling allocator (the default) the module is refused when it is
    // compiled, which the module store reports as a 400 at upload.
    let engine = engine();
    let big = Guest {
        memory_pages: 1024,
        ..Guest::default()
    };
    let Err(refused) = engine.compile_text(&big.wat()) else {
        panic!("a module over the memory cap compiled");
    };
    assert!(refused.to_string().contains("memory"), "{refused}");

    // Mapping memory per instance, the same module fails at start instead.
    let engine = engine_with_slots(None);
    let module = big.compile(&engine);
    let (outcome, log) = run_request(&engine, &spec(&engine, "big", module), &mut get("/"));
    assert_eq!(failure(&outcome).kind, FailureKind::Start);
    assert!(log_text(&log).contains("instance failed to start"));
}

#[test]
fn deep_recursion_traps_and_the_next_request_runs() {
    let engine = engine();
    let guest = Guest {
        request_headers: "(drop (call $recurse (i32.const 0)))",
        extra: "(func $recurse (param i32) (result i32) (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
        ..Guest::default()
    };
    let hook = spec(&engine, "deep", guest.compile(&engine));
    let (outcome, _) = run_request(&engine, &hook, &mut get("/"));
    let failure = failure(&outcome);
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(failure.message.contains("stack"), "{}", failure.message);
    assert_eq!(failure.response.status, 502);
    assert_eq!(
        engine.idle_instances(),
        0,
        "a trapped instance is not pooled"
    );
}

#[test]
fn a_trap_in_each_callback_fails_the_hook() {
    let cases: Vec<(&str, Guest, FailureKind)> = vec![
        (
            "_initialize",
            Guest {
                initialize: "unreachable",
                ..Guest::default()
            },
            FailureKind::Start,
        ),
        (
            "vm_start",
            Guest {
                vm_start: "unreachable",
                ..Guest::default()
            },
            FailureKind::Start,
        ),
        (
            "configure",
            Guest {
                configure: "unreachable",
                ..Guest::default()
            },
            FailureKind::Start,
        ),
        (
            "context_create",
            Guest {
                context_create: "unreachable",
                ..Guest::default()
            },
            FailureKind::Start,
        ),
        (
            "request_headers",
            Guest {
                request_headers: "unreachable",
                ..Guest::default()
            },
            FailureKind::Trap,
        ),
        (
            "request_body",
            Guest {
                request_body: "unreachable",
                ..Guest::default()
            },
            FailureKind::Trap,
        ),
    ];
    for (callback, guest, kind) in cases {
        let engine = engine();
        let hook = spec(&engine, callback, guest.compile(&engine));
        let mut request = get("/");
        request.body = Some(b"payload".to_vec());
        let (outcome, _) = run_request(&engine, &hook, &mut request);
        assert_eq!(failure(&outcome).kind, kind, "trap in {callback}");
        assert_eq!(engine.idle_instances(), 0, "trap in {callback}");
    }
}

#[test]
fn a_trap_in_the_response_phase_fails_that_phase() {
    let engine = engine();
    let module = Guest {
        response_headers: "unreachable",
        ..Guest::default()
    }
    .compile(&engine);
    let hook = spec(&engine, "resp", module);
    let mut session = engine.session(&hook, context("c1"));
    continued(&session.on_request(&mut get("/")));
    let mut response = ok_response();
    assert_eq!(
        failure(&session.on_response(&mut response)).kind,
        FailureKind::Trap
    );
    drop(session.finish());
    assert_eq!(engine.idle_instances(), 0);
}

#[test]
fn a_trap_in_on_done_discards_the_instance() {
    let engine = engine();
    let module = Guest {
        done: "unreachable",
        ..Guest::default()
    }
    .compile(&engine);
    let hook = spec(&engine, "done", module);
    let (outcome, _) = run_request(&engine, &hook, &mut get("/"));
    assert!(matches!(outcome, HookOutcome::Continue(_)));
    assert_eq!(engine.idle_instances(), 0);
}

#[test]
fn pooled_instances_are_reused_and_fresh_ones_are_not() {
    let engine = engine();
    let module = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let mut hook = spec(&engine, "pool", module);
    for _ in 0..3 {
        run_request(&engine, &hook, &mut get("/"));
    }
    assert_eq!(engine.idle_instances(), 1);
    engine.evict_container("c1");
    hook.fresh_instance = true;
    run_request(&engine, &hook, &mut get("/"));
    assert_eq!(engine.idle_instances(), 0);
}

#[test]
fn requests_in_flight_share_one_instance_per_thread() {
    let engine = engine();
    let module = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let hook = spec(&engine, "shared", module);
    let mut sessions: Vec<_> = (0..8)
        .map(|_| {
            let mut session = engine.session(&hook, context("c1"));
            let mut request = get("/");
            continued(&session.on_request(&mut request));
            assert_eq!(header(&request, "x-wat"), Some("yes"));
            session
        })
        .collect();
    assert_eq!(engine.idle_instances(), 1, "eight contexts, one instance");
    for session in &mut sessions {
        let mut response = ok_response();
        continued(&session.on_response(&mut response));
    }
    sessions.into_iter().for_each(|s| drop(s.finish()));
    assert_eq!(engine.idle_instances(), 1);

    // Another thread gets an instance of its own.
    let (engine2, hook2) = (engine.clone(), hook.clone());
    std::thread::spawn(move || run_request(&engine2, &hook2, &mut get("/")))
        .join()
        .expect("thread");
    assert_eq!(engine.idle_instances(), 2);
}

#[test]
fn a_request_after_an_eviction_starts_a_new_instance_while_one_in_flight_finishes_on_the_old() {
    let engine = engine();
    let module = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let hook = spec(&engine, "evicted", module);
    let mut in_flight = engine.session(&hook, context("c1"));
    continued(&in_flight.on_request(&mut get("/")));
    assert_eq!(engine.idle_instances(), 1);
    // The module is replaced: the pool lets go of the container's instances.
    engine.evict_container("c1");
    assert_eq!(engine.idle_instances(), 0);
    // This thread found the old instance a moment ago, and a request still holds it;
    // the next request must not start on it anyway.
    let (outcome, _) = run_request(&engine, &hook, &mut get("/"));
    continued(&outcome);
    assert_eq!(engine.idle_instances(), 1, "a new instance in the pool");
    // The request in flight ends on the instance it started on.
    continued(&in_flight.on_response(&mut ok_response()));
    drop(in_flight.finish());
    assert_eq!(engine.idle_instances(), 1);
}

#[test]
fn a_failure_on_a_shared_instance_fails_the_requests_on_it_and_the_next_gets_a_new_one() {
    let engine = engine();
    let module = Guest {
        response_headers: "unreachable",
        ..Guest::default()
    }
    .compile(&engine);
    let hook = spec(&engine, "breaks", module);
    let mut first = engine.session(&hook, context("c1"));
    let mut second = engine.session(&hook, context("c1"));
    for session in [&mut first, &mut second] {
        continued(&session.on_request(&mut get("/")));
    }
    let mut response = ok_response();
    assert_eq!(
        failure(&first.on_response(&mut response)).kind,
        FailureKind::Trap
    );
    assert_eq!(
        engine.idle_instances(),
        0,
        "the broken instance left the pool"
    );
    let lost = second.on_response(&mut response);
    let lost = failure(&lost);
    assert_eq!(lost.kind, FailureKind::Trap);
    assert!(lost.message.contains("another request"), "{}", lost.message);
    drop((first.finish(), second.finish()));

    // The next request starts on a new instance.
    let mut third = engine.session(&hook, context("c1"));
    continued(&third.on_request(&mut get("/")));
    assert_eq!(engine.idle_instances(), 1);
    drop(third.finish());
}

#[test]
fn unshared_pooled_instances_serve_one_request_at_a_time() {
    let engine = engine();
    let module = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(&engine);
    let mut hook = spec(&engine, "own", module);
    hook.shared_instance = false;
    let sessions: Vec<_> = (0..3)
        .map(|_| {
            let mut session = engine.session(&hook, context("c1"));
            session.on_request(&mut get("/"));
            session
        })
        .collect();
    assert_eq!(engine.idle_instances(), 0, "all three in use");
    sessions.into_iter().for_each(|s| drop(s.finish()));
    assert_eq!(engine.idle_instances(), 3);
}

#[test]
fn huge_header_output_is_bounded() {
    let engine = engine();
    let flood = r#"
      (local $i i32)
      (memory.fill (i32.const 8192) (i32.const 97) (i32.const 4096))
      (loop $more
        (drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 8192) (i32.const 4096)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $more (i32.lt_u (local.get $i) (i32.const 1000))))"#;
    let module = Guest {
        request_headers: flood,
        ..Guest::default()
    }
    .compile(&engine);
    let mut request = get("/");
    let (outcome, log) = run_request(&engine, &spec(&engine, "flood", module), &mut request);
    assert!(matches!(outcome, HookOutcome::Continue(_)));
    let bytes = request.headers.size();
    assert!(
        bytes <= HookLimits::default().max_header_bytes,
        "{bytes} bytes"
    );
    assert!(request.headers.len() > 1);
    assert!(log_text(&log).contains("refused header change"));
}

#[test]
fn invalid_utf8_values_pass_through_and_invalid_names_are_refused() {
    let engine = engine();
    let body = r#"
      ;; copy x-bin (binary value) into x-copy
      (drop (call $get (i32.const 0) (i32.const 144) (i32.const 5) (i32.const 200) (i32.const 204)))
      (drop (call $add (i32.const 0) (i32.const 128) (i32.const 6) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
      ;; a header named with invalid UTF-8: report the status as one digit
      (i32.store8 (i32.const 80)
        (i32.add (i32.const 48)
          (call $add (i32.const 0) (i32.const 64) (i32.const 2) (i32.const 32) (i32.const 3))))
      (drop (call $add (i32.const 0) (i32.const 96) (i32.const 13) (i32.const 80) (i32.const 1)))"#;
    let module = Guest {
        request_headers: body,
        ..Guest::default()
    }
    .compile(&engine);
    let mut request = get("/");
    request.headers.push(b"x-bin", &[0xff, 0xfe, b'a']);
    let (outcome, log) = run_request(&engine, &spec(&engine, "utf8", module), &mut request);
    assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
    assert_eq!(request.header("x-copy"), Some(&[0xff, 0xfe, b'a'][..]));
    assert_eq!(header(&request, "x-name-status"), Some("2"), "BadArgument");
    assert!(log_text(&log).contains("refused header"));
}

#[test]
fn unimplemented_spec_functions_answer_status_12() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        request_headers: "(drop (call $respond (i32.add (i32.const 200) (call $http_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 300))) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))",
        ..Guest::default()
    };
    let module = guest.compile(&engine);
    let http_call = module
        .imports()
        .iter()
        .find(|i| i.name == "proxy_http_call");
    assert_eq!(
        http_call.map(|i| i.provision),
        Some(hook_engine::Provision::Unimplemented)
    );
    let (outcome, _) = run_request(&engine, &spec(&engine, "http", module), &mut get("/"));
    match outcome {
        HookOutcome::LocalResponse(response) => assert_eq!(response.status, 212),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_import_we_do_not_provide_is_rejected_at_compile() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "open_socket" (func (param i32) (result i32)))"#,
        ..Guest::default()
    };
    match engine.compile_text(&guest.wat()) {
        Err(HookError::UnsupportedImport { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "open_socket"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let files = Guest {
        imports: r#"(import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#,
        ..Guest::default()
    };
    let error = engine.compile_text(&files.wat()).expect_err("no files");
    assert!(
        error
            .to_string()
            .contains("wasi_snapshot_preview1.path_open"),
        "{error}"
    );
}

#[test]
fn invalid_modules_are_rejected_with_a_reason() {
    let engine = engine();
    let error = engine
        .compile(b"\0asm\x01\0\0\0garbage")
        .expect_err("invalid");
    assert!(matches!(error, HookError::InvalidModule(_)), "{error}");
    let no_memory = r#"(module (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#;
    assert!(matches!(
        engine.compile_text(no_memory),
        Err(HookError::NoMemory)
    ));
    let old_abi = r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 0)) (func (export "proxy_abi_version_0_1_0")))"#;
    assert!(matches!(
        engine.compile_text(old_abi),
        Err(HookError::UnsupportedAbi(_))
    ));
    let imported_memory = r#"(module (import "env" "memory" (memory 1)))"#;
    assert!(matches!(
        engine.compile_text(imported_memory),
        Err(HookError::UnsupportedImportKind { .. })
    ));
}

#[test]
fn wasi_output_goes_to_the_hook_log_and_proc_exit_traps() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
                    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        request_headers: r#"
          (i32.store (i32.const 300) (i32.const 320))
          (i32.store (i32.const 304) (i32.const 16))
          (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))
          (call $exit (i32.const 3))"#,
        extra: r#"(data (i32.const 320) "hello from wasi\n")"#,
        ..Guest::default()
    };
    let (outcome, log) = run_request(
        &engine,
        &spec(&engine, "wasi", guest.compile(&engine)),
        &mut get("/"),
    );
    assert_eq!(failure(&outcome).kind, FailureKind::Trap);
    let text = log_text(&log);
    assert!(text.contains("[info] hello from wasi"), "{text}");
    assert!(text.contains("proc_exit(3)"), "{text}");
}

#[test]
fn properties_expose_request_and_plugin_attributes() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))"#,
        request_headers: r#"
          (drop (call $prop (i32.const 400) (i32.const 13) (i32.const 200) (i32.const 204)))
          (drop (call $add (i32.const 0) (i32.const 500) (i32.const 6) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
          (drop (call $prop (i32.const 420) (i32.const 11) (i32.const 200) (i32.const 204)))
          (drop (call $add (i32.const 0) (i32.const 510) (i32.const 6) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
          (drop (call $prop (i32.const 440) (i32.const 20) (i32.const 200) (i32.const 204)))
          (drop (call $add (i32.const 0) (i32.const 520) (i32.const 7) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
          (drop (call $prop (i32.const 460) (i32.const 11) (i32.const 200) (i32.const 204)))
          (drop (call $add (i32.const 0) (i32.const 530) (i32.const 4) (i32.load (i32.const 200)) (i32.load (i32.const 204))))"#,
        extra: r#"(data (i32.const 400) "request\00path\00")
                  (data (i32.const 420) "plugin_name")
                  (data (i32.const 440) "hoody.matched_group")
                  (data (i32.const 460) "request\00id\00")
                  (data (i32.const 530) "x-id")
                  (data (i32.const 500) "x-path")
                  (data (i32.const 510) "x-name")
                  (data (i32.const 520) "x-group")"#,
        ..Guest::default()
    };
    let mut request = get("/items?page=2");
    let (outcome, _) = run_request(
        &engine,
        &spec(&engine, "props", guest.compile(&engine)),
        &mut request,
    );
    assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
    assert_eq!(header(&request, "x-path"), Some("/items?page=2"));
    assert_eq!(header(&request, "x-name"), Some("props"));
    assert_eq!(header(&request, "x-group"), Some("staff"));
    assert_eq!(header(&request, "x-id"), Some("req-1"));
    // Without an id in the context, the request's own `x-request-id` is the id.
    let mut request = get("/");
    request.headers.push(b"x-request-id", b"hdr-7");
    let anonymous = RequestContext {
        request_id: None,
        ..context("c1")
    };
    let hook = spec(&engine, "props", guest.compile(&engine));
    let (outcome, _) = engine.on_request(&hook, &mut request, anonymous);
    assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
    assert_eq!(header(&request, "x-id"), Some("hdr-7"));
}

#[test]
fn metrics_and_ticks_reach_prometheus_text() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
                    (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
                    (import "env" "proxy_set_tick_period_milliseconds" (func $period (param i32) (result i32)))"#,
        configure: "(drop (call $define (i32.const 0) (i32.const 600) (i32.const 5) (i32.const 620))) (drop (call $period (i32.const 1)))",
        request_headers: "(drop (call $inc (i32.load (i32.const 620)) (i64.const 1)))",
        tick: "(drop (call $inc (i32.load (i32.const 620)) (i64.const 100)))",
        extra: r#"(data (i32.const 600) "ticks")"#,
        ..Guest::default()
    };
    let hook = spec(&engine, "metrics", guest.compile(&engine));
    run_request(&engine, &hook, &mut get("/"));
    run_request(&engine, &hook, &mut get("/"));
    std::thread::sleep(Duration::from_millis(5));
    engine.run_ticks(Duration::from_secs(1));
    let text = engine.metrics_prometheus();
    assert!(
        text.contains("hoody_hook_counter{container=\"c1\",name=\"ticks\"} 102"),
        "{text}"
    );
}

#[test]
fn compiled_artifacts_are_cached_on_disk_by_sha256() {
    let dir = std::env::temp_dir().join(format!("hook-cache-{}", std::process::id()));
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        ..EngineConfig::default()
    };
    let wat = Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .wat();
    let first = HookEngine::new(config.clone())
        .expect("engine")
        .compile_text(&wat)
        .expect("compiles");
    assert!(!first.from_cache());
    assert!(dir.join(format!("{}.cwasm", first.sha256())).exists());
    let engine = HookEngine::new(config).expect("engine");
    let second = engine.compile_text(&wat).expect("compiles");
    assert!(second.from_cache());
    let mut request = get("/");
    run_request(&engine, &spec(&engine, "cached", second), &mut request);
    assert_eq!(header(&request, "x-wat"), Some("yes"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn oversized_bodies_fail_with_413() {
    let engine = HookEngine::new(EngineConfig {
        limits: HookLimits {
            max_body_bytes: 8,
            ..HookLimits::default()
        },
        ..EngineConfig::default()
    })
    .expect("engine");
    let module = Guest::default().compile(&engine);
    let mut request = get("/");
    request.body = Some(vec![b'x'; 9]);
    let (outcome, _) = run_request(&engine, &spec(&engine, "body", module), &mut request);
    let failure = failure(&outcome);
    assert_eq!(failure.kind, FailureKind::BodyTooLarge);
    assert_eq!(failure.response.status, 413);
}

#[test]
fn header_map_pairs_round_trip_and_remove() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
                    (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
                    (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))"#,
        request_headers: r#"
          (drop (call $pairs (i32.const 0) (i32.const 200) (i32.const 204)))
          (drop (call $set_pairs (i32.const 1) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
          (drop (call $remove (i32.const 0) (i32.const 16) (i32.const 5)))"#,
        ..Guest::default()
    };
    let mut request = get("/pairs");
    request.headers.push(b"x-wat", b"old");
    request.headers.push(b"x-keep", b"1");
    let (outcome, _) = run_request(
        &engine,
        &spec(&engine, "pairs", guest.compile(&engine)),
        &mut request,
    );
    match outcome {
        HookOutcome::Continue(changes) => {
            let edits: Vec<_> = changes.headers.iter().collect();
            assert_eq!(edits, [HeaderEdit::Remove(b"x-wat")]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(request.headers, pairs(&[("x-keep", "1")]));
    assert_eq!(request.trailers.get(b":path"), Some(b"/pairs".as_slice()));
    assert_eq!(request.trailers.get(b"x-wat"), Some(b"old".as_slice()));
}

#[test]
fn body_buffers_can_be_read_and_replaced() {
    let engine = engine();
    let guest = Guest {
        imports: r#"(import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
                    (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))"#,
        // Replace the body with its first 4 bytes followed by "yes".
        request_body: r#"
          (drop (call $get_buffer (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 200) (i32.const 204)))
          (drop (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
          (drop (call $set_buffer (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 3)))"#,
        ..Guest::default()
    };
    let mut request = get("/upload");
    request.body = Some(b"helloworld".to_vec());
    let (outcome, _) = run_request(
        &engine,
        &spec(&engine, "body", guest.compile(&engine)),
        &mut request,
    );
    match outcome {
        HookOutcome::Continue(changes) => assert!(changes.body_replaced),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(request.body.as_deref(), Some(&b"hellyes"[..]));
}

#[test]
fn the_pooling_allocator_serves_fresh_instances_within_its_slots() {
    let engine = engine_with_slots(Some(4));
    let mut hook = spec(&engine, "slots", add_header_module(&engine));
    hook.fresh_instance = true;
    for _ in 0..10 {
        let mut request = get("/");
        let (outcome, _) = run_request(&engine, &hook, &mut request);
        assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
        assert_eq!(header(&request, "x-wat"), Some("yes"));
    }
}

#[test]
fn idle_instances_give_up_their_allocator_slots_to_new_ones() {
    let engine = engine_with_slots(Some(2));
    let module = add_header_module(&engine);
    // Two pooled hooks with different configurations: each leaves one idle
    // instance behind, which together hold both slots.
    for config in ["a", "b"] {
        let mut hook = spec(&engine, "holder", module.clone());
        hook.config = config.as_bytes().to_vec();
        let mut request = get("/");
        let (outcome, _) = run_request(&engine, &hook, &mut request);
        assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
    }
    assert_eq!(engine.idle_instances(), 2);
    let mut fresh = spec(&engine, "fresh", module);
    fresh.fresh_instance = true;
    let mut request = get("/");
    let (outcome, _) = run_request(&engine, &fresh, &mut request);
    assert!(matches!(outcome, HookOutcome::Continue(_)), "{outcome:?}");
    assert_eq!(header(&request, "x-wat"), Some("yes"));
    assert!(engine.idle_instances() < 2, "an idle instance was shed");
}

/// An engine with `slots` pooling-allocator slots, or mapping memory per instance.
fn engine_with_slots(slots: Option<u32>) -> HookEngine {
    HookEngine::new(EngineConfig {
        allocator_slots: slots,
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn add_header_module(engine: &HookEngine) -> std::sync::Arc<hook_engine::CompiledModule> {
    Guest {
        request_headers: ADD_HEADER,
        ..Guest::default()
    }
    .compile(engine)
}
