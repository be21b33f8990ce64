//! The HTTP/1.1 wire format of the upstream client: the request head
//! writer, the response head parser and the response body decoders.
//!
//! Everything here is pure (bytes in, bytes out), so every refusal a
//! misbehaving upstream can trigger is unit-tested without sockets. The
//! parser is strict where leniency would let an upstream desync the pooled
//! connection: both framings at once, conflicting lengths, oversized heads
//! and bad chunk lines are errors, and an error always closes the
//! connection.

use std::io::Write;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// The largest response head accepted; a longer one is refused (502).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most response header fields accepted.
pub const MAX_HEADERS: usize = 128;
/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes skipped before the connection is given up.
const MAX_TRAILERS: usize = MAX_HEAD;

/// Why an upstream's bytes cannot be read as HTTP/1.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("response has both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("invalid chunk size line")]
    BadChunkSize,
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    #[error("trailer section too large")]
    TrailersTooLarge,
    #[error("upstream closed the connection mid-body")]
    Truncated,
}

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body and no length header (GET and friends without a body).
    None,
    Length(u64),
    Chunked,
}

/// Serializes an origin-form request head into `out` (cleared first). The
/// caller has already removed hop-by-hop headers; any Content-Length or
/// Transfer-Encoding left in `headers` is replaced by `framing`, so the
/// head always matches the bytes that follow it.
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: ReqFraming,
) {
    out.clear();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
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

/// Appends one chunk of a chunked request body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked request body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// HEAD, 1xx, 204, 304 or `Content-Length: 0`.
    Empty,
    Length(u64),
    Chunked,
    /// No length: the body ends when the upstream closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// The upstream may take another request on this connection afterwards.
    pub keep_alive: bool,
}

/// Parses the response head at the front of `buf`, removing it: `Ok(None)`
/// means more bytes are needed. Header values share the head's bytes
/// instead of being copied one by one. Interim 1xx responses (other than
/// 101) are skipped, as the client never asked for them.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    loop {
        let Some(len) = head_len(buf)? else {
            return Ok(None);
        };
        let bytes = buf.split_to(len).freeze();
        let head = build_head(&bytes, head_request)?;
        if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        return Ok(Some(head));
    }
}

/// The length of the complete head at the front of `buf`, if it is there:
/// a scan for the blank line, so httparse runs once per head rather than
/// once per read.
fn head_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut from = 0;
    while let Some(i) = window[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        match (window.get(at + 1), window.get(at + 2)) {
            (Some(b'\n'), _) => return Ok(Some(at + 2)),
            (Some(b'\r'), Some(b'\n')) => return Ok(Some(at + 3)),
            (None, _) | (Some(b'\r'), None) => break,
            _ => from = at + 1,
        }
    }
    if buf.len() >= MAX_HEAD {
        return Err(ProtocolError::HeadTooLarge);
    }
    Ok(None)
}

/// Builds the typed head from a complete head's bytes.
fn build_head(bytes: &Bytes, head_request: bool) -> Result<ResponseHead, ProtocolError> {
    // Uninitialized slots: zeroing 128 of them per response showed up in
    // profiles.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, bytes, &mut slots);
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        // The blank line was there: a partial parse means a broken head.
        Ok(httparse::Status::Partial) => {
            return Err(ProtocolError::Malformed(httparse::Error::Status))
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::HeadTooLarge),
        Err(e) => return Err(ProtocolError::Malformed(e)),
    }
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ProtocolError::Malformed(httparse::Error::Status))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| ProtocolError::Malformed(httparse::Error::HeaderName))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value))
            .map_err(|_| ProtocolError::Malformed(httparse::Error::HeaderValue))?;
        headers.append(name, value);
    }
    let framing = body_framing(status, head_request, &headers)?;
    let keep_alive = keep_alive(version, &headers) && framing != BodyFraming::UntilClose;
    Ok(ResponseHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
    })
}

