//! Shared harness for end-to-end tests: starts the real `hoody-api` binary
//! on free loopback ports with its own data directory, waits until it
//! answers `/health`, and stops it when dropped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the OS picks one; it is released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Whether every socket listening on 127.0.0.1:`port` is one of `pid`'s open files
/// (`/proc/net/tcp` names each socket's inode, `/proc/<pid>/fd` the process's
/// sockets; with `SO_REUSEPORT` two processes can listen on one port). `None` when
/// nothing listens there yet or /proc cannot tell.
pub fn listener_owned_by(pid: u32, port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    // Columns: sl, local_address, rem_address, st, ..., inode (the tenth).
    let wanted: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let listening = cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A");
            listening.then(|| cols.get(9).map(|inode| format!("socket:[{inode}]")))?
        })
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let owned: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect();
    Some(wanted.iter().all(|socket| owned.contains(socket)))
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut bytes = [0u8; 6];
        getrandom(&mut bytes);
        let name = format!(
            "hoody-test-{tag}-{}-{}",
            std::process::id(),
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("cannot create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(buf);
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hoody-api")
}

/// A running `hoody-api serve`.
pub struct Server {
    pub child: Option<Child>,
    pub api: String,
    pub api_port: u16,
    pub proxy_port: u16,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    _dir: Option<TempDir>,
}

/// A killed server's ports, bound by placeholders (see [`Server::kill9_keeping_ports`]).
pub struct HeldPorts(Vec<std::net::TcpListener>);

impl Server {
    /// Starts a server with default settings in a new data directory.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let dir = TempDir::new("srv");
        let data_dir = dir.path().join("data");
        let mut server = Server {
            child: None,
            api: String::new(),
            api_port: 0,
            proxy_port: 0,
            data_dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            _dir: Some(dir),
        };
        server.spawn();
        server
    }

    /// Starts (again) on new ports, on the same data directory. A port
    /// `free_port` handed out can be taken by a parallel test before the
    /// server binds it: then it starts again on other ports.
    pub fn spawn(&mut self) {
        for _ in 0..4 {
            match self.try_spawn_on(free_port(), free_port()) {
                Err(log) if log.contains("Address already in use") => continue,
                outcome => return outcome.unwrap_or_else(|log| panic!("{log}")),
            }
        }
        self.spawn_on(free_port(), free_port());
    }

    /// Starts (again) on the given ports, on the same data directory (a
    /// restart that clients holding the old address must find again).
    pub fn spawn_on(&mut self, api_port: u16, proxy_port: u16) {
        if let Err(log) = self.try_spawn_on(api_port, proxy_port) {
            panic!("{log}");
        }
    }

    /// [`Self::spawn_on`], returning why the server did not come up.
    fn try_spawn_on(&mut self, api_port: u16, proxy_port: u16) -> Result<(), String> {
        self.api_port = api_port;
        self.proxy_port = proxy_port;
        self.api = format!("http://127.0.0.1:{}", self.api_port);
        let log = std::fs::File::create(
            self.data_dir
                .with_extension(format!("log.{}", self.api_port)),
        )
        .ok();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--api-listen")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--proxy-listen")
            .arg(format!("127.0.0.1:{}", self.proxy_port))
            .args(&self.extra_args)
            .env("HOODY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::null()),
        };
        self.child = Some(cmd.spawn().expect("cannot start hoody-api"));
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = format!("127.0.0.1:{}", self.api_port);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "hoody-api exited during start: {status}; log: {}",
                        self.log()
                    ));
                }
            }
            if raw_get(&addr, "/health")
                .map(|r| r.starts_with("HTTP/1.1 200"))
                .unwrap_or(false)
            {
                return self.check_listener_is_ours();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "hoody-api did not become healthy; log: {}",
            self.log()
        ))
    }

    /// A healthy answer can come from another test's server that took the port first
    /// (our child then fails to bind, maybe only after the answer), and a proxy port
    /// bound with `SO_REUSEPORT` can be shared with one: the listening sockets must
    /// belong to our child, else it is stopped and the start counts as a port clash,
    /// which `spawn` retries on other ports.
    fn check_listener_is_ours(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        let clash = [self.api_port, self.proxy_port]
            .into_iter()
            .find(|port| listener_owned_by(pid, *port) == Some(false));
        match clash {
            Some(port) => {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                Err(format!(
                    "Address already in use: another process listens on port {port}"
                ))
            }
            // Ours, or /proc cannot tell: trust the answer.
            None => Ok(()),
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(
            self.data_dir
                .with_extension(format!("log.{}", self.api_port)),
        )
        .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.api, path)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server not running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().expect("cannot wait for hoody-api")
    }

    /// Kills the process without warning.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and keeps its ports bound by placeholder listeners until
    /// [`Server::restart_on`] hands them back: while it is down, a parallel test's
    /// server could otherwise be given one of them as a free port, and clients that
    /// keep the old address would reach that server instead. Connections queued on
    /// a placeholder are reset when it goes, as a dead server's would be.
    pub fn kill9_keeping_ports(&mut self) -> HeldPorts {
        self.kill9();
        HeldPorts(
            [self.api_port, self.proxy_port]
                .iter()
                .filter_map(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).ok())
                .collect(),
        )
    }

    /// Starts the server again on the ports `held` kept for it.
    pub fn restart_on(&mut self, held: HeldPorts) {
        let (api_port, proxy_port) = (self.api_port, self.proxy_port);
        drop(held);
        self.spawn_on(api_port, proxy_port);
    }

    /// Every email written to the outbox, oldest first, as raw text.
    pub fn outbox(&self) -> Vec<String> {
        let dir = self.data_dir.join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().map(|e| e == "eml").unwrap_or(false));
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| decode_quoted_printable(&s))
            .collect()
    }

    /// The newest email sent to `to`.
    pub fn last_email_to(&self, to: &str) -> Option<String> {
        let to = to.to_lowercase();
        self.outbox()
            .into_iter()
            .rev()
            .find(|m| m.to_lowercase().contains(&to))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- hoody-api log (port {}) ---\n{}",
                self.api_port,
                self.log()
            );
        }
        self.kill9();
    }
}

