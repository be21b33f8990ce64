//! `proxy_get_property`: Envoy's attribute names (`request.path`, `source.address`...)
//! answered from the request being served. Paths arrive NUL-separated (`request\0path`)
//! as the SDKs send them; dotted strings are accepted too.

use crate::abi::encode_pairs_into;
use crate::fields::with_lent;
use crate::head_map::HeadMap;
use crate::outcome::RequestContext;
use crate::state::HostState;

/// Splits a property path into its segments, however many there are.
pub(crate) fn parse_path(raw: &[u8]) -> Vec<&[u8]> {
    let mut segments = Segments::default();
    if segments.split(raw) {
        return segments.as_slice().to_vec();
    }
    // Deeper than any attribute we answer: split without a bound.
    raw.split(|b| *b == 0).filter(|s| !s.is_empty()).collect()
}

/// The key a guest-set property is kept under: its segments joined by dots.
pub(crate) fn property_key(path: &[&[u8]]) -> String {
    String::from_utf8_lossy(&path.join(&b'.')).into_owned()
}

/// Most segments a path we can answer has (`request.headers.<name>`), with room for
/// guest-set properties of a few levels.
const MAX_SEGMENTS: usize = 8;

/// A property path split in place: segments borrowed from the path's bytes (in
/// guest memory), so a lookup allocates and converts nothing.
#[derive(Default)]
pub(crate) struct Segments<'a> {
    parts: [&'a [u8]; MAX_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    pub(crate) fn as_slice(&self) -> &[&'a [u8]] {
        &self.parts[..self.len]
    }

    fn push(&mut self, part: &'a [u8]) -> bool {
        if self.len == MAX_SEGMENTS {
            return false;
        }
        self.parts[self.len] = part;
        self.len += 1;
        true
    }

    /// Splits NUL-separated segments (empty ones dropped), or a single dotted one
    /// (`request.headers.x-user`: header names may hold dots, so everything after
    /// `headers.` stays one segment). False when there are too many segments.
    pub(crate) fn split(&mut self, path: &'a [u8]) -> bool {
        let mut start = 0;
        for (at, byte) in path.iter().enumerate() {
            if *byte == 0 {
                if at > start && !self.push(&path[start..at]) {
                    return false;
                }
                start = at + 1;
            }
        }
        if start < path.len() && !self.push(&path[start..]) {
            return false;
        }
        if self.len == 1 {
            self.len = 0;
            return self.split_dotted(self.parts[0]);
        }
        true
    }

    fn split_dotted(&mut self, path: &'a [u8]) -> bool {
        let mut rest = path;
        while let Some(dot) = rest.iter().position(|b| *b == b'.') {
            let head = &rest[..dot];
            if !self.push(head) {
                return false;
            }
            rest = &rest[dot + 1..];
            if head == b"headers" {
                break;
            }
        }
        self.push(rest)
    }
}

