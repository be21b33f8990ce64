//! Hardening: each test writes raw bytes to the proxy socket and checks the
//! proxy refuses what could desynchronise it or an upstream.

mod common;
mod dataplane_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dataplane_support::*;
use serde_json::json;

fn proxy_with_backend() -> (Proxy, Backend) {
    let a = Backend::start("a");
    let locked = json!({"default": "deny"});
    let proxy = Proxy::start(
        &json!({"routes": [
            {"host": "a.test", "upstream": a.url()},
            {"host": "locked.test", "upstream": a.url(), "proxy": locked}
        ]}),
        &["--header-timeout-ms", "1000"],
    );
    (proxy, a)
}

/// Asserts a 400 and that the connection was closed afterwards (the read
/// reached EOF with exactly one response).
fn assert_400_and_close(resp: &[u8]) {
    assert_json_error_and_close(resp, 400, "BAD_REQUEST");
}

/// Asserts a JSON error with `code`, then the close.
fn assert_json_error_and_close(resp: &[u8], status: u16, code: &str) {
    let text = String::from_utf8_lossy(resp);
    assert_eq!(status_of(resp), status, "{text}");
    assert_eq!(count_responses(resp), 1, "{text}");
    assert!(text.contains("application/json"), "{text}");
    assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

/// CL together with TE is refused before hyper would drop the length; the
/// bytes after the head are never parsed as a request.
#[test]
fn content_length_with_transfer_encoding_is_400_json_and_close() {
    let (proxy, _a) = proxy_with_backend();
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
        "Content-Length: 0\r\nTransfer-Encoding: chunked",
    ] {
        let resp = raw_request(
            proxy.addr,
            &format!("POST / HTTP/1.1\r\nHost: a.test\r\n{order}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
        );
        assert_json_error_and_close(&resp, 400, "BAD_REQUEST");
        assert!(!String::from_utf8_lossy(&resp).contains("smuggled"));
    }
}

/// The refused request is the second one on a keep-alive connection: the
/// first is answered normally, then the 400, then the close.
#[test]
fn content_length_with_transfer_encoding_after_a_good_request() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n\
         POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n\
         GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 200, "{text}");
    assert!(text.contains("GET /first HTTP/1.1"), "{text}");
    assert_eq!(count_responses(&resp), 2, "{text}");
    let second = &text[text[1..].find("HTTP/1.1 ").unwrap() + 1..];
    assert_json_error_and_close(second.as_bytes(), 400, "BAD_REQUEST");
    assert!(!text.contains("smuggled"), "{text}");
}

/// Framing is followed across bodies: a body that looks like a smuggling
/// attempt is only a body, and the connection stays usable.
#[test]
fn request_text_inside_bodies_is_not_judged() {
    let (proxy, _a) = proxy_with_backend();
    let inner = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunked = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST /cl HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("\"body_len\":{}", inner.len())),
        "{body}"
    );
    s.write_all(
        format!("POST /te HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}")
            .as_bytes(),
    )
    .unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("POST /te HTTP/1.1"), "{body}");
    let (status, body) = get_on(&mut s, "a.test", "/after", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GET /after HTTP/1.1"), "{body}");
}

/// A head trickled in small pieces is judged once complete, not piecewise.
#[test]
fn a_head_split_across_many_writes_is_served() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = b"GET /split HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\n\r\n";
    for piece in req.chunks(7) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GET /split HTTP/1.1"), "{body}");
    // and a split CL+TE head is still refused
    let bad = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    for piece in bad.chunks(11) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let rest = read_to_close(&mut s);
    assert_json_error_and_close(&rest, 400, "BAD_REQUEST");
}

#[test]
fn duplicate_content_length_is_400() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    );
    assert_400_and_close(&resp);
}

#[test]
fn invalid_content_length_is_400() {
    let (proxy, _a) = proxy_with_backend();
    for cl in ["-1", "4x", "+4", "0x10"] {
        let resp = raw_request(
            proxy.addr,
            &format!("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: {cl}\r\n\r\nabcd"),
        );
        assert_400_and_close(&resp);
    }
}

#[test]
fn obfuscated_transfer_encoding_is_400() {
    let (proxy, _a) = proxy_with_backend();
    for te in ["xchunked", "chunked, identity", "identity", "chunked\x0b"] {
        let resp = raw_request(
            proxy.addr,
            &format!("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n"),
        );
        assert_400_and_close(&resp);
    }
}

