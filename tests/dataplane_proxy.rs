//! End to end through `hoody-api dataplane`: routing, forwarding headers,
//! the access gate, upgrades, reload and metrics, over real sockets.

mod common;
mod dataplane_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::basic;
use dataplane_support::*;
use serde_json::json;

fn route(host: &str, backend: &Backend, proxy: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"host": host, "upstream": backend.url()});
    if !proxy.is_null() {
        r["proxy"] = proxy;
    }
    r
}

/// Polls until `f` holds (reloads are asynchronous); panics after 20 s.
fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition never held");
}

#[test]
fn routes_by_host_and_sets_forwarding_headers() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(
        &json!({"routes": [route("a.test", &a, json!(null)), route("B.test", &b, json!(null))]}),
        &[],
    );
    let (status, text) = get(
        proxy.addr,
        "a.test",
        "/x?y=1",
        "X-Forwarded-For: 203.0.113.9\r\n",
    );
    assert_eq!(status, 200, "{text}");
    let echo: serde_json::Value = serde_json::from_str(&body_of(text.as_bytes())).unwrap();
    assert_eq!(echo["backend"], "a");
    assert_eq!(echo["request_line"], "GET /x?y=1 HTTP/1.1");
    assert_eq!(echo["headers"]["host"], "a.test");
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(echo["headers"]["x-forwarded-host"], "a.test");
    assert_eq!(
        echo["headers"]["forwarded"],
        "for=127.0.0.1;host=a.test;proto=http"
    );
    assert!(echo["headers"]
        .get("connection")
        .is_none_or(|c| c != "close"));

    let (_, text) = get(proxy.addr, "b.TEST:8000", "/", "");
    assert!(text.contains("\"backend\":\"b\""), "{text}");
}

#[test]
fn unknown_host_is_404_json() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, json!(null))]}), &[]);
    let (status, text) = get(proxy.addr, "nope.test", "/", "");
    assert_eq!(status, 404);
    assert!(text.contains("application/json"), "{text}");
    assert!(text.contains("\"code\":\"ROUTE_NOT_FOUND\""), "{text}");
}

#[test]
fn keep_alive_reuses_client_and_upstream_connections() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, json!(null))]}), &[]);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    for i in 0..50 {
        let (status, body) = get_on(&mut s, "a.test", &format!("/{i}"), "");
        assert_eq!(status, 200);
        assert!(body.contains(&format!("GET /{i} HTTP/1.1")));
    }
}

#[test]
fn password_group_answers_401_with_basic_challenge_then_200() {
    let a = Backend::start("a");
    let doc = json!({
        "groups": {"team": {"type": "password", "username": "ann", "password": "pw", "salt": "s"}},
        "permissions": {"team": {"http": true}},
        "default": "deny"
    });
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, doc)]}), &[]);
    let (status, text) = get(proxy.addr, "a.test", "/", "");
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"hoody\""),
        "{text}"
    );
    let (status, _) = get(proxy.addr, "a.test", "/", &basic("ann", "wrong"));
    assert_eq!(status, 401);
    let (status, text) = get(proxy.addr, "a.test", "/", &basic("ann", "pw"));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"backend\":\"a\""));
}

#[test]
fn token_group_in_query_param_and_default_allow() {
    let a = Backend::start("a");
    let locked = json!({
        "groups": {"ci": {"type": "token", "param": "key", "value": "k-1"}},
        "permissions": {"ci": {"http": "*"}},
    });
    let open = json!({"default": "allow"});
    let b = Backend::start("b");
    let proxy = Proxy::start(
        &json!({"routes": [route("a.test", &a, locked), route("b.test", &b, open)]}),
        &[],
    );
    assert_eq!(get(proxy.addr, "a.test", "/?key=nope", "").0, 401);
    assert_eq!(get(proxy.addr, "a.test", "/?x=1&key=k-1", "").0, 200);
    assert_eq!(get(proxy.addr, "b.test", "/", "").0, 200);
}

