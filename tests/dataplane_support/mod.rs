//! Shared helpers for the data-plane end-to-end tests: a raw HTTP/1.1
//! backend, the proxy binary as a child process, raw-socket clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique scratch directory for one test. They are named after this process
/// and kept while it runs (a test may start a second proxy on the same files);
/// the first call of a process removes those of test processes that have ended.
pub fn scratch_dir(name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_ended_processes_dirs);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("hoody-dp-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes `hoody-dp-<pid>-*` scratch directories whose process is gone.
fn remove_ended_processes_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hoody-dp-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A keep-alive HTTP/1.1 backend on its own threads. It answers every
/// request with a JSON echo of what it received; `Upgrade: echo` requests
/// get a 101 and then every byte is echoed back.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tag = tag.clone();
                std::thread::spawn(move || serve_backend_conn(stream, &tag));
            }
        });
        Backend {
            addr,
            name: name.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// How a `FlakyBackend` treats the second request on a keep-alive
/// connection (the first is always answered, keep-alive).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SecondRequest {
    /// Close the socket without a byte of answer, as a server that timed the
    /// idle connection out just as the request arrived.
    CloseUnanswered,
    /// Send part of a response head, then close.
    ClosePartway,
}

/// A keep-alive backend that answers only the first request of every
/// connection; it counts every request head it receives.
pub struct FlakyBackend {
    pub addr: SocketAddr,
    pub requests: std::sync::Arc<AtomicUsize>,
}

impl FlakyBackend {
    pub fn start(second: SecondRequest) -> FlakyBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || serve_flaky_conn(stream, second, &count));
            }
        });
        FlakyBackend { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_flaky_conn(mut stream: TcpStream, second: SecondRequest, count: &AtomicUsize) {
    let mut buf = Vec::new();
    let Some((head, _)) = read_request(&mut stream, &mut buf) else {
        return;
    };
    count.fetch_add(1, Ordering::SeqCst);
    let line = head.split("\r\n").next().unwrap_or("").to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{line}",
        line.len()
    );
    if stream.write_all(resp.as_bytes()).is_err() {
        return;
    }
    if read_request(&mut stream, &mut buf).is_none() {
        return;
    }
    count.fetch_add(1, Ordering::SeqCst);
    if second == SecondRequest::ClosePartway {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
    }
    // Dropping the stream closes it.
}

fn serve_backend_conn(mut stream: TcpStream, tag: &str) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buf) else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        if lower.contains("\r\nupgrade: echo") {
            let _ = stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            );
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let headers: serde_json::Map<String, serde_json::Value> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    serde_json::Value::from(v.trim()),
                )
            })
            .collect();
        let echo = serde_json::json!({
            "backend": tag,
            "request_line": request_line,
            "headers": headers,
            "body_len": body.len(),
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            echo.len(),
            echo
        );
        if stream.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one request (head + Content-Length body) from a keep-alive stream.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let lower = head.to_ascii_lowercase();
    if lower.contains("\r\ntransfer-encoding: chunked") {
        return read_chunked(stream, buf, head, head_end);
    }
    let len = lower
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some((head, body))
}

/// Reads a chunked body (no trailers) following a request head.
fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: String,
    head_end: usize,
) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let mut body = Vec::new();
    let mut pos = head_end;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let size_text = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let need = line_end + 2 + size + 2;
        while buf.len() < need {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        pos = need;
        if size == 0 {
            buf.drain(..pos);
            return Some((head, body));
        }
    }
}

/// A backend that answers every request after `delay`.
pub fn slow_backend(delay: Duration) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while find(&head, b"\r\n\r\n").is_none() {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(delay);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
                let _ = stream.read(&mut buf);
            });
        }
    });
    addr
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `hoody-api` binary under test.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoody-api"))
}

/// The proxy binary, killed when dropped.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub routes: PathBuf,
    pub metrics: Option<SocketAddr>,
}

impl Proxy {
    pub fn start(routes_json: &serde_json::Value, extra: &[&str]) -> Proxy {
        let dir = scratch_dir("proxy");
        let routes = dir.join("routes.json");
        std::fs::write(&routes, routes_json.to_string()).unwrap();
        Self::start_with_file(routes, extra)
    }

