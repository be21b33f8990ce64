//! The HTTP/1.1 wire format of the server side: the request head parser,
//! with the framing rules the proxy enforces, and the response head writer.
//!
//! Pure code over byte buffers, so every refusal is unit-tested without
//! sockets. A head is parsed once, when its blank line is in the buffer;
//! header values and the target share the head's bytes instead of being
//! copied. The rules are stricter than RFC 9112 where a lenient reading could
//! let two parties disagree on where a message ends (request smuggling):
//! `Content-Length` with `Transfer-Encoding`, a repeated or non-numeric
//! `Content-Length`, a `Transfer-Encoding` whose last coding is not `chunked`
//! or that names it twice, and `Transfer-Encoding` on HTTP/1.0 are refused.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use crate::fields::RawFields;
use crate::framing::BodyFraming;

/// Longest request line accepted (method, target, version): longer is 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Header slots parsed per request; `Limits::max_headers` is clamped to it.
pub const HEADER_SLOTS: usize = 128;

/// Map room kept for the fields the proxy adds to a request (`Host`,
/// `X-Forwarded-*`, `Forwarded`).
const SPARE_FIELDS: usize = 6;

/// Why a head was refused; the connection is answered and closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Conflicting or invalid framing, or a head that does not parse → 400.
    Framing,
    /// The request line is longer than [`MAX_REQUEST_LINE`] → 414.
    UriTooLong,
    /// The head is larger than the configured limit, or has too many
    /// fields → 431.
    HeadTooLarge,
}

/// Size limits of a request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
}

/// A parsed request head and what the connection needs to know of it.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    pub body: BodyFraming,
    /// The client allows another request on this connection afterwards.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before its body.
    pub expect_continue: bool,
}

/// The outcome of looking at the front of a connection's read buffer.
// Not boxed: it is matched at once, and a box would cost an allocation per
// request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// No complete head yet (and nothing refused so far).
    Partial,
    Complete(RequestHead),
    Refused(Refusal),
}

/// Where a field's name and value are in a head: `(start, len)` pairs.
pub type FieldSpan = ((u32, u32), (u32, u32));

/// Parses the request head at the front of `buf`, removing it. Empty lines
/// before a request line are skipped (RFC 9112 §2.2). httparse runs on what
/// is there (heads nearly always arrive whole); `spans` is scratch space the
/// connection keeps, so parsing allocates nothing but the header map.
pub fn parse_request_head(
    buf: &mut BytesMut,
    limits: HeadLimits,
    spans: &mut Vec<FieldSpan>,
) -> Parsed {
    skip_empty_lines(buf);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut slots[..limits.max_headers.clamp(1, HEADER_SLOTS)],
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial_verdict(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Refusal::HeadTooLarge),
        Err(_) if request_line_len(buf) > MAX_REQUEST_LINE => {
            return Parsed::Refused(Refusal::UriTooLong)
        }
        Err(_) => return Parsed::Refused(Refusal::Framing),
    };
    if request_line_len(&buf[..len]) > MAX_REQUEST_LINE {
        return Parsed::Refused(Refusal::UriTooLong);
    }
    if len > limits.max_bytes {
        return Parsed::Refused(Refusal::HeadTooLarge);
    }
    let line = match RequestLine::of(&req, buf, spans) {
        Ok(line) => line,
        Err(r) => return Parsed::Refused(r),
    };
    let head = buf.split_to(len).freeze();
    match build_head(&head, line, spans) {
        Ok(h) => Parsed::Complete(h),
        Err(r) => Parsed::Refused(r),
    }
}

/// What the head's first pass takes while httparse's slices borrow the read
/// buffer: the request line, the framing, the connection options and (in
/// `spans`) where each field is.
struct RequestLine {
    method: Method,
    version: Version,
    target: (u32, u32),
    body: BodyFraming,
    options: Options,
}

impl RequestLine {
    fn of(
        req: &httparse::Request<'_, '_>,
        base: &[u8],
        spans: &mut Vec<FieldSpan>,
    ) -> Result<Self, Refusal> {
        let body = framing(req)?;
        let method = req
            .method
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(Refusal::Framing)?;
        let version = match req.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let origin = base.as_ptr() as usize;
        let span = |s: &[u8]| ((s.as_ptr() as usize - origin) as u32, s.len() as u32);
        let target = span(req.path.ok_or(Refusal::Framing)?.as_bytes());
        let mut options = Options::default();
        spans.clear();
        for h in req.headers.iter() {
            options.note(h.name, h.value);
            spans.push((span(h.name.as_bytes()), span(h.value)));
        }
        Ok(Self {
            method,
            version,
            target,
            body,
            options,
        })
    }
}