/// Undoes quoted-printable soft breaks and `=XX` escapes so tests can find
/// links in message bodies.
pub fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Extracts the value of query parameter `name` from the first link in `text` that has it.
pub fn link_param(text: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=");
    let start = text.find(&needle)? + needle.len();
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    Some(percent_decode(&rest[..end]))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One raw HTTP/1.1 GET over a new connection; returns the whole response.
pub fn raw_get(addr: &str, path: &str) -> std::io::Result<String> {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
}

/// Writes `request` bytes as-is and reads until the server closes.
pub fn raw_request(addr: &str, request: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Creates a verified user with the admin command (server stopped or running).
pub fn admin_create_user(
    data_dir: &Path,
    email: &str,
    password: &str,
    admin: bool,
) -> serde_json::Value {
    use std::io::Write;
    let mut cmd = Command::new(binary());
    cmd.args(["admin", "create-user", "--data-dir"])
        .arg(data_dir)
        .args(["--email", email, "--password-stdin"]);
    if admin {
        cmd.arg("--admin");
    }
    let mut child = cmd
        .env("HOODY_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run admin create-user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("admin create-user");
    assert!(
        out.status.success(),
        "admin create-user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin create-user prints JSON")
}

/// Logs in and returns the access token.
pub async fn login(
    client: &reqwest::Client,
    server: &Server,
    email: &str,
    password: &str,
) -> String {
    let resp = client
        .post(server.url("/api/v1/users/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login request");
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.expect("login JSON");
    assert_eq!(status, 200, "login failed: {body}");
    body["data"]["token"].as_str().expect("token").to_string()
}

/// `Authorization: Basic` for `user:password` (RFC 7617), without a base64
/// dependency in the tests.
pub fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}\r\n")
}

/// The example hook `name` (`target/hooks-examples/<name>.wasm`), built from
/// source by `hooks-sdk/build-examples.sh` the first time a test asks.
pub fn hook_example(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/hooks-examples");
        let status = Command::new("sh")
            .arg(root.join("hooks-sdk/build-examples.sh"))
            .env("HOOKS_EXAMPLES_OUT", &out)
            .status()
            .expect("runs build-examples.sh");
        assert!(status.success(), "hooks-sdk/build-examples.sh failed");
        out
    });
    dir.join(format!("{name}.wasm"))
}