/// RFC 9112 §6.3, strictly: a response with both framings, or with
/// Content-Length values that disagree, is refused rather than guessed at.
fn body_framing(
    status: StatusCode,
    head_request: bool,
    headers: &HeaderMap,
) -> Result<BodyFraming, ProtocolError> {
    let te = headers.get_all(header::TRANSFER_ENCODING);
    let has_te = te.iter().next().is_some();
    let length = content_length(headers)?;
    if has_te && length.is_some() {
        return Err(ProtocolError::LengthAndTransferEncoding);
    }
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::Empty);
    }
    if has_te {
        return Ok(if last_coding_is_chunked(te.iter()) {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        });
    }
    Ok(match length {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    })
}

/// The one Content-Length, if any; repeated identical values (also in one
/// comma-separated field) are the same length, differing ones an error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ProtocolError> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| ProtocolError::BadContentLength)?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProtocolError::BadContentLength);
            }
            let n: u64 = part.parse().map_err(|_| ProtocolError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(ProtocolError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn last_coding_is_chunked<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> bool {
    values
        .last()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

/// HTTP/1.1 is persistent unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut close = false;
    let mut keep = false;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.to_str().unwrap_or("close").split(',') {
            let token = token.trim();
            close |= token.eq_ignore_ascii_case("close");
            keep |= token.eq_ignore_ascii_case("keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep)
}

/// One step of body decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The body is complete; the buffer holds whatever followed it.
    End,
    NeedMore,
}

/// The response body decoder: consumes body bytes from the front of the
/// connection's read buffer, handing out zero-copy slices of it.
#[derive(Debug)]
pub enum BodyDecoder {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(Chunked::Size),
            BodyFraming::UntilClose => BodyDecoder::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Bytes still expected, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        match self {
            BodyDecoder::Done => Ok(Decoded::End),
            BodyDecoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = (*left).min(buf.len() as u64);
                *left -= take;
                let data = buf.split_to(take as usize).freeze();
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded::Data(data))
            }
            BodyDecoder::UntilClose => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                Ok(Decoded::Data(buf.split().freeze()))
            }
            BodyDecoder::Chunked(state) => {
                let step = state.decode(buf)?;
                if step == Decoded::End {
                    *self = BodyDecoder::Done;
                }
                Ok(step)
            }
        }
    }

    /// The upstream closed: the end of a read-until-close body, otherwise
    /// a truncated one.
    pub fn eof(&mut self) -> Result<Decoded, ProtocolError> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                Ok(Decoded::End)
            }
            _ => Err(ProtocolError::Truncated),
        }
    }
}

/// Where a chunked body decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    /// Skipping trailer fields; the count is the bytes skipped so far.
    Trailers(usize),
    Done,
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, ProtocolError::BadChunkSize)?
                    else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    *self = if size == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = left.min(buf.len() as u64);
                    *self = if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    };
                    return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::BadChunkEnd);
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers(seen) => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(line) = take_line(buf, room, ProtocolError::TrailersTooLarge)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    *self = if line.is_empty() {
                        Chunked::Done
                    } else {
                        Chunked::Trailers(seen + line.len() + 2)
                    };
                }
                Chunked::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// Removes one CRLF-terminated line from the front of `buf` (without the
