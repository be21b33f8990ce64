//! HTTP/1 request framing, checked on the raw bytes before hyper sees them.
//!
//! hyper resolves some ambiguous heads instead of refusing them (given both
//! `Content-Length` and `Transfer-Encoding` it drops the length) and answers
//! any over-long head with 431. [`Guard`] sits between the client socket and
//! hyper's HTTP/1 server and follows the byte stream head by head and body by
//! body, with the parser hyper uses (httparse) and hyper's chunked grammar, so
//! both agree on where every message starts. When a head is unacceptable the
//! guard hands hyper a stand-in request in its place and nothing after it;
//! the proxy answers the stand-in with the verdict's JSON error and closes.
//!
//! Bytes are inspected in place in hyper's read buffer; only a head split
//! across reads is held back and copied. The first head of a connection is
//! read before hyper starts ([`Guard::start`]) to tell HTTP/2 prior
//! knowledge and the HTTP/1.1 `Upgrade: h2c` request from plain HTTP/1.
//!
//! After a request that may switch protocols (`Upgrade`, `CONNECT`) the guard
//! stops inspecting: what follows may be tunnel bytes. hyper still applies its
//! own framing rules to any later request on that connection.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::sweep::HeadWait;

/// Longest request line accepted (method, target, version): longer is 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Heads inspected per request; hyper's own limit is `Limits::max_headers`.
const HEADER_SLOTS: usize = 128;

/// What replaces a refused head: a request hyper parses cleanly, without a
/// body, that closes the connection after its answer.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";

/// Give up on a refused connection (close it) after draining this much.
const DRAIN_LIMIT: usize = 1 << 20;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Conflicting or invalid framing: CL with TE, duplicate or invalid CL,
    /// TE not ending in chunked, TE on HTTP/1.0, an unparsable head → 400.
    Framing = 1,
    /// The request line is longer than [`MAX_REQUEST_LINE`] → 414.
    UriTooLong = 2,
    /// The head is larger than the configured limit or has too many
    /// header fields → 431.
    HeadTooLarge = 3,
}

/// What the guard tells the service of its connection: which request (by
/// position on the connection) is a stand-in, and why. Shared with the
/// service; atomics only because upgraded connections must be `Send`.
#[derive(Default, Debug)]
pub struct Verdicts {
    /// `(index + 1) << 2 | verdict`, 0 when nothing was refused.
    refused: AtomicU64,
}

impl Verdicts {
    /// The verdict for the request at `index` (0-based), if it is a stand-in.
    pub fn for_request(&self, index: u64) -> Option<Verdict> {
        let v = self.refused.load(Ordering::Relaxed);
        if v == 0 || (v >> 2) != index + 1 {
            return None;
        }
        Some(match v & 3 {
            1 => Verdict::Framing,
            2 => Verdict::UriTooLong,
            _ => Verdict::HeadTooLarge,
        })
    }

    fn refuse(&self, index: u64, verdict: Verdict) {
        self.refused
            .store(((index + 1) << 2) | verdict as u64, Ordering::Relaxed);
    }
}

