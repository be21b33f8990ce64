//! Client connections over HTTP/1.1, served by our own code.
//!
//! hyper's HTTP/1 server was the largest share of the proxy's user CPU
//! after the upstream client was replaced (dispatcher, a second parse of each
//! head by the framing guard in front of it, response encoding, the body
//! channel). This server does the same job in the connection's own task
//! with reused buffers:
//!
//! - a head is read into the connection's buffer and parsed once
//!   (`h1::parse_request_head`), with the framing rules applied on the way;
//!   a refused head is answered with its JSON error and the connection is
//!   closed (nothing after it is ever parsed);
//! - the request goes to `proxy::handle` as an `http::Request` whose body
//!   ([`ClientBody`]) reads from the same buffer, zero-copy, and sends the
//!   `100 Continue` an `Expect: 100-continue` client waits for the first time
//!   it has to wait for body bytes;
//! - the response head is written with its first body bytes in one write
//!   when they are already there, then the rest of the body is streamed
//!   (length-delimited, chunked, or until close for an HTTP/1.0 client);
//! - after a `101` the connection becomes a tunnel to the upstream socket;
//! - the next request is read only once this one's body has been read
//!   entirely; otherwise the connection is closed after the response, so
//!   unread body bytes are never taken for a request.
//!
//! The first bytes of a connection may instead be the HTTP/2 preface, or its
//! first request an `Upgrade: h2c` (see `h2c`): the connection is then
//! handed back to the listener, which runs hyper's HTTP/2 server on it.
//!
//! Time limits: the head deadline of the worker's sweep (from the accept, or
//! the end of the previous exchange, to the end of the next head); a slow
//! body or a slow upstream does not count.

pub mod h1;

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::framing::{self, BodyDecoder, BodyFraming, Decoded, ProtocolError};
use crate::prefixed::Prefixed;
use crate::proxy::{self, ConnInfo, ProxyBody, Worker};
use crate::sweep::Watch;
use crate::upstream::ReqBody;
use h1::{HeadLimits, Parsed, Persistence, Refusal, RequestHead, RespFraming};

