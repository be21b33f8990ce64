//! Upstream connections: a per-worker pool of HTTP/1.1 `SendRequest`
//! handles keyed by upstream address.
//!
//! The pool lives on one worker thread (`Rc`, `RefCell`), so checkout and
//! checkin are a hash probe and a `Vec` push/pop with no atomics or locks,
//! and a request never wakes another thread. A connection goes back to the
//! pool only once its response body has been read to the end (see
//! `UpstreamBody`); a body dropped early closes the connection, which is
//! the only way to stay in sync with HTTP/1.1 framing.
//!
//! Every connection counts the response bytes it has read, so a failed
//! request can tell "the pooled connection was dead before answering"
//! (safe to retry) from "the upstream started answering" (never retried).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;

use crate::metrics::{UpstreamError, WorkerMetrics};

/// A connection failure, before any response bytes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

/// A request body sent upstream: the client's, streamed; none (a bodiless
/// request being retried on a fresh connection); or one a hook buffered
/// (and possibly rewrote).
pub enum ReqBody {
    Client(Incoming),
    Empty,
    Buffered(Option<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Client(b) => Pin::new(b).poll_frame(cx),
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Buffered(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Client(b) => b.is_end_stream(),
            ReqBody::Empty => true,
            ReqBody::Buffered(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Client(b) => b.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Buffered(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// One upstream HTTP/1.1 connection: hyper's request handle plus the count
/// of bytes read from the socket so far.
pub struct Upstream {
    pub sender: SendRequest<ReqBody>,
    read: Arc<AtomicU64>,
}

impl Upstream {
    /// Bytes received from the upstream on this connection so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

struct Idle {
    up: Upstream,
    since: Instant,
}

/// A checked-out connection.
pub struct Conn {
    pub up: Upstream,
    /// True when it came from the pool (and so may be stale).
    pub reused: bool,
}

/// One worker's upstream pool.
pub struct Pool {
    idle: RefCell<FxHashMap<SocketAddr, Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    metrics: Arc<WorkerMetrics>,
}

impl Pool {
    pub fn new(
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
        metrics: Arc<WorkerMetrics>,
    ) -> Self {
        Self {
            idle: RefCell::new(FxHashMap::default()),
            max_idle,
            idle_timeout,
            connect_timeout,
            metrics,
        }
    }

    /// A ready connection: the most recently used idle one (warmest), or a
    /// new one.
    pub async fn checkout(&self, addr: SocketAddr) -> Result<Conn, ConnectError> {
        while let Some(idle) = self.pop(addr) {
            if idle.up.sender.is_closed() || idle.since.elapsed() > self.idle_timeout {
                continue;
            }
            let mut up = idle.up;
            if up.sender.ready().await.is_ok() {
                return Ok(Conn { up, reused: true });
            }
        }
        self.connect(addr)
            .await
            .map(|up| Conn { up, reused: false })
    }

    /// Returns a connection whose last response was read completely.
    pub fn checkin(&self, addr: SocketAddr, up: Upstream) {
        if up.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                up,
                since: Instant::now(),
            });
            self.metrics.pool_idle_add(1);
        }
    }

    /// Opens a fresh connection (also used to retry a stale pooled one).
    pub async fn connect(&self, addr: SocketAddr) -> Result<Upstream, ConnectError> {
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    self.metrics.upstream_error(UpstreamError::Timeout);
                    ConnectError::Timeout(addr)
                })?
                .map_err(|source| {
                    self.metrics.upstream_error(UpstreamError::Connect);
                    ConnectError::Io { addr, source }
                })?;
        let _ = stream.set_nodelay(true);
        let read = Arc::new(AtomicU64::new(0));
        let io = Counted {
            inner: stream,
            read: read.clone(),
        };
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::task::spawn_local(async move {
            if let Err(err) = conn.with_upgrades().await {
                tracing::debug!(%err, "upstream connection ended");
            }
        });
        Ok(Upstream { sender, read })
    }

    fn pop(&self, addr: SocketAddr) -> Option<Idle> {
        let idle = self.idle.borrow_mut().get_mut(&addr)?.pop()?;
        self.metrics.pool_idle_add(-1);
        Some(idle)
    }

    /// Drops idle connections (at shutdown, so upstreams see a clean close).
    pub fn clear(&self) {
        let mut idle = self.idle.borrow_mut();
        let n: usize = idle.values().map(Vec::len).sum();
        self.metrics.pool_idle_add(-(n as i64));
        idle.clear();
    }
}

/// Where a finished connection goes back to.
pub struct Return {
    pub pool: Rc<Pool>,
    pub addr: SocketAddr,
    pub up: Upstream,
}

/// An upstream response body, streamed as it arrives, that hands its
/// connection back to the pool when it reaches the end.
pub struct UpstreamBody {
    inner: Incoming,
    ret: Option<Return>,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, ret: Option<Return>) -> Self {
        let mut body = Self { inner, ret };
        // Servers may never poll an empty body (204, HEAD, length 0).
        if body.inner.is_end_stream() {
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some(r) = self.ret.take() {
            r.pool.checkin(r.addr, r.up);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.give_back(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.give_back(),
            Some(Err(_)) => self.ret = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that counts the bytes read from it. Upgraded connections must be
/// `Send`, hence the atomic; its only writer is the connection's own task,
/// so a relaxed load and store suffice.
struct Counted {
    inner: tokio::net::TcpStream,
    read: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            let total = self.read.load(Ordering::Relaxed) + n;
            self.read.store(total, Ordering::Relaxed);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
