//! One JSON line per request. Each worker appends to its own buffer and
//! flushes when it is large or on a short timer, so logging costs a memcpy
//! per request instead of a syscall.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::AccessLog;

const FLUSH_AT: usize = 32 * 1024;

/// Where flushed lines go; shared by all workers.
#[derive(Clone)]
pub enum Sink {
    Off,
    Stdout,
    File(Arc<Mutex<std::fs::File>>),
}

impl Sink {
    pub fn open(cfg: &AccessLog) -> std::io::Result<Self> {
        Ok(match cfg {
            AccessLog::Off => Sink::Off,
            AccessLog::Stdout => Sink::Stdout,
            AccessLog::File(path) => Sink::File(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ))),
        })
    }
}

/// A finished request, as logged.
pub struct Entry<'a> {
    pub client: SocketAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub version: http::Version,
    pub status: u16,
    pub route_kind: &'a str,
    pub unit: &'a str,
    pub duration: Duration,
    pub error: Option<&'a str>,
}

/// A worker's log buffer.
pub struct AccessLogger {
    sink: Sink,
    buf: RefCell<Vec<u8>>,
}

impl AccessLogger {
    pub fn new(sink: Sink) -> Self {
        Self {
            sink,
            buf: RefCell::new(Vec::with_capacity(FLUSH_AT + 1024)),
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    pub fn log(&self, e: &Entry<'_>) {
        if !self.enabled() {
            return;
        }
        let full = {
            let mut buf = self.buf.borrow_mut();
            write_entry(&mut buf, e);
            buf.len() >= FLUSH_AT
        };
        if full {
            self.flush();
        }
    }

    pub fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let result = match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(&buf),
            Sink::File(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(&buf),
        };
        if let Err(err) = result {
            tracing::warn!(%err, "access log write failed");
        }
        buf.clear();
    }
}

fn write_entry(buf: &mut Vec<u8>, e: &Entry<'_>) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let version = match e.version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    };
    let _ = write!(
        buf,
        "{{\"ts\":{ts:.3},\"client\":\"{}\",\"method\":",
        e.client
    );
    json_str(buf, e.method);
    buf.extend_from_slice(b",\"host\":");
    json_str(buf, e.host);
    buf.extend_from_slice(b",\"path\":");
    json_str(buf, e.path);
    let _ = write!(
        buf,
        ",\"http\":\"{version}\",\"status\":{},\"route\":\"{}\",\"unit\":",
        e.status, e.route_kind
    );
    json_str(buf, e.unit);
    let _ = write!(buf, ",\"duration_us\":{}", e.duration.as_micros());
    if let Some(err) = e.error {
        buf.extend_from_slice(b",\"error\":");
        json_str(buf, err);
    }
    buf.extend_from_slice(b"}\n");
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *buf, s).is_err() {
        buf.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_one_valid_json_line() {
        let mut buf = Vec::new();
        write_entry(
            &mut buf,
            &Entry {
                client: "1.2.3.4:5".parse().unwrap(),
                method: "GET",
                host: "a.test",
                path: "/x?\"quoted\"",
                version: http::Version::HTTP_11,
                status: 200,
                route_kind: "service",
                unit: "u1",
                duration: Duration::from_micros(42),
                error: Some("upstream: connect"),
            },
        );
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], "/x?\"quoted\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_us"], 42);
    }
}
