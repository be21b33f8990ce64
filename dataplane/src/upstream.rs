//! Upstream connections: a hand-rolled HTTP/1.1 client over a per-worker
//! pool of raw `TcpStream`s keyed by upstream address.
//!
//! The pool lives on one worker thread (`Rc`, `RefCell`), so checkout and
//! checkin are a hash probe and a `Vec` push/pop with no atomics or locks.
//! All upstream I/O runs inside the request's own task: the request head is
//! serialized into the connection's reused write buffer and written with one
//! syscall, the response head is parsed from its reused read buffer, and the
//! body is handed out as zero-copy slices of that buffer. There is no
//! connection task, so a request costs no cross-task wake-ups or channel
//! hops (the hyper client this replaces spent about a quarter of the
//! proxy's CPU there).
//!
//! A connection goes back to the pool only once its response body has been
//! read to the end with nothing extra buffered, and neither side asked to
//! close (see `UpstreamBody`); a body dropped early or an error closes it,
//! the only way to stay in sync with HTTP/1.1 framing. The wire format
//! itself is in `h1`.

pub mod h1;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Method;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::downstream::{ClientBody, RequestBodyError};
use crate::prefixed::Prefixed;

use crate::framing::{self, BodyDecoder, Decoded, ProtocolError};
use crate::metrics::{UpstreamError, WorkerMetrics};
use h1::{ReqFraming, ResponseHead};

/// Read buffer size of a fresh connection; it grows only for larger heads.
const READ_BUF: usize = 16 * 1024;
/// A complete request body up to this size is sent in the head's write.
const INLINE_BODY: usize = 16 * 1024;