#[test]
fn transfer_encoding_on_http_1_0_is_400() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_400_and_close(&resp);
}

#[test]
fn duplicate_host_is_400() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: a.test\r\nHost: locked.test\r\n\r\n",
    );
    assert_400_and_close(&resp);
}

#[test]
fn absolute_form_authority_differing_from_host_is_400() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "GET http://a.test/ HTTP/1.1\r\nHost: locked.test\r\n\r\n",
    );
    assert_400_and_close(&resp);
}

#[test]
fn oversized_request_line_is_414() {
    let (proxy, _a) = proxy_with_backend();
    // Longer than the whole head limit, and just over the request-line limit
    // with a complete head.
    for len in [64 * 1024, 9 * 1024] {
        let path = "a".repeat(len);
        let resp = raw_request(
            proxy.addr,
            &format!("GET /{path} HTTP/1.1\r\nHost: a.test\r\n\r\n"),
        );
        assert_json_error_and_close(&resp, 414, "URI_TOO_LONG");
    }
    // A long but acceptable target still goes through.
    let path = "a".repeat(4 * 1024);
    let (status, text) = get(proxy.addr, "a.test", &format!("/{path}"), "");
    assert_eq!(status, 200, "{text}");
}

#[test]
fn oversized_headers_are_431() {
    let (proxy, _a) = proxy_with_backend();
    let big = "b".repeat(32 * 1024);
    let resp = raw_request(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n"),
    );
    assert_json_error_and_close(&resp, 431, "HEADERS_TOO_LARGE");
}

#[test]
fn too_many_headers_are_431() {
    let (proxy, _a) = proxy_with_backend();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let resp = raw_request(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: a.test\r\n{many}\r\n"),
    );
    assert_json_error_and_close(&resp, 431, "HEADERS_TOO_LARGE");
}

#[test]
fn slow_header_trickle_is_cut_off() {
    let (proxy, _a) = proxy_with_backend();
    // The proxy under test uses a 1 s header timeout (see `Proxy::start` args).
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    let mut buf = [0u8; 1024];
    for i in 0..200 {
        if s.write_all(format!("X-Slow-{i}: v\r\n").as_bytes())
            .is_err()
        {
            closed = true;
            break;
        }
        match s.read(&mut buf) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a client trickling headers for 20 s was never cut off"
    );
}

/// Reads until the proxy closes the connection and returns what it sent;
/// fails if it is still open after 10 s (the proxy's header timeout is 1 s).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

#[test]
fn half_a_head_then_silence_is_closed_without_an_answer() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n").unwrap();
    let resp = read_until_closed(&mut s);
    assert!(resp.is_empty(), "{}", String::from_utf8_lossy(&resp));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(get_on(&mut s, "a.test", "/", "").0, 200);
    let resp = read_until_closed(&mut s);
    assert!(resp.is_empty(), "{}", String::from_utf8_lossy(&resp));
}

#[test]
fn half_a_second_head_on_a_keep_alive_connection_is_cut_off() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(get_on(&mut s, "a.test", "/one", "").0, 200);
    s.write_all(b"GET /two HTTP/1.1\r\nHo").unwrap();
    let resp = read_until_closed(&mut s);
    assert!(resp.is_empty(), "{}", String::from_utf8_lossy(&resp));
}

/// A proxy with `slow.test` on a backend that answers after `delay` and
/// `a.test` on an ordinary one, started with `flags`.
fn slow_and_plain_proxy(delay: Duration, flags: &[&str]) -> (Proxy, Backend) {
    let a = Backend::start("a");
    let slow = slow_backend(delay);
    let proxy = Proxy::start(
        &json!({"routes": [
            {"host": "slow.test", "upstream": format!("http://{slow}")},
            {"host": "a.test", "upstream": a.url()}
        ]}),
        flags,
    );
    (proxy, a)
}

/// The header timeout covers waiting for a head, not for the answer: a
/// response slower than the timeout still arrives, and the connection
/// stays usable.
#[test]
fn a_response_slower_than_the_header_timeout_is_delivered() {
    let (proxy, _a) = slow_and_plain_proxy(
        Duration::from_millis(2500),
        &["--header-timeout-ms", "1000"],
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(get_on(&mut s, "slow.test", "/", ""), (200, "slow".into()));
    assert_eq!(get_on(&mut s, "a.test", "/", "").0, 200);
}

/// Nor does it cover a request body: one sent slower than the timeout is
/// forwarded whole.
#[test]
fn a_request_body_slower_than_the_header_timeout_is_forwarded() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\n")
        .unwrap();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(b"x").unwrap();
    }
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"body_len\":6"), "{body}");
}