#[test]
fn disabled_proxy_is_503_json() {
    let a = Backend::start("a");
    let doc = json!({"default": "allow", "enable_proxy": false});
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, doc)]}), &[]);
    let (status, text) = get(proxy.addr, "a.test", "/", "");
    assert_eq!(status, 503);
    assert!(text.contains("PROXY_DISABLED"), "{text}");
}

#[test]
fn ip_group_outside_range_is_403() {
    let a = Backend::start("a");
    let doc = json!({
        "groups": {"office": {"type": "ip", "range": "10.0.0.0/8"}},
        "permissions": {"office": {"http": true}},
    });
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, doc)]}), &[]);
    let (status, text) = get(proxy.addr, "a.test", "/", "");
    assert_eq!(status, 403, "{text}");
}

#[test]
fn firewall_reject_is_403_and_drop_closes_without_answer() {
    let a = Backend::start("a");
    let mut reject = route("r.test", &a, json!(null));
    reject["firewall"] = json!([{"action": "reject", "protocol": "tcp", "source": "127.0.0.0/8"}]);
    let mut drop = route("d.test", &a, json!(null));
    drop["firewall"] = json!([{"action": "drop", "protocol": "tcp", "source": "127.0.0.1"}]);
    let mut disabled = route("x.test", &a, json!(null));
    disabled["firewall"] = json!([{"action": "drop", "protocol": "tcp", "state": "disabled"}]);
    let proxy = Proxy::start(&json!({"routes": [reject, drop, disabled]}), &[]);
    let (status, text) = get(proxy.addr, "r.test", "/", "");
    assert_eq!(status, 403);
    assert!(text.contains("FIREWALL_REJECTED"));
    let resp = raw_request(proxy.addr, "GET / HTTP/1.1\r\nHost: d.test\r\n\r\n");
    assert!(resp.is_empty(), "{}", String::from_utf8_lossy(&resp));
    assert_eq!(get(proxy.addr, "x.test", "/", "").0, 200);
}

#[test]
fn websocket_style_upgrade_is_tunnelled_after_101() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, json!(null))]}), &[]);
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while find(&head, b"\r\n\r\n").is_none() {
        assert_eq!(s.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    assert_eq!(status_of(&head), 101, "{}", String::from_utf8_lossy(&head));
    for msg in [&b"hello"[..], b"world", &[0u8, 255, 1]] {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
}

#[test]
fn upstream_down_is_502_json() {
    let port = free_port();
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "dead.test", "upstream": format!("http://127.0.0.1:{port}")}]}),
        &[],
    );
    let (status, text) = get(proxy.addr, "dead.test", "/", "");
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("BAD_GATEWAY"));
}

/// Two GETs over one client connection: the second reuses the pooled
/// upstream connection, which the backend closes unanswered.
fn two_requests_through(backend: &FlakyBackend, second: &str) -> (u16, String) {
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "flaky.test", "upstream": backend.url()}]}),
        &[],
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, body) = get_on(&mut s, "flaky.test", "/first", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "GET /first HTTP/1.1");
    s.write_all(second.as_bytes()).unwrap();
    read_response(&mut s)
}

#[test]
fn safe_request_on_a_pooled_connection_closed_unanswered_is_retried_once() {
    for method in ["GET", "HEAD", "OPTIONS"] {
        let backend = FlakyBackend::start(SecondRequest::CloseUnanswered);
        let (status, body) = two_requests_through(
            &backend,
            &format!("{method} /second HTTP/1.1\r\nHost: flaky.test\r\n\r\n"),
        );
        assert_eq!(status, 200, "{method}: {body}");
        if method != "HEAD" {
            assert_eq!(body, format!("{method} /second HTTP/1.1"));
        }
        // first request, the dead attempt, the retry on a fresh connection
        assert_eq!(backend.requests(), 3, "{method}");
    }
}

#[test]
fn unsafe_or_bodied_request_on_a_dead_pooled_connection_is_not_retried() {
    for second in [
        "POST /second HTTP/1.1\r\nHost: flaky.test\r\nContent-Length: 0\r\n\r\n",
        "DELETE /second HTTP/1.1\r\nHost: flaky.test\r\n\r\n",
        "GET /second HTTP/1.1\r\nHost: flaky.test\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let backend = FlakyBackend::start(SecondRequest::CloseUnanswered);
        let (status, body) = two_requests_through(&backend, second);
        assert_eq!(status, 502, "{second}: {body}");
        assert!(body.contains("BAD_GATEWAY"), "{body}");
        assert_eq!(backend.requests(), 2, "{second}");
    }
}

