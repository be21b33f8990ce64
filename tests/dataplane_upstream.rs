//! The data plane's own HTTP/1.1 upstream client, end to end through
//! `hoody-api dataplane` against a backend that sends scripted raw bytes:
//! response framings, request body framing, and that every upstream
//! misbehaviour ends in a 502 or a closed client connection, never in a
//! reused connection out of step with its framing.

mod common;
mod dataplane_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use dataplane_support::*;
use serde_json::json;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Pools are per worker: tests that look at upstream connection reuse keep
/// to one client connection, which stays on one worker.
fn proxy_for(backend: &ScriptedBackend) -> Proxy {
    Proxy::start(
        &json!({"routes": [{"host": "up.test", "upstream": backend.url()}]}),
        &[],
    )
}

fn client(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Decodes a chunked body that starts right after the head in `resp`.
fn dechunk(resp: &[u8]) -> Option<Vec<u8>> {
    let mut rest = &resp[find(resp, b"\r\n\r\n")? + 4..];
    let mut out = Vec::new();
    loop {
        let line = find(rest, b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).ok()?, 16).ok()?;
        rest = &rest[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Reads one chunked response from a keep-alive stream (up to its last
/// chunk; the proxy sends no trailers).
fn read_chunked_response(s: &mut TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut resp = Vec::new();
    let mut chunk = [0u8; 4096];
    while !resp.ends_with(b"\r\n0\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&chunk[..n]),
        }
    }
    resp
}

#[test]
fn chunked_response_is_streamed_and_its_connection_reused() {
    let backend = ScriptedBackend::start(vec![Reply::keep(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )]);
    let proxy = proxy_for(&backend);
    let mut s = client(&proxy);
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: up.test\r\n\r\n")
            .unwrap();
        let resp = read_chunked_response(&mut s);
        assert_eq!(status_of(&resp), 200, "{}", String::from_utf8_lossy(&resp));
        assert_eq!(dechunk(&resp).as_deref(), Some(&b"hello world"[..]));
    }
    let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
    assert_eq!(
        conns,
        [0, 0],
        "the second request reuses the upstream connection"
    );
}

#[test]
fn bad_response_heads_are_502_and_the_connection_is_not_reused() {
    let mut oversized = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    oversized.resize(70 * 1024, b'a');
    oversized.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    for bad in [
        &b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        &oversized,
    ] {
        let backend = ScriptedBackend::start(vec![Reply::keep(bad), Reply::keep(OK)]);
        let proxy = proxy_for(&backend);
        let mut s = client(&proxy);
        let (status, body) = get_on(&mut s, "up.test", "/", "");
        assert_eq!(status, 502, "{}", String::from_utf8_lossy(&bad[..40]));
        assert!(body.contains("BAD_GATEWAY"), "{body}");
        let (status, body) = get_on(&mut s, "up.test", "/", "");
        assert_eq!((status, body.as_str()), (200, "ok"));
        let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, [0, 1], "a refused response's connection is closed");
    }
}

#[test]
fn upstream_closing_mid_body_closes_the_client_connection() {
    for truncated in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n",
    ] {
        let backend = ScriptedBackend::start(vec![Reply::close(truncated), Reply::keep(OK)]);
        let proxy = proxy_for(&backend);
        let mut s = client(&proxy);
        s.write_all(b"GET / HTTP/1.1\r\nHost: up.test\r\n\r\n")
            .unwrap();
        // The client sees nothing, or the head and part of the body, then
        // the close: never something it could take for a complete response.
        let resp = read_to_close(&mut s);
        let text = String::from_utf8_lossy(&resp);
        if !resp.is_empty() {
            assert_eq!(status_of(&resp), 200, "{text}");
            assert_eq!(count_responses(&resp), 1, "{text}");
            assert!(dechunk(&resp).is_none(), "{text}");
            let body_start = find(&resp, b"\r\n\r\n").map_or(0, |i| i + 4);
            assert!(resp.len() - body_start < 10, "{text}");
        }
        let (status, body) = get(proxy.addr, "up.test", "/", "");
        assert_eq!(status, 200, "{body}");
        let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, [0, 1]);
    }
}

#[test]
fn bytes_past_the_body_or_connection_close_keep_the_connection_out_of_the_pool() {
    for first in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let backend = ScriptedBackend::start(vec![Reply::keep(first), Reply::keep(OK)]);
        let proxy = proxy_for(&backend);
        let mut s = client(&proxy);
        assert_eq!(get_on(&mut s, "up.test", "/", ""), (200, "ok".to_string()));
        assert_eq!(get_on(&mut s, "up.test", "/", ""), (200, "ok".to_string()));
        let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
        assert_eq!(conns, [0, 1], "{}", String::from_utf8_lossy(first));
    }
}

#[test]
fn read_until_close_response_is_forwarded_whole() {
    let backend =
        ScriptedBackend::start(vec![Reply::close(b"HTTP/1.0 200 OK\r\n\r\nold style body")]);
    let proxy = proxy_for(&backend);
    let resp = raw_request(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: up.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&resp), 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(dechunk(&resp).as_deref(), Some(&b"old style body"[..]));
}

#[test]
fn head_and_no_content_responses_carry_no_body() {
    let backend = ScriptedBackend::start(vec![
        Reply::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"),
        Reply::keep(b"HTTP/1.1 204 No Content\r\n\r\n"),
        Reply::keep(OK),
    ]);
    let proxy = proxy_for(&backend);
    let mut s = client(&proxy);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: up.test\r\n\r\n")
        .unwrap();
    let (status, _) = read_response_head_only(&mut s);
    assert_eq!(status, 200);
    let (status, body) = get_on(&mut s, "up.test", "/", "");
    assert_eq!((status, body.as_str()), (204, ""));
    assert_eq!(get_on(&mut s, "up.test", "/", ""), (200, "ok".to_string()));
    let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
    assert_eq!(
        conns,
        [0, 0, 0],
        "bodiless answers leave the connection in step"
    );
}

/// Reads a response head (for HEAD, whose Content-Length describes no body).
fn read_response_head_only(s: &mut TcpStream) -> (u16, String) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while find(&head, b"\r\n\r\n").is_none() {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (
        status_of(&head),
        String::from_utf8_lossy(&head).into_owned(),
    )
}

#[test]
fn request_bodies_keep_their_length_or_go_chunked() {
    let backend = ScriptedBackend::start(vec![Reply::keep(OK)]);
    let proxy = proxy_for(&backend);
    let mut s = client(&proxy);
    s.write_all(b"POST /sized HTTP/1.1\r\nHost: up.test\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    assert_eq!(read_response(&mut s), (200, "ok".to_string()));
    s.write_all(
        b"POST /chunked HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s), (200, "ok".to_string()));
    s.write_all(b"POST /empty HTTP/1.1\r\nHost: up.test\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s), (200, "ok".to_string()));
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    let sized = seen[0].head.to_ascii_lowercase();
    assert!(sized.starts_with("post /sized http/1.1\r\n"), "{sized}");
    assert!(sized.contains("\r\ncontent-length: 5\r\n"), "{sized}");
    assert_eq!(seen[0].body, b"hello");
    let chunked = seen[1].head.to_ascii_lowercase();
    assert!(
        chunked.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(!chunked.contains("content-length"), "{chunked}");
    assert_eq!(seen[1].body, b"abcdefg");
    let empty = seen[2].head.to_ascii_lowercase();
    assert!(empty.contains("\r\ncontent-length: 0\r\n"), "{empty}");
    assert!(seen.iter().all(|s| s.conn == 0));
}