/// How a connection starts.
pub enum Start {
    Http1,
    /// The client opened with the HTTP/2 connection preface.
    Http2PriorKnowledge,
    /// The first request asked to upgrade to h2c; it was consumed and comes
    /// back as the HTTP/2 frames for stream 1.
    H2cUpgrade(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At (or inside, when `held` is not empty) a request head.
    Head,
    /// Inside a body with this many bytes left.
    Fixed(u64),
    Chunked(Chunked),
    /// Not inspecting any more.
    Passive,
    /// A stand-in was handed over; everything else is discarded.
    Refused,
}

/// Where the next request head starts, for bytes the guard has seen.
enum Scan {
    /// Everything may go to hyper.
    All,
    /// Bytes from here on are an incomplete head: hold them back.
    HoldFrom(usize),
    /// A refused head starts here.
    RefuseAt(usize, Verdict),
}

/// The client socket, as hyper's HTTP/1 server reads it.
pub struct Guard<S> {
    inner: S,
    state: State,
    /// An incomplete head, not yet given to hyper.
    held: Vec<u8>,
    /// Bytes ready for hyper (a completed held head, the stand-in).
    ready: Vec<u8>,
    ready_pos: usize,
    /// Heads given to hyper so far.
    heads: u64,
    drained: usize,
    max_head: usize,
    max_headers: usize,
    verdicts: Arc<Verdicts>,
    /// Where the head deadline learns whether a head is awaited (the state
    /// is `Head`) and since when.
    wait: Arc<HeadWait>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guard<S> {
    pub fn new(
        inner: S,
        max_head: usize,
        max_headers: usize,
        verdicts: Arc<Verdicts>,
        wait: Arc<HeadWait>,
    ) -> Self {
        Self {
            inner,
            state: State::Head,
            held: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            heads: 0,
            drained: 0,
            max_head,
            max_headers: max_headers.clamp(1, HEADER_SLOTS),
            verdicts,
            wait,
        }
    }

    /// Moves to `next`, telling the head deadline whether a head is now
    /// awaited.
    fn enter(&mut self, next: State) {
        if next == State::Head {
            self.wait.waiting();
        } else {
            self.wait.not_waiting();
        }
        self.state = next;
    }

    /// Reads until the protocol is known: the HTTP/2 preface, an h2c upgrade
    /// request (complete head), or anything else (HTTP/1). Bytes read stay
    /// queued for whichever server runs next. The caller bounds the time.
    pub async fn start(&mut self) -> std::io::Result<Start> {
        loop {
            if !self.held.is_empty() {
                let n = self.held.len().min(H2_PREFACE.len());
                if self.held[..n] == H2_PREFACE[..n] {
                    if n == H2_PREFACE.len() {
                        self.enter(State::Passive);
                        return Ok(Start::Http2PriorKnowledge);
                    }
                } else {
                    match self.first_head() {
                        FirstHead::Partial => {}
                        FirstHead::Upgrade(len, frames) => {
                            self.held.drain(..len);
                            self.enter(State::Passive);
                            return Ok(Start::H2cUpgrade(frames));
                        }
                        FirstHead::Other => {
                            let data = std::mem::take(&mut self.held);
                            self.absorb(data);
                            return Ok(Start::Http1);
                        }
                    }
                }
            }
            if self.inner.read_buf(&mut self.held).await? == 0 {
                let data = std::mem::take(&mut self.held);
                self.ready.extend_from_slice(&data);
                self.enter(State::Passive);
                return Ok(Start::Http1);
            }
        }
    }

    fn first_head(&self) -> FirstHead {
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
        let mut req = httparse::Request::new(&mut []);
        match httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            &self.held,
            &mut slots[..self.max_headers],
        ) {
            Ok(httparse::Status::Partial) if self.held.len() <= self.max_head => FirstHead::Partial,
            Ok(httparse::Status::Complete(len)) if len <= self.max_head => {
                match crate::h2c::upgrade_frames(&req) {
                    Some(frames) => FirstHead::Upgrade(len, frames),
                    None => FirstHead::Other,
                }
            }
            _ => FirstHead::Other,
        }
    }