fn skip_empty_lines(buf: &mut BytesMut) {
    let blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    // A lone CR may be the start of a CRLF still on its way: keep it.
    let keep = usize::from(blank > 0 && blank == buf.len() && buf[blank - 1] == b'\r');
    buf.advance(blank - keep);
}

/// What an incomplete head already tells: too long a request line, or too
/// large a head, decided as soon as the bytes are there.
fn partial_verdict(buf: &[u8], limits: HeadLimits) -> Parsed {
    if request_line_len(buf) > MAX_REQUEST_LINE {
        Parsed::Refused(Refusal::UriTooLong)
    } else if buf.len() > limits.max_bytes {
        Parsed::Refused(Refusal::HeadTooLarge)
    } else {
        Parsed::Partial
    }
}

/// The request line's length, or the whole buffer's when it has no line end.
fn request_line_len(buf: &[u8]) -> usize {
    let window = &buf[..buf.len().min(MAX_REQUEST_LINE + 2)];
    window.iter().position(|b| *b == b'\n').unwrap_or(buf.len())
}

/// Builds the typed head from a complete head's bytes: the target and the
/// field values share them.
fn build_head(
    bytes: &Bytes,
    line: RequestLine,
    spans: &[FieldSpan],
) -> Result<RequestHead, Refusal> {
    let slice = |(start, len): (u32, u32)| bytes.slice(start as usize..(start + len) as usize);
    let uri = Uri::from_maybe_shared(slice(line.target)).map_err(|_| Refusal::Framing)?;
    // Room for the forwarding fields the proxy adds, so the map never grows.
    let mut headers = HeaderMap::with_capacity(spans.len() + SPARE_FIELDS);
    for &(name, value) in spans {
        let (start, len) = name;
        let name = HeaderName::from_bytes(&bytes[start as usize..(start + len) as usize])
            .map_err(|_| Refusal::Framing)?;
        let value = HeaderValue::from_maybe_shared(slice(value)).map_err(|_| Refusal::Framing)?;
        headers.append(name, value);
    }
    let version = line.version;
    let keep_alive =
        !line.options.close && (version == Version::HTTP_11 || line.options.keep_alive);
    let expect_continue = version == Version::HTTP_11 && line.options.expect_continue;
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = line.method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(RequestHead {
        parts,
        body: line.body,
        keep_alive,
        expect_continue,
    })
}

/// The framing of a parsed head (RFC 9112 §6.1–6.3, stricter where the RFC
/// allows a choice).
fn framing(req: &httparse::Request<'_, '_>) -> Result<BodyFraming, Refusal> {
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    let mut te_headers = 0;
    let mut chunked_last = false;
    let mut chunked_count = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = Some(parse_length(h.value).ok_or(Refusal::Framing)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_headers += 1;
            for coding in h.value.split(|b| *b == b',') {
                chunked_last = coding.trim_ascii().eq_ignore_ascii_case(b"chunked");
                chunked_count += usize::from(chunked_last);
            }
        }
    }
    if lengths > 1 || (lengths == 1 && te_headers > 0) {
        return Err(Refusal::Framing);
    }
    if te_headers > 0 {
        if req.version != Some(1) || !chunked_last || chunked_count != 1 {
            return Err(Refusal::Framing);
        }
        return Ok(BodyFraming::Chunked);
    }
    Ok(match length {
        Some(n) if n > 0 => BodyFraming::Length(n),
        _ => BodyFraming::Empty,
    })
}

/// `1*DIGIT`, nothing else (no sign, no list, no spaces inside).
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// What the `Connection` and `Expect` fields say: the connection persists
/// after this request on HTTP/1.1 unless `close`, on HTTP/1.0 only with
/// `keep-alive`; `100-continue` asks for the go-ahead before the body.
#[derive(Default)]
struct Options {
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Options {
    fn note(&mut self, name: &str, value: &[u8]) {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
}

/// How the response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespFraming {
    /// No body and no framing fields (1xx, 204).
    None,
    /// No body, and the `Content-Length` the response carries is kept: it
    /// describes the representation (HEAD, 304).
    Headers,
    Length(u64),
    Chunked,
    /// The body ends when the connection closes (an HTTP/1.0 client and a
    /// body of unknown length).
    Close,
}

impl RespFraming {
    /// The framing of a response with body size `size` (exact, when known),
    /// for a request of `method` and `version`.
    pub fn choose(
        method: &Method,
        version: Version,
        status: StatusCode,
        size: Option<u64>,
    ) -> Self {
        if status.is_informational() || status == StatusCode::NO_CONTENT {
            return RespFraming::None;
        }
        if *method == Method::HEAD || status == StatusCode::NOT_MODIFIED {
            return RespFraming::Headers;
        }
        match size {
            Some(n) => RespFraming::Length(n),
            None if version == Version::HTTP_11 => RespFraming::Chunked,
            None => RespFraming::Close,
        }
    }