/// An upstream slower than `--response-header-timeout-ms` is answered 504
/// JSON, counted as an upstream timeout, and the client's connection stays
/// usable.
#[test]
fn an_upstream_slower_than_the_response_header_timeout_is_504() {
    let (proxy, _a) = slow_and_plain_proxy(
        Duration::from_millis(3000),
        &["--response-header-timeout-ms", "300"],
    );
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (status, body) = get_on(&mut s, "slow.test", "/", "");
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("\"code\":\"GATEWAY_TIMEOUT\""), "{body}");
    assert_eq!(get_on(&mut s, "a.test", "/", "").0, 200);
    assert!(
        proxy
            .metrics_text()
            .contains("hoody_proxy_upstream_errors_total{cause=\"timeout\"} 1"),
        "{}",
        proxy.metrics_text()
    );
}

#[test]
fn early_deny_with_unread_body_closes_instead_of_desyncing() {
    let (proxy, _a) = proxy_with_backend();
    let body = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: locked.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw_request(proxy.addr, &req);
    assert_eq!(status_of(&resp), 403, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(
        count_responses(&resp),
        1,
        "{}",
        String::from_utf8_lossy(&resp)
    );
}

#[test]
fn body_after_unknown_host_is_never_parsed_as_a_request() {
    let (proxy, _a) = proxy_with_backend();
    let body = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: nope.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw_request(proxy.addr, &req);
    assert_eq!(status_of(&resp), 404);
    assert!(!String::from_utf8_lossy(&resp).contains("smuggled"));
}

fn h2_connection(proxy: &Proxy) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(h2::PREFACE).unwrap();
    s.write_all(&h2::frame(h2::SETTINGS, 0, 0, &[])).unwrap();
    s
}

#[test]
fn h2c_prior_knowledge_request_is_proxied() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = h2_connection(&proxy);
    s.write_all(&h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        &h2::get_block("a.test"),
    ))
    .unwrap();
    // Read until a HEADERS frame for stream 1 arrives.
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    while !h2::frame_types(&data).contains(&h2::HEADERS) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before a response");
        data.extend_from_slice(&buf[..n]);
    }
    // :status 200 is static-table index 8 (0x88).
    let i = find(&data, &[h2::HEADERS]).unwrap();
    assert!(data[i..].contains(&0x88), "no :status 200 in {data:?}");
}

#[test]
fn h2_host_header_differing_from_authority_is_400() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = h2_connection(&proxy);
    let mut block = h2::get_block("a.test");
    block.extend(h2::literal("host", "locked.test"));
    s.write_all(&h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        &block,
    ))
    .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    while !h2::frame_types(&data).contains(&h2::HEADERS) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    // :status 400 is static-table index 12 (0x8c).
    let i = find(&data, &[h2::HEADERS]).unwrap();
    assert!(data[i..].contains(&0x8c), "no :status 400 in {data:?}");
}

#[test]
fn h2_rapid_reset_flood_ends_in_goaway() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = h2_connection(&proxy);
    let mut flood = Vec::new();
    for i in 0..2000u32 {
        let id = 1 + 2 * i;
        flood.extend(h2::frame(
            h2::HEADERS,
            h2::END_HEADERS,
            id,
            &h2::get_block("a.test"),
        ));
        flood.extend(h2::frame(h2::RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&flood);
    let data = read_to_close(&mut s);
    // ENHANCE_YOUR_CALM: the reset-stream budget ran out.
    assert_eq!(
        h2::goaway_code(&data),
        Some(0xb),
        "{:?}",
        h2::frame_types(&data)
    );
}

#[test]
fn h2_continuation_flood_ends_in_goaway() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = h2_connection(&proxy);
    let _ = s.write_all(&h2::frame(h2::HEADERS, 0, 1, &h2::get_block("a.test")));
    let filler = h2::literal("x-fill", &"f".repeat(100));
    let mut flood = Vec::new();
    for _ in 0..2000 {
        flood.extend(h2::frame(h2::CONTINUATION, 0, 1, &filler));
    }
    let _ = s.write_all(&flood);
    let data = read_to_close(&mut s);
    // ENHANCE_YOUR_CALM: the header block outgrew the header list limit.
    assert_eq!(
        h2::goaway_code(&data),
        Some(0xb),
        "{:?}",
        h2::frame_types(&data)
    );
}