    /// Follows `data` (the next bytes of the stream) from the current state.
    fn scan(&mut self, data: &[u8]) -> Scan {
        let mut i = 0;
        while i < data.len() {
            match &mut self.state {
                State::Passive | State::Refused => return Scan::All,
                State::Fixed(left) => {
                    let take = (*left).min((data.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.enter(State::Head);
                    }
                }
                State::Chunked(c) => match c.feed(&data[i..]) {
                    Ok((used, done)) => {
                        i += used;
                        if done {
                            self.enter(State::Head);
                        }
                    }
                    // hyper refuses the same bytes and closes.
                    Err(()) => self.enter(State::Passive),
                },
                State::Head => match self.head(&data[i..]) {
                    HeadScan::Partial => return Scan::HoldFrom(i),
                    HeadScan::Refuse(v) => return Scan::RefuseAt(i, v),
                    HeadScan::Complete(len, next) => {
                        i += len;
                        self.heads += 1;
                        self.enter(next);
                    }
                },
            }
        }
        Scan::All
    }

    /// Judges the head at the start of `data`.
    fn head(&self, data: &[u8]) -> HeadScan {
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            data,
            &mut slots[..self.max_headers],
        );
        let line_end = data.iter().position(|b| *b == b'\n');
        if line_end.map_or(data.len(), |e| e) > MAX_REQUEST_LINE + leading_blank(data) {
            return HeadScan::Refuse(Verdict::UriTooLong);
        }
        match parsed {
            Ok(httparse::Status::Partial) if data.len() > self.max_head => {
                HeadScan::Refuse(Verdict::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => HeadScan::Partial,
            Ok(httparse::Status::Complete(len)) if len > self.max_head => {
                HeadScan::Refuse(Verdict::HeadTooLarge)
            }
            Ok(httparse::Status::Complete(len)) => match framing(&req) {
                Ok(next) => HeadScan::Complete(len, next),
                Err(v) => HeadScan::Refuse(v),
            },
            Err(httparse::Error::TooManyHeaders) => HeadScan::Refuse(Verdict::HeadTooLarge),
            Err(_) => HeadScan::Refuse(Verdict::Framing),
        }
    }

    /// Queues the stand-in for a refused head.
    fn refuse(&mut self, verdict: Verdict) {
        self.verdicts.refuse(self.heads, verdict);
        self.heads += 1;
        self.enter(State::Refused);
        self.held = Vec::new();
        self.ready.extend_from_slice(STAND_IN);
    }

    /// Copies queued bytes into `buf`; true when something was copied.
    fn give_ready(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.ready_pos >= self.ready.len() {
            return false;
        }
        let n = (self.ready.len() - self.ready_pos).min(buf.remaining());
        buf.put_slice(&self.ready[self.ready_pos..self.ready_pos + n]);
        self.ready_pos += n;
        if self.ready_pos == self.ready.len() {
            self.ready.clear();
            self.ready_pos = 0;
        }
        n > 0
    }

    /// Reads and discards what the client still sends after a refusal, so
    /// closing does not reset the connection before the answer is read.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut scratch = [0u8; 4096];
        while self.drained < DRAIN_LIMIT {
            let mut rb = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.drained += rb.filled().len();
        }
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "client kept sending after a refused request",
        )))
    }

    /// The slow path: a head is held back; read more of it.
    fn poll_held(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut chunk = [0u8; 4096];
        let mut rb = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        if rb.filled().is_empty() {
            // EOF inside a head: let hyper see what there was.
            self.enter(State::Passive);
            self.ready.append(&mut self.held);
            self.give_ready(buf);
            return Poll::Ready(Ok(()));
        }
        self.held.extend_from_slice(rb.filled());
        let data = std::mem::take(&mut self.held);
        self.absorb(data);
        Poll::Ready(Ok(()))
    }

    /// Judges bytes that were held back (plus what arrived since): what is
    /// settled is queued for hyper, an incomplete head is held again.
    fn absorb(&mut self, data: Vec<u8>) {
        match self.scan(&data) {
            Scan::All => self.ready.extend_from_slice(&data),
            Scan::HoldFrom(k) => {
                self.ready.extend_from_slice(&data[..k]);
                self.held = data[k..].to_vec();
            }
            Scan::RefuseAt(k, v) => {
                self.ready.extend_from_slice(&data[..k]);
                self.refuse(v);
            }
        }
    }
}

enum FirstHead {
    Partial,
    Upgrade(usize, Vec<u8>),
    Other,
}

enum HeadScan {
    Partial,
    Complete(usize, State),
    Refuse(Verdict),
}