    /// Whether a body follows the head.
    pub fn has_body(self) -> bool {
        matches!(
            self,
            RespFraming::Length(_) | RespFraming::Chunked | RespFraming::Close
        )
    }
}

/// What the `Connection` field of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: HTTP/1.1's default, or a 101's own fields.
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    Close,
}

/// Appends a response head to `out`: the upstream's `raw` fields as it sent
/// them (hop-by-hop ones and those its `Connection` names left out), then
/// those of `headers`. The framing fields are replaced by `framing`'s and
/// `Connection` by `persistence` (a 101 keeps its own); `date` is added when
/// the response has none.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    raw: Option<&RawFields>,
    headers: &HeaderMap,
    framing: RespFraming,
    persistence: Persistence,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut has_date = headers.contains_key(header::DATE);
    if let Some(raw) = raw {
        let named = raw.named_by_connection();
        for (name, value, hop_by_hop) in raw.iter_flagged() {
            if hop_by_hop || raw_skipped(name, framing, &named) {
                continue;
            }
            has_date |= name.eq_ignore_ascii_case(b"date");
            field(out, name, value);
        }
    }
    for (name, value) in headers {
        if skipped(name, framing, upgrade) {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_date {
        field(out, b"date", date);
    }
    match framing {
        RespFraming::Length(n) => {
            let mut digits = itoa_buf();
            field(out, b"content-length", format_u64(n, &mut digits));
        }
        RespFraming::Chunked => field(out, b"transfer-encoding", b"chunked"),
        RespFraming::None | RespFraming::Headers | RespFraming::Close => {}
    }
    match persistence {
        Persistence::Default => {}
        Persistence::KeepAlive => field(out, b"connection", b"keep-alive"),
        Persistence::Close => field(out, b"connection", b"close"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Map fields the writer sets itself instead of copying them.
fn skipped(name: &HeaderName, framing: RespFraming, upgrade: bool) -> bool {
    if upgrade {
        return false;
    }
    if *name == header::CONNECTION || *name == header::TRANSFER_ENCODING {
        return true;
    }
    *name == header::CONTENT_LENGTH && framing != RespFraming::Headers
}

/// Raw upstream fields that are not passed on besides the hop-by-hop ones:
/// those the upstream's `Connection` names, and a length the writer sets itself.
fn raw_skipped(name: &[u8], framing: RespFraming, named: &[&[u8]]) -> bool {
    (framing != RespFraming::Headers && name.eq_ignore_ascii_case(b"content-length"))
        || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `n`, written at the end of `buf`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 16 * 1024,
        max_headers: 100,
    };

    fn parse(raw: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let parsed = parse_request_head(&mut buf, LIMITS, &mut Vec::new());
        (parsed, buf)
    }

    fn head(raw: &[u8]) -> RequestHead {
        match parse(raw).0 {
            Parsed::Complete(h) => h,
            other => panic!("{other:?}"),
        }
    }

    fn refusal(raw: &[u8]) -> Option<Refusal> {
        match parse(raw).0 {
            Parsed::Refused(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn a_head_is_parsed_and_removed_leaving_the_body() {
        let (parsed, rest) =
            parse(b"POST /p?q=1 HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 5\r\n\r\nhello");
        let Parsed::Complete(h) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(h.parts.method, Method::POST);
        assert_eq!(h.parts.uri, "/p?q=1");
        assert_eq!(h.parts.version, Version::HTTP_11);
        assert_eq!(h.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(h.body, BodyFraming::Length(5));
        assert!(h.keep_alive && !h.expect_continue);
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn pipelined_heads_come_out_one_at_a_time() {
        let mut buf = BytesMut::from(
            &b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHo"[..],
        );
        for path in ["/a", "/b"] {
            match parse_request_head(&mut buf, LIMITS, &mut Vec::new()) {
                Parsed::Complete(h) => assert_eq!(h.parts.uri, path),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse_request_head(&mut buf, LIMITS, &mut Vec::new()),
            Parsed::Partial
        ));
        assert_eq!(&buf[..], b"GET /c HTTP/1.1\r\nHo");
    }

    #[test]
    fn a_lone_cr_at_the_end_of_blank_lines_waits_for_its_lf() {
        let mut buf = BytesMut::from(&b"\r\n\r"[..]);
        assert!(matches!(
            parse_request_head(&mut buf, LIMITS, &mut Vec::new()),
            Parsed::Partial
        ));
        assert_eq!(&buf[..], b"\r");
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(refusal(bad.as_bytes()), Some(Refusal::Framing), "{bad}");
        }
    }

    #[test]
    fn framing_follows_length_and_transfer_encoding() {
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").body,
            BodyFraming::Chunked
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            BodyFraming::Empty
        );
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\n").body, BodyFraming::Empty);
    }

    #[test]
    fn keep_alive_and_expect_follow_the_version_and_fields() {
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
        assert!(
            head(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(!head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn long_request_line_is_414_and_long_head_431() {
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(refusal(line.as_bytes()), Some(Refusal::UriTooLong));
        let unfinished = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(refusal(unfinished.as_bytes()), Some(Refusal::UriTooLong));
        let complete = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(refusal(complete.as_bytes()), Some(Refusal::UriTooLong));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(20 * 1024));
        assert_eq!(refusal(big.as_bytes()), Some(Refusal::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=LIMITS.max_headers {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(refusal(&many), Some(Refusal::HeadTooLarge));
    }

    #[test]
    fn response_framing_follows_method_status_and_size() {
        let get = Method::GET;
        let v11 = Version::HTTP_11;
        let ok = StatusCode::OK;
        assert_eq!(
            RespFraming::choose(&get, v11, ok, Some(5)),
            RespFraming::Length(5)
        );
        assert_eq!(
            RespFraming::choose(&get, v11, ok, None),
            RespFraming::Chunked
        );
        assert_eq!(
            RespFraming::choose(&get, Version::HTTP_10, ok, None),
            RespFraming::Close
        );
        assert_eq!(
            RespFraming::choose(&Method::HEAD, v11, ok, Some(0)),
            RespFraming::Headers
        );
        assert_eq!(
            RespFraming::choose(&get, v11, StatusCode::NOT_MODIFIED, None),
            RespFraming::Headers
        );
        assert_eq!(
            RespFraming::choose(&get, v11, StatusCode::NO_CONTENT, Some(0)),
            RespFraming::None
        );
    }

    #[test]
    fn response_head_replaces_framing_and_connection_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::NOT_FOUND,
            None,
            &headers,
            RespFraming::Length(12),
            Persistence::Close,
            b"Tue, 01 Dec 2026 00:00:00 GMT",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nx-a: 1\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"
        );
        out.clear();
        headers.insert(header::DATE, HeaderValue::from_static("then"));
        encode_response_head(
            &mut out,
            StatusCode::OK,
            None,
            &headers,
            RespFraming::Headers,
            Persistence::KeepAlive,
            b"now",
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("content-length: 99\r\n"), "{text}");
        assert!(
            text.contains("date: then\r\n") && !text.contains("now"),
            "{text}"
        );
        assert!(text.ends_with("connection: keep-alive\r\n\r\n"), "{text}");
    }

    #[test]
    fn raw_upstream_fields_pass_on_without_hop_by_hop_ones() {
        let head = Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nServer: up\r\nDate: then\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: 1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n",
        );
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut slots);
        assert!(resp.parse(&head).unwrap().is_complete());
        let raw = RawFields::new(
            head.clone(),
            resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        );
        let mut added = HeaderMap::new();
        added.insert("x-hook", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::OK,
            Some(&raw),
            &added,
            RespFraming::Length(2),
            Persistence::Default,
            b"now",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nServer: up\r\nDate: then\r\nX-A: b\r\nx-hook: 1\r\ncontent-length: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_101_keeps_its_own_connection_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::SWITCHING_PROTOCOLS,
            None,
            &headers,
            RespFraming::None,
            Persistence::Default,
            b"d",
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{text}"
        );
        assert!(
            text.contains("connection: upgrade\r\nupgrade: websocket\r\n"),
            "{text}"
        );
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        let mut buf = itoa_buf();
        assert_eq!(format_u64(0, &mut buf), b"0");
        let mut buf = itoa_buf();
        assert_eq!(format_u64(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