#[test]
fn h2_concurrent_streams_are_bounded_in_settings() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = h2_connection(&proxy);
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    while data.len() < 9 || data.len() < 9 + usize::from(data[2]) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    assert_eq!(data[3], h2::SETTINGS);
    let payload = &data[9..9 + usize::from(data[2])];
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // 0x3 MAX_CONCURRENT_STREAMS, 0x6 MAX_HEADER_LIST_SIZE
    assert!(
        settings.iter().any(|(k, v)| *k == 3 && *v <= 256),
        "{settings:?}"
    );
    assert!(
        settings.iter().any(|(k, v)| *k == 6 && *v <= 65536),
        "{settings:?}"
    );
}

const H2C_UPGRADE: &str = "GET /up?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Custom: yes\r\n\r\n";

/// RFC 7540 §3.2 on the wire: 101, then the request is answered as stream 1
/// over HTTP/2, and the connection goes on as HTTP/2.
#[test]
fn h2c_upgrade_switches_to_http2_and_answers_on_stream_1() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(H2C_UPGRADE.as_bytes()).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the 101");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(head.contains("upgrade: h2c"), "{head}");
    s.write_all(h2::PREFACE).unwrap();
    s.write_all(&h2::frame(h2::SETTINGS, 0, 0, &[])).unwrap();
    let (block, body) = h2::read_stream(&mut s, &data[head_end..], 1);
    assert_eq!(block.first(), Some(&0x88), "no :status 200 in {block:?}");
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["request_line"], "GET /up?x=1 HTTP/1.1");
    assert_eq!(echo["headers"]["host"], "a.test");
    assert_eq!(echo["headers"]["x-custom"], "yes");
    assert!(echo["headers"].get("http2-settings").is_none(), "{echo}");
    assert!(echo["headers"].get("upgrade").is_none(), "{echo}");
    // The connection is HTTP/2 now: stream 3 works too.
    s.write_all(&h2::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        3,
        &h2::get_block("a.test"),
    ))
    .unwrap();
    let (block, body) = h2::read_stream(&mut s, &[], 3);
    assert_eq!(block.first(), Some(&0x88), "no :status 200 in {block:?}");
    assert!(String::from_utf8_lossy(&body).contains("GET / HTTP/1.1"));
}

/// An upgrade request with a body, or without HTTP2-Settings, is answered
/// over HTTP/1.1 (the upgrade is optional for the server).
#[test]
fn h2c_upgrade_that_cannot_switch_is_answered_in_http1() {
    let (proxy, _a) = proxy_with_backend();
    for req in [
        H2C_UPGRADE
            .replace("GET", "POST")
            .replace("X-Custom: yes", "Content-Length: 2")
            + "hi",
        H2C_UPGRADE.replace("HTTP2-Settings: AAMAAABkAAQAAP__\r\n", ""),
    ] {
        // `close` so the read below ends with the connection.
        let req = req.replace("HTTP2-Settings\r\n", "HTTP2-Settings, close\r\n");
        let resp = raw_request(proxy.addr, &req);
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(status_of(&resp), 200, "{text}");
        assert!(!text.contains("101 Switching"), "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("upgrade: h2c"),
            "{text}"
        );
    }
}

/// The same with a real client: curl's `--http2` on an http:// URL sends
/// the h2c upgrade.
#[test]
fn curl_http2_upgrade_gets_an_http2_answer() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).contains("nghttp2"))
        .unwrap_or(true)
    {
        eprintln!("skipped: no curl with HTTP/2 support");
        return;
    }
    let (proxy, _a) = proxy_with_backend();
    let port = proxy.addr.port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-v", "--http2", "--max-time", "20", "--resolve"])
        .arg(format!("a.test:{port}:127.0.0.1"))
        .arg(format!("http://a.test:{port}/via-curl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("101 Switching Protocols"), "{stderr}");
    assert!(stderr.contains("HTTP/2 200"), "{stderr}");
    assert!(stdout.contains("GET /via-curl HTTP/1.1"), "{stdout}");
}