/// CRLF); a line longer than `max` is `err`.
fn take_line(
    buf: &mut BytesMut,
    max: usize,
    err: ProtocolError,
) -> Result<Option<BytesMut>, ProtocolError> {
    let window = &buf[..buf.len().min(max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || window[i - 1] != b'\r' => Err(err),
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() >= max + 2 => Err(err),
        None => Ok(None),
    }
}

/// `1a;ext=v` → 26. At most 15 hex digits (no overflow), at least one.
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(ProtocolError::BadChunkSize);
    }
    match line.get(digits) {
        None | Some(b';' | b' ' | b'\t') => {}
        Some(_) => return Err(ProtocolError::BadChunkSize),
    }
    line[..digits].iter().try_fold(0u64, |n, &b| {
        let d = (b as char)
            .to_digit(16)
            .ok_or(ProtocolError::BadChunkSize)?;
        Ok(n * 16 + u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<ResponseHead>, ProtocolError> {
        parse_response_head(&mut BytesMut::from(raw), false)
    }

    fn head(raw: &[u8]) -> ResponseHead {
        match parse(raw) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    /// Decodes the whole body in `raw` fed one byte at a time, so every
    /// state boundary is crossed with a partial buffer.
    fn decode_bytewise(framing: BodyFraming, raw: &[u8]) -> Result<(Vec<u8>, bool), ProtocolError> {
        let mut dec = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in raw {
            buf.extend_from_slice(&[b]);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => return Ok((out, true)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((out, dec.is_done()))
    }

    #[test]
    fn request_head_carries_method_target_headers_and_framing() {
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
        );
        assert_eq!(
            out,
            b"POST /p/q?x=1 HTTP/1.1\r\nhost: a.test\r\ncontent-length: 5\r\n\r\n"
        );
        encode_request_head(&mut out, &Method::PUT, &uri, &headers, ReqFraming::Chunked);
        assert!(out.ends_with(b"host: a.test\r\ntransfer-encoding: chunked\r\n\r\n"));
        encode_request_head(
            &mut out,
            &Method::GET,
            &Uri::from_static("/"),
            &HeaderMap::new(),
            ReqFraming::None,
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn chunk_encoding_frames_data_and_skips_empty_frames() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        let mut expected = b"1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
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
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
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

    #[test]
    fn length_body_stops_at_its_length() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(5));
        let mut buf = BytesMut::from(&b"helloHTTP/1.1"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"hello"))
        );
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP/1.1", "bytes after the body stay unread");
    }

    #[test]
    fn chunked_body_decodes_across_every_split_and_skips_trailers() {
        let raw =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
        let (body, done) = decode_bytewise(BodyFraming::Chunked, raw).unwrap();
        assert!(done);
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&b"0\r\n\r\nleftover"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"leftover");
    }

    #[test]
    fn bad_chunk_framing_is_refused() {
        for (raw, err) in [
            (&b"zz\r\n"[..], ProtocolError::BadChunkSize),
            (b"\r\n", ProtocolError::BadChunkSize),
            (b"-1\r\n", ProtocolError::BadChunkSize),
            (b"5\n", ProtocolError::BadChunkSize),
            (b"1234567890abcdef0\r\n", ProtocolError::BadChunkSize),
            (b"3\r\nabcXY", ProtocolError::BadChunkEnd),
        ] {
            assert_eq!(
                decode_bytewise(BodyFraming::Chunked, raw).unwrap_err(),
                err,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut endless = b"5".to_vec();
        endless.resize(MAX_CHUNK_LINE + 10, b' ');
        assert_eq!(
            decode_bytewise(BodyFraming::Chunked, &endless).unwrap_err(),
            ProtocolError::BadChunkSize
        );
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() <= MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"X-T: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            decode_bytewise(BodyFraming::Chunked, &trailers).unwrap_err(),
            ProtocolError::TrailersTooLarge
        );
    }

    #[test]
    fn eof_ends_only_a_read_until_close_body() {
        let (body, done) = decode_bytewise(BodyFraming::UntilClose, b"all of it").unwrap();
        assert_eq!((body.as_slice(), done), (&b"all of it"[..], false));
        assert_eq!(
            BodyDecoder::new(BodyFraming::UntilClose).eof().unwrap(),
            Decoded::End
        );
        let mut dec = BodyDecoder::new(BodyFraming::Length(10));
        assert_eq!(
            dec.decode(&mut BytesMut::from(&b"half"[..])).unwrap(),
            Decoded::Data(Bytes::from_static(b"half"))
        );
        assert_eq!(dec.eof().unwrap_err(), ProtocolError::Truncated);
        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        assert_eq!(dec.eof().unwrap_err(), ProtocolError::Truncated);
    }
}
