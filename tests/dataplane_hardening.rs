//! Hardening: each test writes raw bytes to the proxy socket and checks the
//! proxy refuses what could desynchronise it or an upstream.

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
    assert_eq!(status_of(resp), 400, "{}", String::from_utf8_lossy(resp));
    assert_eq!(
        count_responses(resp),
        1,
        "{}",
        String::from_utf8_lossy(resp)
    );
}

/// hyper resolves CL+TE as RFC 9112 §6.3 allows: the length is discarded,
/// the chunked body is read, and the connection closes after one response,
/// so the bytes after the chunked body are never parsed as a request.
#[test]
fn content_length_with_transfer_encoding_never_smuggles() {
    let (proxy, _a) = proxy_with_backend();
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
    ] {
        let resp = raw_request(
            proxy.addr,
            &format!("POST / HTTP/1.1\r\nHost: a.test\r\n{order}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
        );
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(count_responses(&resp), 1, "{text}");
        assert!(!text.contains("smuggled"), "{text}");
        // The backend saw a chunked body, not a Content-Length one.
        assert!(!text.contains("\"content-length\""), "{text}");
    }
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
fn oversized_request_line_is_rejected() {
    let (proxy, _a) = proxy_with_backend();
    let path = "a".repeat(64 * 1024);
    let resp = raw_request(
        proxy.addr,
        &format!("GET /{path} HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    );
    let status = status_of(&resp);
    assert!(status == 414 || status == 431, "{status}");
}

#[test]
fn oversized_headers_are_431() {
    let (proxy, _a) = proxy_with_backend();
    let big = "b".repeat(32 * 1024);
    let resp = raw_request(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n"),
    );
    assert_eq!(status_of(&resp), 431, "{}", String::from_utf8_lossy(&resp));
}

#[test]
fn too_many_headers_are_431() {
    let (proxy, _a) = proxy_with_backend();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let resp = raw_request(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: a.test\r\n{many}\r\n"),
    );
    assert_eq!(status_of(&resp), 431, "{}", String::from_utf8_lossy(&resp));
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
