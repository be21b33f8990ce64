//! HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2; RFC 9113 keeps it optional).
//!
//! hyper's HTTP/2 server cannot adopt a request received over HTTP/1.1 as
//! stream 1, so the upgrade is done on the wire: our HTTP/1 server reads the
//! upgrade request (`downstream`), the listener answers
//! `101 Switching Protocols`, and hyper's HTTP/2 server runs on a socket
//! ([`Inject`]) that inserts the request, HPACK-encoded as a HEADERS frame on
//! stream 1 with END_STREAM, right after the client's connection preface and
//! first SETTINGS frame. To hyper it is a client that opened stream 1; the
//! client sees the answer on stream 1, as the RFC prescribes.
//!
//! Only bodiless requests are upgraded (a body would have to be read as
//! HTTP/1.1 first); others are answered over HTTP/1.1, which the RFC allows.
//! `HTTP2-Settings` must be present once and well-formed; the settings the
//! client repeats in its preface SETTINGS frame are the ones applied, since
//! stream 1 is only served after that frame.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use base64::Engine;
use http::{header, Method, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::framing::BodyFraming;

/// The answer that switches the connection.
pub const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE default, which hyper's server keeps.
const MAX_FRAME: usize = 16_384;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Fields that belong to the HTTP/1.1 connection, not to the request.
const CONNECTION_FIELDS: [&str; 8] = [
    "connection",
    "upgrade",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "host",
    "content-length",
];

/// The HTTP/2 frames carrying the request `head` (with a body framed as
/// `body`) as stream 1, when it is an h2c upgrade request this proxy
/// accepts; `None` to answer it over HTTP/1.1.
pub fn upgrade_frames(head: &http::request::Parts, body: BodyFraming) -> Option<Vec<u8>> {
    if head.version != Version::HTTP_11 || body != BodyFraming::Empty {
        return None;
    }
    let path = head.uri.path_and_query()?.as_str();
    if head.method == Method::CONNECT || !path.starts_with('/') || head.uri.authority().is_some() {
        return None;
    }
    let mut upgrade_h2c = false;
    let mut conn_upgrade = false;
    let mut conn_settings = false;
    let mut settings = 0;
    let mut named: Vec<&[u8]> = Vec::new();
    for (name, value) in &head.headers {
        let value = value.as_bytes();
        if name == header::UPGRADE {
            upgrade_h2c |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"h2c"));
        } else if name == header::CONNECTION {
            for t in tokens(value) {
                conn_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                conn_settings |= t.eq_ignore_ascii_case(b"http2-settings");
                named.push(t);
            }
        } else if name.as_str() == "http2-settings" {
            settings += 1;
            if !valid_settings(value) {
                return None;
            }
        } else if name == header::TRANSFER_ENCODING {
            return None;
        }
    }
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let host = hosts.next()?;
    if !(upgrade_h2c && conn_upgrade && conn_settings && settings == 1) || hosts.next().is_some() {
        return None;
    }
    let mut block = Vec::with_capacity(256);
    literal(&mut block, b":method", head.method.as_str().as_bytes());
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":path", path.as_bytes());
    literal(&mut block, b":authority", host.as_bytes());
    for (name, value) in &head.headers {
        let skip = CONNECTION_FIELDS.contains(&name.as_str())
            || named
                .iter()
                .any(|n| name.as_str().as_bytes().eq_ignore_ascii_case(n))
            || (name == header::TE && !value.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if !skip {
            literal(&mut block, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    Some(frames(&block))
}

/// Comma-separated tokens, trimmed.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// base64url of a SETTINGS payload: whole 6-byte entries.
fn valid_settings(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    let v = v.strip_suffix(b"==").or(v.strip_suffix(b"=")).unwrap_or(v);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .is_ok_and(|p| p.len() % 6 == 0)
}

/// An HPACK "literal header field without indexing — new name" (RFC 7541
/// §6.2.2), no Huffman: it leaves the decoder's dynamic table untouched.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    integer(out, name.len(), 7);
    out.extend_from_slice(name);
    integer(out, value.len(), 7);
    out.extend_from_slice(value);
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); flags bits clear.
fn integer(out: &mut Vec<u8>, mut v: usize, n: u32) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(v as u8);
        return;
    }
    out.push(max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// HEADERS (END_STREAM) then CONTINUATION frames on stream 1.
fn frames(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + FRAME_HEADER * 2);
    let chunks: Vec<&[u8]> = if block.is_empty() {
        vec![block]
    } else {
        block.chunks(MAX_FRAME).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let mut flags = if i == 0 { END_STREAM } else { 0 };
        if i == last {
            flags |= END_HEADERS;
        }
        let len = chunk.len() as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The upgraded socket as hyper's HTTP/2 server reads it: the client's
/// bytes, with the stream 1 frames inserted after its preface and first
/// frame (its SETTINGS).
pub struct Inject<S> {
    inner: S,
    /// The preface and first frame header, as far as seen.
    head: [u8; PREFACE_LEN + FRAME_HEADER],
    seen: usize,
    /// Bytes of the client's prologue still to pass before inserting.
    prologue_left: Option<usize>,
    frames: Vec<u8>,
    frames_pos: usize,
    /// Client bytes read past the insertion point, waiting for the frames.
    after: Vec<u8>,
    after_pos: usize,
}

impl<S> Inject<S> {
    pub fn new(inner: S, frames: Vec<u8>) -> Self {
        Self {
            inner,
            head: [0; PREFACE_LEN + FRAME_HEADER],
            seen: 0,
            prologue_left: None,
            frames,
            frames_pos: 0,
            after: Vec::new(),
            after_pos: 0,
        }
    }

    fn injected(&self) -> bool {
        self.frames_pos >= self.frames.len()
    }

    /// Notes prologue bytes in `data`; returns how many of them come before
    /// the insertion point.
    fn follow(&mut self, data: &[u8]) -> usize {
        let mut used = 0;
        while used < data.len() {
            if let Some(left) = self.prologue_left {
                let take = left.min(data.len() - used);
                used += take;
                self.prologue_left = Some(left - take);
                if left == take {
                    return used;
                }
                continue;
            }
            let take = (self.head.len() - self.seen).min(data.len() - used);
            self.head[self.seen..self.seen + take].copy_from_slice(&data[used..used + take]);
            self.seen += take;
            used += take;
            if self.seen == self.head.len() {
                let h = &self.head[PREFACE_LEN..];
                let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                self.prologue_left = Some(len);
                if len == 0 {
                    return used;
                }
            }
        }
        used
    }

    fn prologue_done(&self) -> bool {
        self.prologue_left == Some(0)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inject<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.injected() && this.after_pos >= this.after.len() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.prologue_done() {
            if !this.injected() {
                let n = (this.frames.len() - this.frames_pos).min(buf.remaining());
                buf.put_slice(&this.frames[this.frames_pos..this.frames_pos + n]);
                this.frames_pos += n;
            } else {
                let n = (this.after.len() - this.after_pos).min(buf.remaining());
                buf.put_slice(&this.after[this.after_pos..this.after_pos + n]);
                this.after_pos += n;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let end = buf.filled().len();
        let used = this.follow(&buf.filled()[before..end]);
        if this.prologue_done() {
            this.after
                .extend_from_slice(&buf.filled()[before + used..end]);
            buf.set_filled(before + used);
            let n = (this.frames.len() - this.frames_pos).min(buf.remaining());
            buf.put_slice(&this.frames[this.frames_pos..this.frames_pos + n]);
            this.frames_pos += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inject<S> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<Vec<u8>> {
        let limits = crate::downstream::h1::HeadLimits {
            max_bytes: 64 * 1024,
            max_headers: 100,
        };
        let mut buf = bytes::BytesMut::from(raw.as_bytes());
        match crate::downstream::h1::parse_request_head(&mut buf, limits, &mut Vec::new()) {
            crate::downstream::h1::Parsed::Complete(head) => upgrade_frames(&head.parts, head.body),
            other => panic!("{other:?}"),
        }
    }

    const OK: &str = "GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nX-Custom: v\r\n\r\n";

    #[test]
    fn upgrade_request_becomes_a_headers_frame_on_stream_1() {
        let f = parse(OK).unwrap();
        let len = u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize;
        assert_eq!(f.len(), FRAME_HEADER + len);
        assert_eq!(f[3], HEADERS);
        assert_eq!(f[4], END_STREAM | END_HEADERS);
        assert_eq!(&f[5..9], &1u32.to_be_bytes());
        let block = &f[9..];
        let text = String::from_utf8_lossy(block);
        for want in [":path", "/x?y=1", ":authority", "a.test", "x-custom"] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        for gone in ["http2-settings", "upgrade", "connection", "host\u{6}"] {
            assert!(
                !text.to_ascii_lowercase().contains(gone),
                "{gone} in {text}"
            );
        }
    }

    #[test]
    fn requests_that_cannot_upgrade_stay_on_http_1() {
        for bad in [
            OK.replace("HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n", ""),
            OK.replace("AAMAAABkAAQCAAAAAAIAAAAA", "AAMA!"),
            OK.replace("Connection: Upgrade, HTTP2-Settings", "Connection: Upgrade"),
            OK.replace("Upgrade: h2c", "Upgrade: websocket"),
            OK.replace("GET", "POST")
                .replace("X-Custom: v", "Content-Length: 3"),
            OK.replace("HTTP/1.1", "HTTP/1.0"),
            OK.replace("Host: a.test\r\n", ""),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn large_blocks_continue_in_continuation_frames() {
        let big = OK.replace("X-Custom: v", &format!("X-Big: {}", "b".repeat(20_000)));
        let f = parse(&big).unwrap();
        assert_eq!(f[3], HEADERS);
        assert_eq!(f[4], END_STREAM);
        let first = u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize;
        assert_eq!(first, MAX_FRAME);
        let second = &f[FRAME_HEADER + first..];
        assert_eq!(second[3], CONTINUATION);
        assert_eq!(second[4], END_HEADERS);
    }

    #[test]
    fn hpack_integers_use_continuation_bytes() {
        let mut out = Vec::new();
        integer(&mut out, 1337, 5);
        assert_eq!(out, [31, 154, 10]);
    }

    #[tokio::test]
    async fn frames_go_in_after_the_client_settings_frame() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = Inject::new(server, b"STREAM1".to_vec());
        let mut prologue = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        prologue.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        // The prologue and the next frame arrive together, split oddly.
        client.write_all(&prologue[..10]).await.unwrap();
        client.write_all(&prologue[10..]).await.unwrap();
        client.write_all(b"NEXT").await.unwrap();
        drop(client);
        let mut out = Vec::new();
        io.read_to_end(&mut out).await.unwrap();
        let mut want = prologue.clone();
        want.extend_from_slice(b"STREAM1NEXT");
        assert_eq!(out, want);
    }
}