/// Writes the property's value into `out` (empty on entry); false for `NotFound`.
/// Integers are 8-byte little endian as in Envoy. Only the header properties load
/// a map's regular headers (see [`HeadMap`]).
pub(crate) fn resolve_into(state: &mut HostState, path: &[&[u8]], out: &mut Vec<u8>) -> bool {
    if !state.call.properties.is_empty() {
        if let Some(value) = state.call.properties.get(&property_key(path)) {
            out.extend_from_slice(value);
            return true;
        }
    }
    let call = &mut state.call;
    let found: Option<&[u8]> = match path {
        [b"request", b"id"] => {
            // The context's id, else the request's own `x-request-id`.
            return context_text(out, |c| c.request_id.as_deref())
                || bytes(first(&mut call.request_headers, b"x-request-id"), out);
        }
        [b"request", rest @ ..] => return request_property(&mut call.request_headers, rest, out),
        [b"response", b"code"] => {
            let code = first(&mut call.response_headers, b":status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<i64>().ok());
            return int(code, out);
        }
        [b"response", b"headers"] => {
            encode_pairs_into(call.response_headers.regular().iter(), out);
            return true;
        }
        [b"response", b"headers", name] => first(&mut call.response_headers, name),
        [b"source", b"address"] => return address(context(|c| c.source), out),
        [b"source", b"port"] => {
            return int(context(|c| c.source).map(|a| i64::from(a.port())), out)
        }
        [b"destination", b"address"] => return address(context(|c| c.destination), out),
        [b"destination", b"port"] => {
            return int(context(|c| c.destination).map(|a| i64::from(a.port())), out)
        }
        [b"plugin_name"] => Some(state.plugin.name.as_bytes()),
        [b"plugin_root_id"] | [b"plugin_vm_id"] => Some(state.plugin.root_id.as_bytes()),
        [b"hoody", b"matched_group"] => return context_text(out, |c| c.matched_group.as_deref()),
        [b"hoody", b"container_id"] => Some(state.plugin.container_id.as_bytes()),
        _ => None,
    };
    bytes(found, out)
}

/// Writes a text of the request's context (lent to the guest call; none outside
/// one) into `out`; false when there is none.
fn context_text(out: &mut Vec<u8>, read: impl Fn(&RequestContext) -> Option<&str>) -> bool {
    with_lent(|lent| bytes(lent.and_then(|l| read(l.context)).map(str::as_bytes), out))
}

/// An address of the request's context (see [`context_text`]).
fn context(
    read: impl Fn(&RequestContext) -> Option<std::net::SocketAddr>,
) -> Option<std::net::SocketAddr> {
    with_lent(|lent| lent.and_then(|l| read(l.context)))
}

fn request_property(headers: &mut HeadMap, rest: &[&[u8]], out: &mut Vec<u8>) -> bool {
    let value = match rest {
        [b"path"] => first(headers, b":path"),
        [b"url_path"] => first(headers, b":path").map(strip_query),
        [b"query"] => first(headers, b":path").map(query),
        [b"method"] => first(headers, b":method"),
        [b"host"] => first(headers, b":authority"),
        [b"scheme"] => first(headers, b":scheme"),
        [b"headers"] => {
            encode_pairs_into(headers.regular().iter(), out);
            return true;
        }
        [b"headers", name] => first(headers, name),
        _ => None,
    };
    bytes(value, out)
}

/// The first value of `name`, lowercase (a pseudo-header is read without loading the
/// map's regular headers).
fn first<'a>(headers: &'a mut HeadMap, name: &'a [u8]) -> Option<&'a [u8]> {
    headers.values(name).next()
}

fn bytes(value: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
    value.map(|v| out.extend_from_slice(v)).is_some()
}

fn int(value: Option<i64>, out: &mut Vec<u8>) -> bool {
    value
        .map(|v| out.extend_from_slice(&v.to_le_bytes()))
        .is_some()
}

fn address(value: Option<std::net::SocketAddr>, out: &mut Vec<u8>) -> bool {
    value.map(|a| address_text(a, out)).is_some()
}

/// `ip:port` (`[ip]:port` for IPv6). IPv4 is written by hand: the generic
/// `Display` of a socket address formats through a temporary buffer and shows
/// up in profiles of hooks that read `source.address` on every request.
fn address_text(address: std::net::SocketAddr, out: &mut Vec<u8>) {
    let std::net::SocketAddr::V4(v4) = address else {
        out.extend_from_slice(address.to_string().as_bytes());
        return;
    };
    // `255.255.255.255:65535` at most (and the first octet's unused separator),
    // written backwards in place and copied out once.
    let mut text = [0u8; 22];
    let mut at = text.len();
    let mut prepend = |n: u16, before: u8| {
        let mut n = usize::from(n);
        let mut pair = |two: usize, at: &mut usize| {
            *at -= 2;
            text[*at..*at + 2].copy_from_slice(&DIGIT_PAIRS[2 * two..2 * two + 2]);
        };
        while n >= 100 {
            pair(n % 100, &mut at);
            n /= 100;
        }
        if n >= 10 {
            pair(n, &mut at);
        } else {
            at -= 1;
            text[at] = b'0' + n as u8;
        }
        at -= 1;
        text[at] = before;
    };
    let [a, b, c, d] = v4.ip().octets();
    prepend(v4.port(), b':');
    prepend(u16::from(d), b'.');
    prepend(u16::from(c), b'.');
    prepend(u16::from(b), b'.');
    prepend(u16::from(a), 0);
    out.extend_from_slice(&text[at + 1..]);
}

/// `00` to `99`: numbers are written two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

fn strip_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == b'?') {
        Some(i) => &path[..i],
        None => path,
    }
}

fn query(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == b'?') {
        Some(i) => &path[i + 1..],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for text in [
            "127.0.0.1:40000",
            "10.0.0.255:0",
            "0.0.0.0:65535",
            "255.255.255.255:65535",
            "1.22.103.9:7",
            "9.99.100.10:1000",
            "100.1.10.0:100",
            "[::1]:8080",
        ] {
            let address: std::net::SocketAddr = text.parse().expect("address");
            let mut out = Vec::new();
            address_text(address, &mut out);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn parses_nul_and_dotted_paths() {
        let parsed = |raw: &[u8]| -> Vec<String> {
            parse_path(raw)
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        assert_eq!(parsed(b"request\0path\0"), vec!["request", "path"]);
        assert_eq!(parsed(b"request.path"), vec!["request", "path"]);
        assert_eq!(
            parsed(b"request.headers.x-a.b"),
            vec!["request", "headers", "x-a.b"]
        );
        assert_eq!(parsed(b"plugin_name"), vec!["plugin_name"]);
        assert_eq!(parsed(b"\0a\0\0b\0"), vec!["a", "b"]);
        // One NUL-separated segment is read as a dotted path.
        assert_eq!(parsed(b"\0request.path\0"), vec!["request", "path"]);
        // Deeper than the bounded split: every segment still comes out.
        let deep = parsed(b"a\0b\0c\0d\0e\0f\0g\0h\0i");
        assert_eq!(deep.len(), 9);
        let deep = "a\0b\0c\0d\0e\0f\0g\0h\0i";
        assert_eq!(parsed(deep.as_bytes()).len(), 9);
        let mut segments = Segments::default();
        assert!(!segments.split(deep.as_bytes()));
        let mut segments = Segments::default();
        assert!(segments.split(b"source.address"));
        assert_eq!(segments.as_slice(), [&b"source"[..], b"address"]);
        // Guest-set properties are kept under their dotted name, however sent.
        assert_eq!(property_key(&parse_path(b"my\0key\0")), "my.key");
        assert_eq!(property_key(&parse_path(b"my.key")), "my.key");
    }

    #[test]
    fn splits_query_from_path() {
        assert_eq!(strip_query(b"/a?b=1"), b"/a");
        assert_eq!(query(b"/a?b=1"), b"b=1");
        assert_eq!(query(b"/a"), b"");
    }
}