/// Read buffer of a connection; it grows only for larger heads and bodies.
const READ_BUF: usize = 8 * 1024;
/// Body frames up to this size are copied next to the head (one write);
/// larger ones go out in a vectored write of their own.
const COPY_BODY: usize = 8 * 1024;
/// After the last response, what a client still sends is read and dropped
/// (so the close does not reset the connection before the answer is read),
/// up to this much and this long.
const LINGER_BYTES: usize = 1 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("reading the request body: {0}")]
    Io(#[from] io::Error),
    #[error("request body: {0}")]
    Framing(#[from] ProtocolError),
    #[error("the client closed the connection inside the request body")]
    Truncated,
    #[error("the request body was read after its exchange ended")]
    Stale,
    #[error("reading the HTTP/2 request body: {0}")]
    H2(#[from] hyper::Error),
}

/// What the listener does with the connection after [`serve`].
pub enum Handoff {
    /// The connection is finished.
    Done,
    /// The client speaks HTTP/2 (prior knowledge): `Prefixed` replays the
    /// bytes read so far.
    Http2(Prefixed),
    /// The first request asked to upgrade to h2c and qualifies: answer 101,
    /// then serve HTTP/2 with `frames` (the request as stream 1) injected.
    H2cUpgrade(Prefixed, Vec<u8>),
}

/// The client socket and its read buffer, shared by the connection's driver
/// and the body of the request in flight. Single-threaded: every borrow
/// below ends before the function that takes it returns (none is held
/// across an `.await`).
pub struct ClientIo {
    stream: RefCell<TcpStream>,
    rbuf: RefCell<BytesMut>,
    body: RefCell<BodyState>,
}

/// The request body in flight.
struct BodyState {
    decoder: BodyDecoder,
    /// A `100 Continue` is owed before the body's first bytes are awaited;
    /// `Some(n)`: `n` bytes of it are written.
    continue_owed: Option<usize>,
    /// Bumped when an exchange ends, so a body that outlived its request
    /// never reads the next one's bytes.
    generation: u64,
}

impl ClientIo {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream: RefCell::new(stream),
            rbuf: RefCell::new(BytesMut::with_capacity(READ_BUF)),
            body: RefCell::new(BodyState {
                decoder: BodyDecoder::Done,
                continue_owed: None,
                generation: 0,
            }),
        }
    }

    /// Reads what the socket has into the read buffer. Through
    /// `AsyncRead::poll_read`, which clears tokio's readiness on a short
    /// read, so the next wait costs no `recvfrom` returning EAGAIN.
    fn poll_fill(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut rbuf = self.rbuf.borrow_mut();
        if rbuf.capacity() - rbuf.len() < READ_BUF / 4 {
            rbuf.reserve(READ_BUF);
        }
        let len = rbuf.len();
        let mut rb = ReadBuf::uninit(rbuf.spare_capacity_mut());
        let mut stream = self.stream.borrow_mut();
        match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: `poll_read` initialized the first `n` bytes of the
                // spare capacity (what `filled` reports).
                unsafe { rbuf.set_len(len + n) };
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    async fn fill(&self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write(cx, buf)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Writes `head` then `data` with as few syscalls as the socket allows.
    async fn write_two(&self, head: &[u8], data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        let total = head.len() + data.len();
        while written < total {
            let n = std::future::poll_fn(|cx| {
                let (a, b) = if written < head.len() {
                    (&head[written..], data)
                } else {
                    (&data[written - head.len()..], &[][..])
                };
                let bufs = [io::IoSlice::new(a), io::IoSlice::new(b)];
                Pin::new(&mut *self.stream.borrow_mut()).poll_write_vectored(cx, &bufs)
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += n;
        }
        Ok(())
    }

    /// Starts the body of a new request.
    fn begin_body(&self, framing: BodyFraming, expect_continue: bool) -> u64 {
        let mut body = self.body.borrow_mut();
        body.decoder = BodyDecoder::new(framing);
        body.continue_owed = (expect_continue && !body.decoder.is_done()).then_some(0);
        body.generation
    }

    /// Ends the exchange's body: true when it was read to its end.
    fn end_body(&self) -> bool {
        let mut body = self.body.borrow_mut();
        body.generation += 1;
        body.continue_owed = None;
        std::mem::replace(&mut body.decoder, BodyDecoder::Done).is_done()
    }

    /// The next frame of the body of generation `generation`.
    fn poll_body(
        &self,
        cx: &mut Context<'_>,
        generation: u64,
    ) -> Poll<Option<Result<Bytes, RequestBodyError>>> {
        loop {
            let mut body = self.body.borrow_mut();
            if body.generation != generation {
                return Poll::Ready(Some(Err(RequestBodyError::Stale)));
            }
            match body.decoder.decode(&mut self.rbuf.borrow_mut()) {
                Ok(Decoded::Data(d)) => {
                    // The client sent its body without waiting: no 100 now.
                    body.continue_owed = None;
                    return Poll::Ready(Some(Ok(d)));
                }
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    body.decoder = BodyDecoder::Done;
                    body.generation += 1;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            if let Some(sent) = body.continue_owed {
                match self.poll_write(cx, &h1::CONTINUE[sent..]) {
                    Poll::Ready(Ok(n)) if sent + n >= h1::CONTINUE.len() => {
                        body.continue_owed = None;
                    }
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Some(Err(
                            io::Error::from(io::ErrorKind::WriteZero).into()
                        )))
                    }
                    Poll::Ready(Ok(n)) => body.continue_owed = Some(sent + n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Pending => return Poll::Pending,
                }
                continue;
            }
            drop(body);
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let mut body = self.body.borrow_mut();
                    body.decoder = BodyDecoder::Done;
                    body.generation += 1;
                    return Poll::Ready(Some(Err(RequestBodyError::Truncated)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    fn body_is_done(&self, generation: u64) -> bool {
        let body = self.body.borrow();
        body.generation != generation || body.decoder.is_done()
    }

    fn body_remaining(&self, generation: u64) -> Option<u64> {
        let body = self.body.borrow();
        if body.generation != generation {
            return Some(0);
        }
        body.decoder.remaining()
    }
}

/// The body of an HTTP/1 request: read from the client connection's buffer
/// as the proxy forwards it.
pub struct ClientBody {
    io: Rc<ClientIo>,
    generation: u64,
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        self.io
            .poll_body(cx, self.generation)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.io.body_is_done(self.generation)
    }

    fn size_hint(&self) -> SizeHint {
        match self.io.body_remaining(self.generation) {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The per-connection inputs of [`serve`]. Shutdown reaches the connection
/// through the worker's sweep (`Sweep::stop`): an idle connection's watch
/// expires, a busy one is not kept alive after its exchange.
pub struct Conn {
    pub worker: Rc<Worker>,
    pub info: Rc<ConnInfo>,
    pub watch: Rc<Watch>,
    pub limits: HeadLimits,
}

/// How an exchange left the connection.
enum After {
    KeepAlive,
    /// Close after a lingering read (see [`linger`]).
    Close,
    /// Close at once, without an answer (the firewall's `drop`).
    Drop,
}

/// Serves HTTP/1.1 requests on `stream` until the client or the proxy ends
/// the connection, or hands it back for HTTP/2.
pub async fn serve(stream: TcpStream, conn: Conn) -> Handoff {
    let io = Rc::new(ClientIo::new(stream));
    let mut wbuf = Vec::with_capacity(1024);
    let mut spans = Vec::new();
    match detect_h2(&io, &conn).await {
        Some(true) => return handoff(io, None),
        Some(false) => {}
        None => return Handoff::Done,
    }
    let mut first = true;
    loop {
        let head = match next_head(&io, &conn, &mut spans).await {
            Next::Head(head) => head,
            Next::Refused(refusal) => {
                let resp = proxy::refused(&conn.worker, &conn.info, refusal);
                let version = Version::HTTP_11;
                if write_response(&io, &mut wbuf, &Method::GET, version, resp, false)
                    .await
                    .is_ok()
                {
                    linger(&io).await;
                }
                return Handoff::Done;
            }
            Next::Closed => return Handoff::Done,
        };
        if std::mem::take(&mut first) {
            if let Some(frames) = crate::h2c::upgrade_frames(&head.parts, head.body) {
                return handoff(io, Some(frames));
            }
        }
        match exchange(&io, &mut wbuf, &conn, head).await {
            Ok(After::KeepAlive) => conn.watch.waiting(),
            Ok(After::Close) => {
                linger(&io).await;
                return Handoff::Done;
            }
            Ok(After::Drop) => return Handoff::Done,
            Err(err) => {
                tracing::debug!(%err, peer = %conn.info.client, "client connection ended");
                return Handoff::Done;
            }
        }
    }
}

/// Whether the connection opens with the HTTP/2 preface (`None`: it closed,
/// or stayed silent past the head deadline, first).
async fn detect_h2(io: &ClientIo, conn: &Conn) -> Option<bool> {
    loop {
        {
            let rbuf = io.rbuf.borrow();
            let n = rbuf.len().min(H2_PREFACE.len());
            if n > 0 && rbuf[..n] != H2_PREFACE[..n] {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
        }
        let read = tokio::select! {
            biased;
            r = io.fill() => r,
            () = conn.watch.expired() => return None,
        };
        match read {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Takes the socket back out of the connection for hyper's HTTP/2 server.
fn handoff(io: Rc<ClientIo>, frames: Option<Vec<u8>>) -> Handoff {
    let Ok(io) = Rc::try_unwrap(io) else {
        // Only this function holds it before the first exchange.
        return Handoff::Done;
    };
    let prefix = io.rbuf.into_inner().freeze();
    let socket = Prefixed::new(prefix, io.stream.into_inner());
    match frames {
        Some(frames) => Handoff::H2cUpgrade(socket, frames),
        None => Handoff::Http2(socket),
    }
}

// Not boxed, like `Parsed`: matched at once, once per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Refused(Refusal),
    /// EOF, a read error, the head deadline, or shutdown while idle.
    Closed,
}

/// Reads until a complete head is in the buffer (`spans`: the parser's
/// scratch space).
async fn next_head(io: &ClientIo, conn: &Conn, spans: &mut Vec<h1::FieldSpan>) -> Next {
    loop {
        if !io.rbuf.borrow().is_empty() {
            match h1::parse_request_head(&mut io.rbuf.borrow_mut(), conn.limits, spans) {
                Parsed::Complete(head) => {
                    conn.watch.not_waiting();
                    return Next::Head(head);
                }
                Parsed::Refused(r) => return Next::Refused(r),
                Parsed::Partial => {}
            }
        }
        if conn.worker.sweep.stopping() && io.rbuf.borrow().is_empty() {
            return Next::Closed;
        }
        let read = tokio::select! {
            biased;
            r = io.fill() => r,
            () = conn.watch.expired() => {
                tracing::debug!("no complete request head within the header timeout, or shutdown; closing");
                return Next::Closed;
            }
        };
        match read {
            Ok(0) | Err(_) => return Next::Closed,
            Ok(_) => {}
        }
    }
}

/// One request and its response.
async fn exchange(
    io: &Rc<ClientIo>,
    wbuf: &mut Vec<u8>,
    conn: &Conn,
    head: RequestHead,
) -> io::Result<After> {
    let generation = io.begin_body(head.body, head.expect_continue);
    let method = head.parts.method.clone();
    let version = head.parts.version;
    let body = ReqBody::H1(ClientBody {
        io: io.clone(),
        generation,
    });
    let req = Request::from_parts(head.parts, body);
    let Ok(resp) = proxy::handle(conn.worker.clone(), conn.info.clone(), req).await else {
        // The firewall drops the connection without an answer.
        io.end_body();
        return Ok(After::Drop);
    };
    let keep_alive = head.keep_alive && !conn.worker.sweep.stopping();
    let after = write_response(io, wbuf, &method, version, resp, keep_alive).await?;
    let body_read = io.end_body();
    Ok(match after {
        After::KeepAlive if body_read => After::KeepAlive,
        _ => After::Close,
    })
}

/// Writes `resp`; a `101` turns the connection into a tunnel, which runs
/// here until either side closes.
async fn write_response(
    io: &Rc<ClientIo>,
    wbuf: &mut Vec<u8>,
    method: &Method,
    version: Version,
    resp: Response<ProxyBody>,
    keep_alive: bool,
) -> io::Result<After> {
    let (parts, mut body) = resp.into_parts();
    let framing = RespFraming::choose(method, version, parts.status, body.size_hint().exact());
    let close_asked = parts
        .headers
        .get(http::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let keep_alive = keep_alive && !close_asked && framing != RespFraming::Close;
    let persistence = match (parts.status, keep_alive, version) {
        (StatusCode::SWITCHING_PROTOCOLS, _, _) => Persistence::Default,
        (_, false, _) => Persistence::Close,
        (_, true, Version::HTTP_10) => Persistence::KeepAlive,
        (_, true, _) => Persistence::Default,
    };
    wbuf.clear();
    DATE.with(|d| {
        h1::encode_response_head(
            wbuf,
            parts.status,
            body.raw_fields(),
            &parts.headers,
            framing,
            persistence,
            &d.borrow()[..],
        )
    });
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        io.write_all(wbuf).await?;
        if let Some(upstream) = body.take_tunnel() {
            tunnel(io.clone(), upstream).await;
        }
        return Ok(After::Close);
    }
    if framing.has_body() {
        write_body(io, wbuf, &mut body, framing).await?;
    } else {
        io.write_all(wbuf).await?;
    }
    Ok(if keep_alive {
        After::KeepAlive
    } else {
        After::Close
    })
}

/// Streams the body after the head in `wbuf`: whatever is ready joins the
/// head's write; before waiting for more, what is buffered goes out.
async fn write_body(
    io: &ClientIo,
    wbuf: &mut Vec<u8>,
    body: &mut ProxyBody,
    framing: RespFraming,
) -> io::Result<()> {
    let chunked = framing == RespFraming::Chunked;
    loop {
        let ready = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx)));
        let frame = match ready.await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !wbuf.is_empty() {
                    io.write_all(wbuf).await?;
                    wbuf.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        match frame {
            None => break,
            Some(Err(err)) => {
                // Mid-body there is no way to tell the client but the close.
                return Err(io::Error::other(err));
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    framing::encode_chunk_head(wbuf, data.len());
                }
                if data.len() <= COPY_BODY {
                    wbuf.extend_from_slice(&data);
                } else {
                    io.write_two(wbuf, &data).await?;
                    wbuf.clear();
                }
                if chunked {
                    wbuf.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if chunked {
        wbuf.extend_from_slice(framing::LAST_CHUNK);
    }
    if !wbuf.is_empty() {
        io.write_all(wbuf).await?;
        wbuf.clear();
    }
    Ok(())
}

/// After the last response: no more writes, and what the client still sends
/// is read and dropped for a while, so closing does not reset the
/// connection before the client has read the answer.
async fn linger(io: &ClientIo) {
    let shutdown =
        std::future::poll_fn(|cx| Pin::new(&mut *io.stream.borrow_mut()).poll_shutdown(cx));
    if shutdown.await.is_err() {
        return;
    }
    let drain = async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            io.rbuf.borrow_mut().clear();
            match io.fill().await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Copies bytes both ways between the client (starting with what it sent
/// after its upgrade request) and the upstream socket (starting with what it
/// sent after its 101).
async fn tunnel(io: Rc<ClientIo>, mut upstream: Prefixed) {
    let mut client = ClientTunnel(io);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%err, "tunnel closed");
    }
}

/// The client side of a tunnel.
struct ClientTunnel(Rc<ClientIo>);

impl AsyncRead for ClientTunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let io = &self.0;
        {
            let mut rbuf = io.rbuf.borrow_mut();
            if !rbuf.is_empty() {
                let n = rbuf.len().min(buf.remaining());
                buf.put_slice(&rbuf.split_to(n));
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut *io.stream.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientTunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.stream.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.stream.borrow_mut()).poll_shutdown(cx)
    }
}

thread_local! {
    /// The `Date` value of this worker's responses, refreshed by its
    /// housekeeping tick ([`refresh_date`]): HTTP dates have a one-second
    /// resolution, so no response formats one.
    static DATE: RefCell<[u8; 29]> = RefCell::new(http_date(std::time::SystemTime::now()));
    static DATE_SECS: Cell<u64> = const { Cell::new(0) };
}

/// Updates this thread's `Date` value when the second changed.
pub fn refresh_date() {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if DATE_SECS.with(|s| s.replace(secs)) != secs {
        DATE.with(|d| *d.borrow_mut() = http_date(now));
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(at: std::time::SystemTime) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let t = time::OffsetDateTime::from(at);
    let mut out = *b"Mon, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[t.weekday().number_days_from_monday() as usize]);
    two_digits(&mut out[5..7], u32::from(t.day()));
    out[8..11].copy_from_slice(MONTHS[usize::from(u8::from(t.month())) - 1]);
    let year = t.year().clamp(0, 9999) as u32;
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], u32::from(t.hour()));
    two_digits(&mut out[20..22], u32::from(t.minute()));
    two_digits(&mut out[23..25], u32::from(t.second()));
    out
}

fn two_digits(out: &mut [u8], n: u32) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&http_date(at), b"Sun, 06 Nov 1994 08:49:37 GMT");
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(&http_date(at), b"Thu, 31 Dec 2026 23:59:59 GMT");
    }
}
