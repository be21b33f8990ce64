//! The data plane's own HTTP/1.1 server, seen from the client's side over
//! raw sockets: `Expect: 100-continue`, HTTP/1.0 and `Connection: close`
//! persistence, pipelining, streamed bodies in both directions, `Date`, and
//! what it refuses (CONNECT, a body cut short).

mod common;
mod dataplane_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use dataplane_support::*;
use serde_json::json;

fn proxy_with_backend() -> (Proxy, Backend) {
    let a = Backend::start("a");
    let proxy = Proxy::start(
        &json!({"routes": [
            {"host": "a.test", "upstream": a.url()},
            {"host": "locked.test", "upstream": a.url(), "proxy": {"default": "deny"}}
        ]}),
        &[],
    );
    (proxy, a)
}

fn client(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until `n` bytes arrived (or the peer closed / timed out).
fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match s.read(&mut out[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    out.truncate(got);
    out
}

fn head_text(resp: &[u8]) -> String {
    let end = find(resp, b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
    String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase()
}

#[test]
fn expect_100_continue_gets_the_go_ahead_before_the_body_is_sent() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = client(&proxy);
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let interim = read_exactly(&mut s, b"HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["body_len"], 5);
    assert_eq!(echo["request_line"], "PUT /up HTTP/1.1");
}

#[test]
fn an_early_answer_to_an_expecting_client_skips_the_100_and_closes() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "PUT / HTTP/1.1\r\nHost: locked.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 403, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(head_text(&resp).contains("connection: close"), "{text}");
}

#[test]
fn http_1_0_closes_unless_it_asks_for_keep_alive() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(proxy.addr, "GET /once HTTP/1.0\r\nHost: a.test\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    assert_eq!(count_responses(&resp), 1);
    assert!(!head_text(&resp).contains("keep-alive"));

    let mut s = client(&proxy);
    for path in ["/one", "/two"] {
        let req = format!("GET {path} HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let (status, body) = read_response(&mut s);
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(&format!("GET {path} HTTP/1.1")), "{body}");
    }
}

#[test]
fn connection_close_is_answered_in_kind_then_closed() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a.test\r\n\r\n",
    );
    assert_eq!(
        count_responses(&resp),
        1,
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert!(head_text(&resp).contains("connection: close"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = client(&proxy);
    s.write_all(
        b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .unwrap();
    for (path, method, len) in [("/1", "GET", 0), ("/2", "POST", 3), ("/3", "GET", 0)] {
        let (status, body) = read_response(&mut s);
        assert_eq!(status, 200, "{path}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["request_line"], format!("{method} {path} HTTP/1.1"));
        assert_eq!(echo["body_len"], len);
    }
}

#[test]
fn every_answer_carries_a_date() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&resp), 404);
    let head = head_text(&resp);
    let date = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("date: "))
        .unwrap_or_default();
    // IMF-fixdate: "sun, 06 nov 1994 08:49:37 gmt" (lowercased here).
    assert_eq!(date.len(), 29, "{head}");
    assert!(date.ends_with(" gmt"), "{head}");
}

#[test]
fn connect_is_refused_with_405_and_close() {
    let (proxy, _a) = proxy_with_backend();
    let resp = raw_request(
        proxy.addr,
        "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&resp);
    assert_eq!(status_of(&resp), 405, "{text}");
    assert!(text.contains("\"code\":\"METHOD_NOT_ALLOWED\""), "{text}");
    assert_eq!(count_responses(&resp), 1, "{text}");
}

#[test]
fn large_bodies_stream_both_ways_unchanged() {
    let (proxy, _a) = proxy_with_backend();
    let mut s = client(&proxy);
    let upload = vec![b'u'; 1 << 20];
    s.write_all(
        format!(
            "POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&upload).unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["body_len"], upload.len());

    let download: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        download.len()
    )
    .into_bytes();
    reply.extend_from_slice(&download);
    let backend = ScriptedBackend::start(vec![Reply::keep(&reply)]);
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "d.test", "upstream": backend.url()}]}),
        &[],
    );
    let mut s = client(&proxy);
    s.write_all(b"GET /file HTTP/1.1\r\nHost: d.test\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    let mut chunk = [0u8; 65536];
    while find(&resp, b"\r\n\r\n").is_none_or(|i| resp.len() < i + 4 + download.len()) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&chunk[..n]),
        }
    }
    let start = find(&resp, b"\r\n\r\n").unwrap() + 4;
    assert_eq!(resp.len() - start, download.len());
    assert!(resp[start..] == download[..], "the body arrived altered");
}

/// A backend that sends a chunked response in two parts and waits for the
/// test's word between them.
fn two_part_backend(go_on: mpsc::Receiver<()>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while find(&seen, b"\r\n\r\n").is_none() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ =
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst-\r\n");
        if go_on.recv_timeout(Duration::from_secs(10)).is_ok() {
            let _ = s.write_all(b"4\r\nlast\r\n0\r\n\r\n");
        }
        let _ = s.read(&mut buf);
    });
    format!("http://{addr}")
}

#[test]
fn a_response_body_is_forwarded_as_it_arrives() {
    let (tx, rx) = mpsc::channel();
    let upstream = two_part_backend(rx);
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "s.test", "upstream": upstream}]}),
        &[],
    );
    let mut s = client(&proxy);
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: s.test\r\n\r\n")
        .unwrap();
    // The first part must come through while the backend holds the rest.
    let mut resp = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&resp, b"first-").is_none() {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => panic!("no first part: {}", String::from_utf8_lossy(&resp)),
            Ok(n) => resp.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(head_text(&resp).contains("transfer-encoding: chunked"));
    tx.send(()).unwrap();
    while !resp.ends_with(b"0\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&resp);
    assert!(
        text.ends_with("6\r\nfirst-\r\n4\r\nlast\r\n0\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn a_body_cut_short_is_400_and_its_upstream_connection_is_not_reused() {
    let backend = ScriptedBackend::start(vec![Reply::keep(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )]);
    let proxy = Proxy::start(
        &json!({"routes": [{"host": "c.test", "upstream": backend.url()}]}),
        &["--workers", "1"],
    );
    let mut s = client(&proxy);
    s.write_all(b"GET /warm HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s), (200, "ok".to_string()));
    s.write_all(b"POST /cut HTTP/1.1\r\nHost: c.test\r\nContent-Length: 100\r\n\r\nonly ten..")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = read_to_close(&mut s);
    assert_eq!(status_of(&rest), 400, "{}", String::from_utf8_lossy(&rest));
    let (status, _) = get(proxy.addr, "c.test", "/after", "");
    assert_eq!(status, 200);
    let seen = backend.seen();
    let after = seen
        .iter()
        .find(|r| r.head.starts_with("GET /after"))
        .unwrap();
    assert_ne!(
        after.conn, 0,
        "the connection the cut body was written to was reused"
    );
}