    /// Starts the proxy on free ports; when a parallel test turns out to hold one of
    /// them (the listener is not our child's), starts again on others.
    pub fn start_with_file(routes: PathBuf, extra: &[&str]) -> Proxy {
        for _ in 0..4 {
            let proxy = Self::spawn(&routes, extra);
            let pid = proxy.child.id();
            let clash = [proxy.addr, proxy.metrics.unwrap()]
                .iter()
                .any(|addr| crate::common::listener_owned_by(pid, addr.port()) == Some(false));
            if !clash {
                return proxy;
            }
        }
        panic!("no free ports for the proxy after 4 tries");
    }

    fn spawn(routes: &PathBuf, extra: &[&str]) -> Proxy {
        let port = free_port();
        let metrics_port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
        let child = Command::new(binary())
            .arg("dataplane")
            .arg("--routes")
            .arg(routes)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .args(if extra.contains(&"--workers") {
                &["--routes-poll-ms", "100"][..]
            } else {
                &["--workers", "2", "--routes-poll-ms", "100"][..]
            })
            .args(if extra.contains(&"--access-log") {
                &[][..]
            } else {
                &["--access-log", "off"][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proxy = Proxy {
            child,
            addr,
            routes: routes.clone(),
            metrics: Some(metrics),
        };
        wait_for_port(addr);
        wait_for_port(metrics);
        proxy
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn metrics_text(&self) -> String {
        let addr = self.metrics.unwrap();
        let resp = raw_request(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&resp).into_owned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on {addr}");
}

/// Sends raw bytes and reads until the server closes (or 10 s pass).
pub fn raw_request(addr: SocketAddr, req: &str) -> Vec<u8> {
    raw_bytes(addr, req.as_bytes())
}

pub fn raw_bytes(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(req);
    read_to_close(&mut s)
}

pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Status code of the first response in `resp`.
pub fn status_of(resp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn count_responses(resp: &[u8]) -> usize {
    resp.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// Body of the first response (Content-Length framed).
pub fn body_of(resp: &[u8]) -> String {
    let start = find(resp, b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&resp[..start]).to_ascii_lowercase();
    let len = head
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(resp.len() - start);
    String::from_utf8_lossy(&resp[start..(start + len).min(resp.len())]).into_owned()
}

/// One keep-alive GET over an open stream; returns (status, body).
pub fn get_on(stream: &mut TcpStream, host: &str, path: &str, extra: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    read_response(stream)
}

/// Reads exactly one Content-Length framed response.
pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // The head a byte at a time and then exactly its body: with pipelined requests
    // the next response may follow in the same segment, and it is the next call's.
    let head_end = loop {
        if buf.ends_with(b"\r\n\r\n") {
            break buf.len();
        }
        let n = stream.read(&mut chunk[..1]).unwrap_or(0);
        if n == 0 {
            return (0, String::new());
        }
        buf.push(chunk[0]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let want = (head_end + len - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = status_of(&buf);
    (
        status,
        String::from_utf8_lossy(&buf[head_end..]).into_owned(),
    )
}

/// Simple GET with Connection: close; returns (status, headers+body text).
pub fn get(addr: SocketAddr, host: &str, path: &str, extra: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n");
    let resp = raw_request(addr, &req);
    (
        status_of(&resp),
        String::from_utf8_lossy(&resp).into_owned(),
    )
}

/// Minimal HTTP/2 framing for hardening tests.
pub mod h2 {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const DATA: u8 = 0x0;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;

    /// One parsed frame.
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    /// The complete frames at the start of `data`.
    pub fn parse_frames(data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 9 <= data.len() {
            let len = (usize::from(data[i]) << 16)
                | (usize::from(data[i + 1]) << 8)
                | usize::from(data[i + 2]);
            if i + 9 + len > data.len() {
                break;
            }
            out.push(Frame {
                kind: data[i + 3],
                flags: data[i + 4],
                stream: u32::from_be_bytes([data[i + 5], data[i + 6], data[i + 7], data[i + 8]])
                    & 0x7fff_ffff,
                payload: data[i + 9..i + 9 + len].to_vec(),
            });
            i += 9 + len;
        }
        out
    }

    /// Reads from `s` (after `already`) until `stream` ends; returns its
    /// header block and its body.
    pub fn read_stream(
        s: &mut std::net::TcpStream,
        already: &[u8],
        stream: u32,
    ) -> (Vec<u8>, Vec<u8>) {
        use std::io::Read;
        let mut data = already.to_vec();
        let mut buf = [0u8; 8192];
        loop {
            let frames = parse_frames(&data);
            let mine: Vec<&Frame> = frames.iter().filter(|f| f.stream == stream).collect();
            if mine
                .iter()
                .any(|f| (f.kind == DATA || f.kind == HEADERS) && f.flags & END_STREAM != 0)
            {
                let block = mine
                    .iter()
                    .filter(|f| f.kind == HEADERS || f.kind == CONTINUATION)
                    .flat_map(|f| f.payload.clone())
                    .collect();
                let body = mine
                    .iter()
                    .filter(|f| f.kind == DATA)
                    .flat_map(|f| f.payload.clone())
                    .collect();
                return (block, body);
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before stream {stream} ended");
            data.extend_from_slice(&buf[..n]);
        }
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A literal header without indexing, new name (HPACK, no Huffman).
    pub fn literal(name: &str, value: &str) -> Vec<u8> {
        let mut out = vec![0x00, name.len() as u8];
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
        out
    }

    /// `GET /` for `authority`: static-table :method GET, :scheme http, :path /.
    pub fn get_block(authority: &str) -> Vec<u8> {
        let mut b = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
        b.extend_from_slice(authority.as_bytes());
        b
    }

    /// The error code of the first GOAWAY frame in `data`.
    pub fn goaway_code(data: &[u8]) -> Option<u32> {
        let mut i = 0;
        while i + 9 <= data.len() {
            let len = (usize::from(data[i]) << 16)
                | (usize::from(data[i + 1]) << 8)
                | usize::from(data[i + 2]);
            if data[i + 3] == GOAWAY && i + 9 + 8 <= data.len() {
                let p = &data[i + 9 + 4..i + 9 + 8];
                return Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
            }
            i += 9 + len;
        }
        None
    }

    /// Reads frames until GOAWAY or close; returns the frame types seen.
    pub fn frame_types(data: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 9 <= data.len() {
            let len = (usize::from(data[i]) << 16)
                | (usize::from(data[i + 1]) << 8)
                | usize::from(data[i + 2]);
            types.push(data[i + 3]);
            i += 9 + len;
        }
        types
    }
}

/// One scripted backend answer: raw bytes, then close or keep the
/// connection open for the next request.
#[derive(Clone)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl Reply {
    pub fn keep(bytes: &[u8]) -> Reply {
        Reply {
            bytes: bytes.to_vec(),
            close: false,
        }
    }

    pub fn close(bytes: &[u8]) -> Reply {
        Reply {
            bytes: bytes.to_vec(),
            close: true,
        }
    }
}

/// A request a `ScriptedBackend` received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which accepted connection it came on (0 = the first).
    pub conn: usize,
    pub head: String,
    pub body: Vec<u8>,
}

/// A backend that answers the n-th request it receives (over all its
/// connections) with the n-th scripted reply, byte for byte (the last reply
/// repeats), so tests can send what no well-behaved server would.
pub struct ScriptedBackend {
    pub addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl ScriptedBackend {
    pub fn start(script: Vec<Reply>) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let script = std::sync::Arc::new(script);
        std::thread::spawn(move || {
            for (conn, stream) in listener.incoming().flatten().enumerate() {
                let (record, script) = (record.clone(), script.clone());
                std::thread::spawn(move || serve_scripted(stream, conn, &script, &record));
            }
        });
        ScriptedBackend { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_scripted(
    mut stream: TcpStream,
    conn: usize,
    script: &[Reply],
    seen: &std::sync::Mutex<Vec<Seen>>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buf) {
        let reply = {
            let mut seen = seen.lock().unwrap();
            let reply = script[seen.len().min(script.len() - 1)].clone();
            seen.push(Seen { conn, head, body });
            reply
        };
        if stream.write_all(&reply.bytes).is_err() || reply.close {
            return;
        }
    }
}
