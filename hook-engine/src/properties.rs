//! `proxy_get_property`: Envoy's attribute names (`request.path`, `source.address`...)
//! answered from the request being served. Paths arrive NUL-separated (`request\0path`)
//! as the SDKs send them; dotted strings are accepted too.

use crate::abi::encode_pairs_into;
use crate::fields::with_lent;
use crate::head_map::HeadMap;
use crate::outcome::RequestContext;
use crate::state::HostState;

/// Splits a property path into its segments.
pub(crate) fn parse_path(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut segments = Segments::default();
    if segments.split(&text) {
        return segments.as_slice().iter().map(|s| s.to_string()).collect();
    }
    // Deeper than any attribute we answer: split without a bound.
    let parts: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).collect();
    parts.into_iter().map(str::to_string).collect()
}

/// Most segments a path we can answer has (`request.headers.<name>`), with room for
/// guest-set properties of a few levels.
const MAX_SEGMENTS: usize = 8;

/// A property path split in place: segments borrowed from the path's text, so a
/// lookup allocates nothing.
#[derive(Default)]
pub(crate) struct Segments<'a> {
    parts: [&'a str; MAX_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    pub(crate) fn as_slice(&self) -> &[&'a str] {
        &self.parts[..self.len]
    }

    fn push(&mut self, part: &'a str) -> bool {
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
    pub(crate) fn split(&mut self, text: &'a str) -> bool {
        let (mut count, mut last, mut rest) = (0, "", text);
        loop {
            // NUL is ASCII, so the byte positions are character boundaries.
            let (part, next) = match rest.bytes().position(|b| b == 0) {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            if !part.is_empty() {
                count += 1;
                last = part;
                if !self.push(part) {
                    return false;
                }
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
        if count == 1 {
            self.len -= 1;
            return self.split_dotted(last);
        }
        true
    }

    fn split_dotted(&mut self, path: &'a str) -> bool {
        let mut rest = path;
        while let Some((head, tail)) = rest.split_once('.') {
            if !self.push(head) {
                return false;
            }
            rest = tail;
            if head == "headers" {
                break;
            }
        }
        self.push(rest)
    }
}

/// Writes the property's value into `out` (empty on entry); false for `NotFound`.
/// Integers are 8-byte little endian as in Envoy. Only the header properties load
/// a map's regular headers (see [`HeadMap`]).
pub(crate) fn resolve_into(state: &mut HostState, path: &[&str], out: &mut Vec<u8>) -> bool {
    if !state.call.properties.is_empty() {
        if let Some(value) = state.call.properties.get(&path.join(".")) {
            out.extend_from_slice(value);
            return true;
        }
    }
    let call = &mut state.call;
    let found: Option<&[u8]> = match path {
        ["request", "id"] => {
            // The context's id, else the request's own `x-request-id`.
            return context_text(out, |c| c.request_id.as_deref())
                || bytes(first(&mut call.request_headers, "x-request-id"), out);
        }
        ["request", rest @ ..] => return request_property(&mut call.request_headers, rest, out),
        ["response", "code"] => {
            let code = first(&mut call.response_headers, ":status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<i64>().ok());
            return int(code, out);
        }
        ["response", "headers"] => {
            encode_pairs_into(call.response_headers.regular().iter(), out);
            return true;
        }
        ["response", "headers", name] => first(&mut call.response_headers, name),
        ["source", "address"] => return address(context(|c| c.source), out),
        ["source", "port"] => return int(context(|c| c.source).map(|a| i64::from(a.port())), out),
        ["destination", "address"] => return address(context(|c| c.destination), out),
        ["destination", "port"] => {
            return int(context(|c| c.destination).map(|a| i64::from(a.port())), out)
        }
        ["plugin_name"] => Some(state.plugin.name.as_bytes()),
        ["plugin_root_id"] | ["plugin_vm_id"] => Some(state.plugin.root_id.as_bytes()),
        ["hoody", "matched_group"] => return context_text(out, |c| c.matched_group.as_deref()),
        ["hoody", "container_id"] => Some(state.plugin.container_id.as_bytes()),
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

fn request_property(headers: &mut HeadMap, rest: &[&str], out: &mut Vec<u8>) -> bool {
    let value = match rest {
        ["path"] => first(headers, ":path"),
        ["url_path"] => first(headers, ":path").map(strip_query),
        ["query"] => first(headers, ":path").map(query),
        ["method"] => first(headers, ":method"),
        ["host"] => first(headers, ":authority"),
        ["scheme"] => first(headers, ":scheme"),
        ["headers"] => {
            encode_pairs_into(headers.regular().iter(), out);
            return true;
        }
        ["headers", name] => first(headers, name),
        _ => None,
    };
    bytes(value, out)
}

/// The first value of `name`, lowercase (a pseudo-header is read without loading the
/// map's regular headers).
fn first<'a>(headers: &'a mut HeadMap, name: &'a str) -> Option<&'a [u8]> {
    headers.values(name.as_bytes()).next()
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
    // `255.255.255.255:65535` at most, written in place and copied out once.
    let mut text = [0u8; 21];
    let mut len = 0;
    let mut push = |n: u32, after: Option<u8>| {
        for digit in crate::abi::decimal(n, &mut [0u8; 10]) {
            text[len] = *digit;
            len += 1;
        }
        if let Some(separator) = after {
            text[len] = separator;
            len += 1;
        }
    };
    let [a, b, c, d] = v4.ip().octets();
    for octet in [a, b, c] {
        push(u32::from(octet), Some(b'.'));
    }
    push(u32::from(d), Some(b':'));
    push(u32::from(v4.port()), None);
    out.extend_from_slice(&text[..len]);
}

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
        assert_eq!(parse_path(b"request\0path\0"), vec!["request", "path"]);
        assert_eq!(parse_path(b"request.path"), vec!["request", "path"]);
        assert_eq!(
            parse_path(b"request.headers.x-a.b"),
            vec!["request", "headers", "x-a.b"]
        );
        assert_eq!(parse_path(b"plugin_name"), vec!["plugin_name"]);
        assert_eq!(parse_path(b"\0a\0\0b\0"), vec!["a", "b"]);
        // One NUL-separated segment is read as a dotted path.
        assert_eq!(parse_path(b"\0request.path\0"), vec!["request", "path"]);
        // Deeper than the bounded split: every segment still comes out.
        let deep = parse_path(b"a\0b\0c\0d\0e\0f\0g\0h\0i");
        assert_eq!(deep.len(), 9);
        let deep = "a\0b\0c\0d\0e\0f\0g\0h\0i";
        assert_eq!(parse_path(deep.as_bytes()).len(), 9);
        let mut segments = Segments::default();
        assert!(!segments.split(deep));
        let mut segments = Segments::default();
        assert!(segments.split("source.address"));
        assert_eq!(segments.as_slice(), ["source", "address"]);
    }

    #[test]
    fn splits_query_from_path() {
        assert_eq!(strip_query(b"/a?b=1"), b"/a");
        assert_eq!(query(b"/a?b=1"), b"b=1");
        assert_eq!(query(b"/a"), b"");
    }
}