/// Blank lines before a request line, which httparse skips.
fn leading_blank(data: &[u8]) -> usize {
    data.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// The framing of a complete, parsed head: what follows it, or why it is
/// refused (RFC 9112 §6.1–6.3, stricter where the RFC allows a choice).
fn framing(req: &httparse::Request<'_, '_>) -> Result<State, Verdict> {
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    let mut te_headers = 0;
    let mut chunked_last = false;
    let mut chunked_count = 0;
    let mut upgrade = req.method == Some("CONNECT");
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = Some(parse_length(h.value).ok_or(Verdict::Framing)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_headers += 1;
            for coding in h.value.split(|b| *b == b',') {
                let coding = trim(coding);
                chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                chunked_count += usize::from(chunked_last);
            }
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if lengths > 1 || (lengths == 1 && te_headers > 0) {
        return Err(Verdict::Framing);
    }
    if te_headers > 0 && (req.version != Some(1) || !chunked_last || chunked_count != 1) {
        return Err(Verdict::Framing);
    }
    Ok(if upgrade {
        State::Passive
    } else if te_headers > 0 {
        State::Chunked(Chunked::default())
    } else {
        match length {
            Some(n) if n > 0 => State::Fixed(n),
            _ => State::Head,
        }
    })
}

/// `1*DIGIT`, nothing else (no sign, no list, no spaces inside).
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// hyper's chunked body grammar (proto/h1/decode.rs), byte for byte, so the
/// guard and hyper agree where a chunked body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Chunked {
    step: Step,
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Step {
    #[default]
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Body,
    BodyCr,
    BodyLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

impl Chunked {
    /// Consumes bytes up to the end of the body; returns how many were used
    /// and whether the body ended. `Err` on bytes hyper refuses too.
    fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ()> {
        let mut i = 0;
        while i < data.len() {
            if self.step == Step::Body {
                let take = self.size.min((data.len() - i) as u64);
                self.size -= take;
                i += take as usize;
                if self.size == 0 {
                    self.step = Step::BodyCr;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            self.step = match (self.step, b) {
                (Step::Start | Step::Size, b) if b.is_ascii_hexdigit() => {
                    let digit = (b as char).to_digit(16).ok_or(())?;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(digit)))
                        .ok_or(())?;
                    Step::Size
                }
                (Step::Size | Step::SizeLws, b' ' | b'\t') => Step::SizeLws,
                (Step::Size | Step::SizeLws, b';') => Step::Extension,
                (Step::Size | Step::SizeLws | Step::Extension, b'\r') => Step::SizeLf,
                (Step::Extension, b'\n') => return Err(()),
                (Step::Extension, _) => Step::Extension,
                (Step::SizeLf, b'\n') if self.size == 0 => Step::EndCr,
                (Step::SizeLf, b'\n') => Step::Body,
                (Step::BodyCr, b'\r') => Step::BodyLf,
                (Step::BodyLf, b'\n') => Step::Start,
                (Step::Trailer, b'\r') => Step::TrailerLf,
                (Step::Trailer, _) => Step::Trailer,
                (Step::TrailerLf, b'\n') => Step::EndCr,
                (Step::EndCr, b'\r') => Step::EndLf,
                (Step::EndCr, _) => Step::Trailer,
                (Step::EndLf, b'\n') => {
                    *self = Chunked::default();
                    return Ok((i, true));
                }
                _ => return Err(()),
            };
        }
        Ok((i, false))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.give_ready(buf) {
                return Poll::Ready(Ok(()));
            }
            match this.state {
                State::Refused => {
                    // Nothing more for hyper: it answers the stand-in and
                    // closes. Keep reading so the close is clean; the
                    // client's EOF is passed on.
                    return this.poll_drain(cx);
                }
                State::Passive if this.held.is_empty() => {
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                State::Passive => {
                    this.ready.append(&mut this.held);
                    continue;
                }
                _ if !this.held.is_empty() => {
                    ready!(this.poll_held(cx, buf))?;
                    if this.state == State::Passive && this.ready.is_empty() {
                        // EOF inside a head, already handed over.
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                _ => {}
            }
            // The fast path: read straight into hyper's buffer and look.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let end = buf.filled().len();
            if end == before {
                return Poll::Ready(Ok(()));
            }
            let scan = this.scan(&buf.filled()[before..end]);
            match scan {
                Scan::All => return Poll::Ready(Ok(())),
                Scan::HoldFrom(k) => {
                    this.held.extend_from_slice(&buf.filled()[before + k..end]);
                    buf.set_filled(before + k);
                    if k > 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Scan::RefuseAt(k, v) => {
                    buf.set_filled(before + k);
                    this.refuse(v);
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guard<S> {
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
        if self.state == State::Refused {
            // Best effort: whatever is already readable goes away now.
            let _ = self.poll_drain(cx);
            self.drained = DRAIN_LIMIT;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard<tokio::io::DuplexStream> {
        let (a, _b) = tokio::io::duplex(64);
        Guard::new(a, 16 * 1024, 100, Arc::default(), Arc::default())
    }

    fn scan_all(data: &[u8]) -> (Scan, u64) {
        let mut g = guard();
        let s = g.scan(data);
        (s, g.heads)
    }

    #[test]
    fn pipelined_requests_with_bodies_are_followed() {
        let data = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nGET /\r\n0\r\nT: v\r\n\r\n\
GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
        let (s, heads) = scan_all(data);
        assert!(matches!(s, Scan::All));
        assert_eq!(heads, 3);
    }

    #[test]
    fn a_split_head_is_held_from_its_start() {
        let data = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHo";
        let (s, heads) = scan_all(data);
        assert!(matches!(s, Scan::HoldFrom(28)), "{}", data.len());
        assert_eq!(heads, 1);
    }

    #[test]
    fn body_bytes_that_look_like_requests_are_not_judged() {
        let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut data = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        data.extend_from_slice(body);
        let (s, heads) = scan_all(&data);
        assert!(matches!(s, Scan::All));
        assert_eq!(heads, 1);
    }

    #[test]
    fn ambiguous_framing_is_refused_at_its_head() {
        let first = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut data = first.to_vec();
            data.extend_from_slice(bad.as_bytes());
            let (s, heads) = scan_all(&data);
            assert!(
                matches!(s, Scan::RefuseAt(k, Verdict::Framing) if k == first.len()),
                "{bad}"
            );
            assert_eq!(heads, 1);
        }
    }

    #[test]
    fn long_request_line_is_414_and_long_head_431() {
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        let (s, _) = scan_all(line.as_bytes());
        assert!(matches!(s, Scan::RefuseAt(0, Verdict::UriTooLong)));
        let unfinished = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
        let (s, _) = scan_all(unfinished.as_bytes());
        assert!(matches!(s, Scan::RefuseAt(0, Verdict::UriTooLong)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(20 * 1024));
        let (s, _) = scan_all(big.as_bytes());
        assert!(matches!(s, Scan::RefuseAt(0, Verdict::HeadTooLarge)));
    }

    #[test]
    fn an_upgrade_request_ends_inspection() {
        let data = b"GET / HTTP/1.1\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n\
POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (s, _) = scan_all(data);
        assert!(matches!(s, Scan::All));
    }

    #[test]
    fn verdicts_name_the_request_they_replace() {
        let v = Verdicts::default();
        assert_eq!(v.for_request(0), None);
        v.refuse(2, Verdict::UriTooLong);
        assert_eq!(v.for_request(1), None);
        assert_eq!(v.for_request(2), Some(Verdict::UriTooLong));
    }

    #[test]
    fn chunked_grammar_matches_hyper() {
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"3\r\nabc\r\n0\r\n\r\nNEXT"), Ok((13, true)));
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"3 ;ext\r\nab"), Ok((10, false)));
        assert_eq!(c.feed(b"c\r\n0\r\n\r\n"), Ok((8, true)));
        assert!(Chunked::default().feed(b"x\r\n").is_err());
        assert!(Chunked::default().feed(b"3;a\nb\r\n").is_err());
        assert!(Chunked::default().feed(b"3\r\nabcX").is_err());
    }
}