#[test]
fn get_whose_upstream_started_answering_is_not_retried() {
    let backend = FlakyBackend::start(SecondRequest::ClosePartway);
    let (status, body) =
        two_requests_through(&backend, "GET /second HTTP/1.1\r\nHost: flaky.test\r\n\r\n");
    assert_eq!(status, 502, "{body}");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn reloads_on_file_change_and_keeps_routes_when_the_file_is_bad() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, json!(null))]}), &[]);
    // An open keep-alive connection must survive reloads.
    let mut kept = TcpStream::connect(proxy.addr).unwrap();
    assert_eq!(get_on(&mut kept, "a.test", "/", "").0, 200);

    let two =
        json!({"routes": [route("a.test", &a, json!(null)), route("b.test", &b, json!(null))]});
    std::fs::write(&proxy.routes, two.to_string()).unwrap();
    eventually(|| get(proxy.addr, "b.test", "/", "").0 == 200);

    std::fs::write(&proxy.routes, "{\"routes\": [ this is not json").unwrap();
    proxy.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(proxy.addr, "b.test", "/", "").0, 200);
    assert_eq!(get_on(&mut kept, "a.test", "/again", "").0, 200);

    let bad_doc = json!({"routes": [route("a.test", &a, json!({"groups": {"g": {"type": "ip", "range": "999.1.1.1/8"}}}))]});
    std::fs::write(&proxy.routes, bad_doc.to_string()).unwrap();
    proxy.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(proxy.addr, "b.test", "/", "").0, 200);

    let only_b = json!({"routes": [route("b.test", &b, json!(null))]});
    std::fs::write(&proxy.routes, only_b.to_string()).unwrap();
    proxy.signal(libc::SIGHUP);
    eventually(|| get(proxy.addr, "a.test", "/", "").0 == 404);
    assert_eq!(get_on(&mut kept, "b.test", "/", "").0, 200);
}

#[test]
fn metrics_count_requests_and_config_version() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&json!({"routes": [route("a.test", &a, json!(null))]}), &[]);
    for _ in 0..3 {
        assert_eq!(get(proxy.addr, "a.test", "/", "").0, 200);
    }
    assert_eq!(get(proxy.addr, "none.test", "/", "").0, 404);
    let text = proxy.metrics_text();
    assert!(
        text.contains("hoody_proxy_requests_total{route_kind=\"service\",status_class=\"2xx\"} 3"),
        "{text}"
    );
    assert!(text.contains("hoody_proxy_requests_total{route_kind=\"none\",status_class=\"4xx\"} 1"));
    assert!(text.contains("hoody_proxy_config_version 1"));
    assert!(text.contains("hoody_proxy_request_duration_seconds_count 4"));
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let a = Backend::start("a");
    let dir = scratch_dir("log");
    let log = dir.join("access.log");
    let log_arg = log.to_string_lossy().into_owned();
    let proxy = Proxy::start(
        &json!({"routes": [route("a.test", &a, json!(null))]}),
        &["--access-log", &log_arg],
    );
    assert_eq!(get(proxy.addr, "a.test", "/logged?q=1", "").0, 200);
    eventually(|| std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/logged")));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["path"], "/logged?q=1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["host"], "a.test");
    assert_eq!(line["route"], "service");
}

#[test]
fn sigterm_drains_an_in_flight_request() {
    let addr = slow_backend(Duration::from_millis(800));
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "slow.test", "upstream": format!("http://{addr}")}]}),
        &[],
    );
    let target = proxy.addr;
    let client = std::thread::spawn(move || get(target, "slow.test", "/", ""));
    std::thread::sleep(Duration::from_millis(300));
    proxy.signal(libc::SIGTERM);
    let (status, text) = client.join().unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("slow"));
}