/// A connection failure, before any request byte was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why one request/response exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing the request: {0}")]
    Write(io::Error),
    #[error(transparent)]
    ClientBody(RequestBodyError),
    #[error("the request body did not match its declared length")]
    BodyLength,
    #[error("reading the response: {0}")]
    Read(io::Error),
    #[error("upstream closed the connection before a complete response head")]
    Closed,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// An error in a response body after its head was forwarded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the upstream response body: {0}")]
    Read(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A request body sent upstream: the client's, streamed (from our HTTP/1
/// server or hyper's HTTP/2 one); none (a bodiless request being retried on
/// a fresh connection); or one a hook buffered (and possibly rewrote).
pub enum ReqBody {
    H1(ClientBody),
    H2(Incoming),
    Empty,
    Buffered(Option<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        match self.get_mut() {
            ReqBody::H1(b) => Pin::new(b).poll_frame(cx),
            ReqBody::H2(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(RequestBodyError::H2))),
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Buffered(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::H1(b) => b.is_end_stream(),
            ReqBody::H2(b) => b.is_end_stream(),
            ReqBody::Empty => true,
            ReqBody::Buffered(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::H1(b) => b.size_hint(),
            ReqBody::H2(b) => b.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Buffered(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// How a request body goes on the wire: its exact length when known (an
/// empty body of a method that usually carries one still says `0`, as
/// clients do), otherwise chunked.
pub fn request_framing(method: &Method, body: &ReqBody, had_length: bool) -> ReqFraming {
    match body.size_hint().exact() {
        Some(0)
            if !had_length && !matches!(*method, Method::POST | Method::PUT | Method::PATCH) =>
        {
            ReqFraming::None
        }
        Some(n) => ReqFraming::Length(n),
        None => ReqFraming::Chunked,
    }
}

/// One upstream HTTP/1.1 connection with its reused buffers.
pub struct Upstream {
    stream: TcpStream,
    /// Bytes read from the upstream and not yet consumed.
    rbuf: BytesMut,
    /// The serialized request head (kept until the response head arrives,
    /// so a retry on a fresh connection resends it as is).
    wbuf: Vec<u8>,
}

impl Upstream {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(READ_BUF),
            wbuf: Vec::with_capacity(1024),
        }
    }

    /// Serializes the request head into this connection's write buffer.
    pub fn encode_head(
        &mut self,
        req: &http::request::Parts,
        framing: ReqFraming,
        fwd: &h1::Forwarding<'_>,
    ) {
        h1::encode_request_head(
            &mut self.wbuf,
            &req.method,
            &req.uri,
            &req.headers,
            framing,
            fwd,
        );
    }

    /// Moves the serialized head of `dead` here, to resend it unchanged.
    pub fn adopt_head(&mut self, dead: &mut Upstream) {
        std::mem::swap(&mut self.wbuf, &mut dead.wbuf);
    }

    /// Sends the encoded head and `body`, then reads the response head.
    /// `progress` records whether any response byte arrived, which decides
    /// whether a failure may be retried.
    pub async fn exchange(
        &mut self,
        body: &mut ReqBody,
        framing: ReqFraming,
        head_request: bool,
        progress: &mut Progress,
    ) -> Result<ResponseHead, ExchangeError> {
        match self.send(body, framing, progress).await {
            Ok(()) => self.read_head(head_request, progress).await,
            // An upstream may answer (413, 401...) and close without reading
            // the whole body: its answer beats our write error.
            Err(e @ ExchangeError::Write(_)) => {
                match self.read_head(head_request, progress).await {
                    Ok(head) => Ok(ResponseHead {
                        keep_alive: false,
                        ..head
                    }),
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn send(
        &mut self,
        body: &mut ReqBody,
        framing: ReqFraming,
        progress: &mut Progress,
    ) -> Result<(), ExchangeError> {
        if let ReqBody::Buffered(Some(b)) = body {
            if b.len() <= INLINE_BODY && framing == ReqFraming::Length(b.len() as u64) {
                self.wbuf.extend_from_slice(b);
                let res = self.stream.write_all(&self.wbuf).await;
                self.wbuf.truncate(self.wbuf.len() - b.len());
                *body = ReqBody::Buffered(None);
                return res.map_err(|e| progress.write_failed(e));
            }
        }
        self.stream
            .write_all(&self.wbuf)
            .await
            .map_err(|e| progress.write_failed(e))?;
        match framing {
            ReqFraming::None => Ok(()),
            ReqFraming::Length(n) => self.send_sized(body, n, progress).await,
            ReqFraming::Chunked => self.send_chunked(body, progress).await,
        }
    }

    async fn send_sized(
        &mut self,
        body: &mut ReqBody,
        mut left: u64,
        progress: &mut Progress,
    ) -> Result<(), ExchangeError> {
        while let Some(data) = next_data(body).await? {
            left = left
                .checked_sub(data.len() as u64)
                .ok_or(ExchangeError::BodyLength)?;
            self.stream
                .write_all(&data)
                .await
                .map_err(|e| progress.write_failed(e))?;
        }
        if left == 0 {
            Ok(())
        } else {
            Err(ExchangeError::BodyLength)
        }
    }

    async fn send_chunked(
        &mut self,
        body: &mut ReqBody,
        progress: &mut Progress,
    ) -> Result<(), ExchangeError> {
        let mut out = Vec::new();
        while let Some(data) = next_data(body).await? {
            out.clear();
            framing::encode_chunk(&mut out, &data);
            self.stream
                .write_all(&out)
                .await
                .map_err(|e| progress.write_failed(e))?;
        }
        self.stream
            .write_all(framing::LAST_CHUNK)
            .await
            .map_err(|e| progress.write_failed(e))
    }

    async fn read_head(
        &mut self,
        head_request: bool,
        progress: &mut Progress,
    ) -> Result<ResponseHead, ExchangeError> {
        loop {
            if !self.rbuf.is_empty() {
                progress.answered = true;
                if let Some(head) = h1::parse_response_head(&mut self.rbuf, head_request)? {
                    return Ok(head);
                }
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx))
                .await
                .map_err(ExchangeError::Read)?;
            if n == 0 {
                return Err(ExchangeError::Closed);
            }
        }
    }

    /// Reads what the socket has into the read buffer. Goes through
    /// `AsyncRead::poll_read`, which clears tokio's readiness on a short
    /// read, so the next wait costs no extra `recvfrom` returning EAGAIN.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_BUF / 4 {
            self.rbuf.reserve(READ_BUF);
        }
        let spare = self.rbuf.spare_capacity_mut();
        let mut rb = ReadBuf::uninit(spare);
        match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: `poll_read` initialized the first `n` bytes of the
                // spare capacity (that is what `filled` reports).
                unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether an idle connection may still be used: no close, error or
    /// unexpected bytes from the upstream since it went idle. Costs no
    /// syscall unless the socket became readable.
    fn is_reusable(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The raw connection after a 101, with the bytes the upstream already
    /// sent past the head (they belong to the new protocol).
    pub fn into_tunnel(self) -> Prefixed {
        Prefixed::new(self.rbuf.freeze(), self.stream)
    }
}

/// What one exchange did so far, for the retry decision.
#[derive(Default, Debug)]
pub struct Progress {
    /// At least one response byte arrived: the upstream started answering.
    pub answered: bool,
    /// A write failed: the upstream was gone before taking the request.
    pub write_failed: bool,
}

impl Progress {
    fn write_failed(&mut self, e: io::Error) -> ExchangeError {
        self.write_failed = true;
        ExchangeError::Write(e)
    }
}

/// The next data frame of a request body (trailers are not forwarded).
async fn next_data(body: &mut ReqBody) -> Result<Option<Bytes>, ExchangeError> {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(ExchangeError::ClientBody(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Connections move by pointer (checkout, the exchange, the response body,
/// checkin): the struct with its buffers is a few hundred bytes.
pub type Boxed = Box<Upstream>;

struct Idle {
    up: Boxed,
    since: Instant,
}

/// A checked-out connection.
pub struct Conn {
    pub up: Boxed,
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

    /// A connection: the most recently used idle one (warmest) that is
    /// still open, or a new one.
    pub async fn checkout(&self, addr: SocketAddr) -> Result<Conn, ConnectError> {
        while let Some(idle) = self.pop(addr) {
            if idle.since.elapsed() <= self.idle_timeout && idle.up.is_reusable() {
                return Ok(Conn {
                    up: idle.up,
                    reused: true,
                });
            }
        }
        self.connect(addr)
            .await
            .map(|up| Conn { up, reused: false })
    }

    /// Returns a connection whose last response was read completely.
    pub fn checkin(&self, addr: SocketAddr, up: Boxed) {
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
    pub async fn connect(&self, addr: SocketAddr) -> Result<Boxed, ConnectError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
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
        Ok(Box::new(Upstream::new(stream)))
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
}

/// An upstream response body, streamed as it arrives, that owns its
/// connection and hands it back to the pool when the body ends cleanly.
pub struct UpstreamBody {
    up: Option<Boxed>,
    decoder: BodyDecoder,
    /// Set when the connection may be reused after this body.
    ret: Option<Return>,
    /// A frame decoded ahead, so the end of the body is noticed (and the
    /// connection returned) as soon as its last bytes are in: servers stop
    /// polling a body once `is_end_stream` says so.
    ahead: Option<Result<Bytes, BodyError>>,
}

impl UpstreamBody {
    pub fn new(up: Boxed, head: &ResponseHead, ret: Option<Return>) -> Self {
        let mut body = Self {
            up: Some(up),
            decoder: BodyDecoder::new(head.framing),
            ret: ret.filter(|_| head.keep_alive),
            ahead: None,
        };
        body.look_ahead();
        body
    }

    /// Decodes what is already buffered, without reading the socket.
    fn look_ahead(&mut self) {
        let Some(up) = self.up.as_mut() else {
            return;
        };
        match self.decoder.decode(&mut up.rbuf) {
            Ok(Decoded::Data(d)) => self.ahead = Some(Ok(d)),
            Ok(Decoded::End) => self.finish(),
            Ok(Decoded::NeedMore) => {}
            Err(e) => {
                self.up = None;
                self.ahead = Some(Err(e.into()));
            }
        }
    }

    /// The body is complete: the connection goes back to the pool unless
    /// the upstream sent more than the body (it would desync the next
    /// response) or someone asked to close.
    fn finish(&mut self) {
        let up = self.up.take();
        if let (Some(up), Some(r)) = (up, self.ret.take()) {
            if up.rbuf.is_empty() {
                r.pool.checkin(r.addr, up);
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        loop {
            let Some(up) = self.up.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match self.decoder.decode(&mut up.rbuf) {
                Ok(Decoded::NeedMore) => match up.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => self.decoder.eof(),
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => {
                        self.up = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                other => other,
            };
            return Poll::Ready(match step {
                Ok(Decoded::Data(d)) => Some(Ok(d)),
                Ok(_) => {
                    self.finish();
                    None
                }
                Err(e) => {
                    self.up = None;
                    Some(Err(e.into()))
                }
            });
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let next = match this.ahead.take() {
            Some(ready) => Some(ready),
            None => match this.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            },
        };
        if matches!(next, Some(Ok(_))) {
            this.look_ahead();
        }
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_none() && self.up.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = match &self.ahead {
            Some(Ok(d)) => d.len() as u64,
            _ => 0,
        };
        match self.decoder.remaining() {
            Some(n) if self.up.is_some() || n == 0 => SizeHint::with_exact(n + ahead),
            _ => SizeHint::default(),
        }
    }
}
