//! The HTTP/1.1 wire format of the upstream client: the request head
//! writer and the response head parser (the body decoders are shared with
//! the server side, in `framing`).
//!
//! Everything here is pure (bytes in, bytes out), so every refusal a
//! misbehaving upstream can trigger is unit-tested without sockets. The
//! parser is strict where leniency would let an upstream desync the pooled
//! connection: both framings at once, conflicting lengths, oversized heads
//! and bad chunk lines are errors, and an error always closes the
//! connection.

use std::io::Write;

use bytes::BytesMut;
use hook_engine::HeaderList;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use crate::fields::{FieldSpans, RawFields};
pub use crate::framing::{BodyFraming, ProtocolError};

/// The largest response head accepted; a longer one is refused (502).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most response header fields accepted.
pub const MAX_HEADERS: usize = 128;

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body and no length header (GET and friends without a body).
    None,
    Length(u64),
    Chunked,
}

/// The fields the proxy sets on every upstream request. The encoder writes
/// them after the request's own, whose fields of these names are dropped,
/// except that values of an incoming `X-Forwarded-For` stay in front of
/// ours. Written straight to the wire rather than inserted into the map: the
/// map is not read again once the request is on its way.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// `Host`, for a request without one (HTTP/2 sends `:authority`).
    pub host: Option<&'a HeaderValue>,
    /// This hop's `X-Forwarded-For` element: the client's address.
    pub client: &'a HeaderValue,
    /// `X-Forwarded-Host`.
    pub forwarded_host: &'a HeaderValue,
    /// `Forwarded` (RFC 7239).
    pub forwarded: &'a HeaderValue,
    /// The protocol of an upgrade the client asked for, which this hop asks
    /// for again (`Connection: upgrade`).
    pub upgrade: Option<&'a HeaderValue>,
    /// Fields a hook added, written after the head's (checked names and values;
    /// none of those this function writes or skips itself).
    pub added: Option<&'a HeaderList>,
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Fields of the request this hop writes itself (its framing and forwarding
/// fields): the client's are dropped or, for `X-Forwarded-For`, extended.
pub fn written_by_this_hop(name: &[u8]) -> bool {
    // A match on the bytes: dispatched on the length, and on the writer's path for
    // every field of every request.
    matches!(
        name,
        b"content-length"
            | b"transfer-encoding"
            | b"x-forwarded-for"
            | b"x-forwarded-proto"
            | b"x-forwarded-host"
            | b"forwarded"
    )
}

/// Serializes an origin-form request head into `out` (cleared first). The
/// caller has already removed hop-by-hop headers; any Content-Length or
/// Transfer-Encoding left in `headers` is replaced by `framing`, so the
/// head always matches the bytes that follow it; `fwd` adds this hop's
/// fields.
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: ReqFraming,
    fwd: &Forwarding<'_>,
) {
    out.clear();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_xff = false;
    for (name, value) in headers {
        if written_by_this_hop(name.as_str().as_bytes()) {
            prior_xff |= name.as_str() == X_FORWARDED_FOR;
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    for (name, value) in fwd.added.into_iter().flatten() {
        field(out, name, value);
    }
    if let Some(host) = fwd.host {
        field(out, b"host", host.as_bytes());
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if prior_xff {
        for prior in headers.get_all(X_FORWARDED_FOR) {
            out.extend_from_slice(prior.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.client.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    field(out, b"x-forwarded-host", fwd.forwarded_host.as_bytes());
    field(out, b"forwarded", fwd.forwarded.as_bytes());
    if let Some(upgrade) = fwd.upgrade {
        field(out, b"connection", b"upgrade");
        field(out, b"upgrade", upgrade.as_bytes());
    }
    match framing {
        ReqFraming::None => {}
        // Writing into a Vec cannot fail.
        ReqFraming::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head. Its fields stay raw (see `fields`): most
/// responses are only copied on to the client.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub fields: RawFields,
    pub framing: BodyFraming,
    /// The upstream may take another request on this connection afterwards.
    pub keep_alive: bool,
}

/// Parses the response head at the front of `buf`, removing it: `Ok(None)`
/// means more bytes are needed. Interim 1xx responses (other than 101) are
/// skipped, as the client never asked for them.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    loop {
        let Some(head) = take_head(buf, head_request)? else {
            return Ok(None);
        };
        if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        return Ok(Some(head));
    }
}

/// Parses one head at the front of `buf` and splits it off. httparse runs
/// on what is there: heads nearly always arrive whole, so it runs once per
/// head, and a partial one costs a re-parse only when it is split.
fn take_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    // Uninitialized slots: zeroing 128 of them per response showed up in
    // profiles.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Err(ProtocolError::HeadTooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(ProtocolError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::HeadTooLarge),
        Err(e) => return Err(ProtocolError::Malformed(e)),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ProtocolError::Malformed(httparse::Error::Status))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut spans = FieldSpans::new(buf, resp.headers.len());
    let mut framing = Framing::default();
    for h in resp.headers.iter() {
        framing.note(h.name, h.value)?;
        spans.push(h.name.as_bytes(), h.value);
    }
    let body = framing.body(status, head_request)?;
    let keep_alive = framing.keep_alive(version) && body != BodyFraming::UntilClose;
    let fields = spans.finish(buf.split_to(len).freeze());
    Ok(Some(ResponseHead {
        status,
        version,
        fields,
        framing: body,
        keep_alive,
    }))
}

/// What a response's framing fields say, gathered in the one pass over its
/// fields.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    te: bool,
    /// The last coding of the last `Transfer-Encoding` is `chunked`.
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

impl Framing {
    fn note(&mut self, name: &str, value: &[u8]) -> Result<(), ProtocolError> {
        if name.eq_ignore_ascii_case("content-length") {
            self.length(value)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.te = true;
            self.chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    /// A `Content-Length`; repeated identical values (also in one
    /// comma-separated field) are the same length, differing ones an error.
    fn length(&mut self, value: &[u8]) -> Result<(), ProtocolError> {
        for part in value.split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(ProtocolError::BadContentLength);
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if self.length.is_some_and(|f| f != n) {
                return Err(ProtocolError::BadContentLength);
            }
            self.length = Some(n);
        }
        Ok(())
    }

    /// RFC 9112 §6.3, strictly: a response with both framings, or with
    /// Content-Length values that disagree, is refused rather than guessed at.
    fn body(&self, status: StatusCode, head_request: bool) -> Result<BodyFraming, ProtocolError> {
        if self.te && self.length.is_some() {
            return Err(ProtocolError::LengthAndTransferEncoding);
        }
        if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(BodyFraming::Empty);
        }
        if self.te {
            return Ok(if self.chunked {
                BodyFraming::Chunked
            } else {
                BodyFraming::UntilClose
            });
        }
        Ok(match self.length {
            Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::UntilClose,
        })
    }

    /// HTTP/1.1 is persistent unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    fn keep_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep_alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn no_forwarding() -> (HeaderValue, HeaderValue, HeaderValue) {
        (
            HeaderValue::from_static("192.0.2.1"),
            HeaderValue::from_static("a.test"),
            HeaderValue::from_static("for=192.0.2.1;host=a.test;proto=http"),
        )
    }

    fn fwd<'a>(v: &'a (HeaderValue, HeaderValue, HeaderValue)) -> Forwarding<'a> {
        Forwarding {
            host: None,
            client: &v.0,
            forwarded_host: &v.1,
            forwarded: &v.2,
            upgrade: None,
            added: None,
        }
    }

    fn parse(raw: &[u8]) -> Result<Option<ResponseHead>, ProtocolError> {
        parse_response_head(&mut BytesMut::from(raw), false)
    }

    fn head(raw: &[u8]) -> ResponseHead {
        match parse(raw) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_head_carries_method_target_headers_and_framing() {
        let v = no_forwarding();
        let mut out = b"stale".to_vec();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.test"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        let uri: Uri = "/p/q?x=1".parse().unwrap();
        encode_request_head(
            &mut out,
            &Method::POST,
            &uri,
            &headers,
            ReqFraming::Length(5),
            &fwd(&v),
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /p/q?x=1 HTTP/1.1\r\nhost: a.test\r\nx-forwarded-for: 192.0.2.1\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: a.test\r\n\
             forwarded: for=192.0.2.1;host=a.test;proto=http\r\ncontent-length: 5\r\n\r\n"
        );
        encode_request_head(
            &mut out,
            &Method::PUT,
            &uri,
            &headers,
            ReqFraming::Chunked,
            &fwd(&v),
        );
        assert!(out.ends_with(b"proto=http\r\ntransfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn forwarding_fields_replace_the_clients_but_keep_its_forwarded_for_chain() {
        let v = no_forwarding();
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("spoofed"));
        headers.insert("forwarded", HeaderValue::from_static("for=evil"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        let host = HeaderValue::from_static("b.test");
        let upgrade = HeaderValue::from_static("websocket");
        let added: HeaderList = [("x-hook", "blue"), ("x-hook", "2")].into_iter().collect();
        let fwd = Forwarding {
            host: Some(&host),
            upgrade: Some(&upgrade),
            added: Some(&added),
            ..fwd(&v)
        };
        let mut out = Vec::new();
        encode_request_head(
            &mut out,
            &Method::GET,
            &Uri::from_static("/"),
            &headers,
            ReqFraming::None,
            &fwd,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET / HTTP/1.1\r\naccept: */*\r\nx-hook: blue\r\nx-hook: 2\r\nhost: b.test\r\n\
             x-forwarded-for: 203.0.113.9, 198.51.100.7, 192.0.2.1\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: a.test\r\n\
             forwarded: for=192.0.2.1;host=a.test;proto=http\r\n\
             connection: upgrade\r\nupgrade: websocket\r\n\r\n"
        );
    }

    #[test]
    fn response_head_is_parsed_and_removed_from_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhelloNEXT"[..],
        );
        let h = parse_response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.fields.values("x-a").count(), 2);
        assert_eq!(&buf[..], b"helloNEXT");
    }

    #[test]
    fn partial_head_needs_more_and_oversized_head_is_refused() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Le")
                .unwrap()
                .map(|h| h.status),
            None
        );
        let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&big).unwrap_err(), ProtocolError::HeadTooLarge);
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).unwrap_err(), ProtocolError::HeadTooLarge);
    }

    #[test]
    fn malformed_status_lines_are_refused() {
        for raw in [
            &b"HTTP/1.1 2OO OK\r\n\r\n"[..],
            b"HTTX/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 99 Low\r\n\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ProtocolError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn both_framings_or_conflicting_lengths_are_refused() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse(raw).unwrap_err(),
            ProtocolError::LengthAndTransferEncoding
        );
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(parse(raw).unwrap_err(), ProtocolError::BadContentLength);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n";
        assert_eq!(parse(raw).unwrap_err(), ProtocolError::BadContentLength);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n";
        assert_eq!(parse(raw).unwrap_err(), ProtocolError::BadContentLength);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(head(raw).framing, BodyFraming::Length(3));
    }

    #[test]
    fn framing_follows_method_status_and_headers() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]);
        let h = parse_response_head(&mut buf, true).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::Empty, "HEAD has no body");
        assert_eq!(
            head(b"HTTP/1.1 204 No Content\r\n\r\n").framing,
            BodyFraming::Empty
        );
        assert_eq!(
            head(b"HTTP/1.1 304 Not Modified\r\n\r\n").framing,
            BodyFraming::Empty
        );
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
        let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive, "HTTP/1.0 closes by default");
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n");
        assert!(h.keep_alive);
        let h = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
    }

    #[test]
    fn interim_responses_are_skipped_but_101_is_returned() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let h = parse_response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, 201);
        assert!(buf.is_empty());
        let h = head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n");
        assert_eq!((h.status.as_u16(), h.framing), (101, BodyFraming::Empty));
    }
}
