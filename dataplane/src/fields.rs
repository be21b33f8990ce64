//! Header fields kept as they came off the wire.
//!
//! Building an `http::HeaderMap` costs, per field, a name parse and
//! lowercasing, a hash and a table insert: about a fifth of the proxy's user
//! CPU went into the upstream response's map, which on most requests is only
//! copied back out to the client. [`RawFields`] keeps the head's bytes and
//! where each field's name and value are in them; the map is built only when
//! something needs one (a hook's response phase, hyper's HTTP/2 server), and
//! our HTTP/1 server writes the fields straight from the bytes.
//!
//! Names and values were validated by the parser (httparse: token names,
//! visible or obs-text values), so they are valid `HeaderName`s and
//! `HeaderValue`s.

use bytes::Bytes;
use hook_engine::HeaderList;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one field is in the head: name and value as `(start, len)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
    /// Whether the name is a hop-by-hop one ([`is_hop_by_hop`]), found once as
    /// the parser hands the field over.
    hop_by_hop: bool,
}

/// The header fields of one message head, unparsed beyond their spans.
#[derive(Debug, Clone, Default)]
pub struct RawFields {
    bytes: Bytes,
    spans: Vec<Span>,
    /// A `Connection` field names other fields (rare): see [`connection_named`].
    names_fields: bool,
    /// How many of the head's fields are hop-by-hop ([`is_hop_by_hop`]), counted
    /// as the parser hands them over.
    hop_by_hop: usize,
    /// Fields added after those of the head (a hook's additions to the response),
    /// written after them: checked names and values, lowercase names.
    added: HeaderList,
}

impl RawFields {
    /// Fields of `bytes`, whose name and value slices the parser returned.
    pub fn new<'a>(
        bytes: Bytes,
        fields: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let mut spans = FieldSpans::new(&bytes, fields.len());
        for (name, value) in fields {
            spans.push(name, value);
        }
        spans.finish(bytes)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The field names the `Connection` fields list (see [`connection_named`]).
    pub fn named_by_connection(&self) -> Vec<&[u8]> {
        if !self.names_fields {
            return Vec::new();
        }
        self.values("connection")
            .flat_map(connection_named)
            .collect()
    }

    /// At least the bytes of the fields' names and values, without a walk over
    /// them: the head's length plus the added fields'.
    pub fn size_bound(&self) -> usize {
        self.bytes.len() + self.added.size()
    }

    fn slice(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..(start + len) as usize]
    }

    /// Every field, in order, as the peer spelled it, then the added ones.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|s| (self.slice(s.name), self.slice(s.value)))
            .chain(self.added.iter())
    }

    /// [`RawFields::iter`] with whether each field is hop-by-hop (known since
    /// parsing for the head's fields).
    pub fn iter_flagged(&self) -> impl Iterator<Item = (&[u8], &[u8], bool)> + '_ {
        self.spans
            .iter()
            .map(|s| (self.slice(s.name), self.slice(s.value), s.hop_by_hop))
            .chain(self.added.iter().map(|(n, v)| (n, v, is_hop_by_hop(n))))
    }

    /// Adds fields after the head's. The caller vouches for them: valid field
    /// names and values, as a hook engine admits them.
    pub fn add(&mut self, fields: HeaderList) {
        if self.added.is_empty() {
            self.added = fields;
        } else {
            self.added.extend_from(&fields);
        }
    }

    /// The values of the fields named `name` (ASCII case-insensitive).
    pub fn values<'a, N: AsRef<[u8]> + ?Sized>(
        &'a self,
        name: &'a N,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_ref()))
            .map(|(_, v)| v)
    }

    /// Whether a field is named `name` (ASCII case-insensitive): lengths compared
    /// first, without the iterator of [`RawFields::values`] (a hook's response
    /// phase asks this for each name it writes).
    pub fn contains(&self, name: &[u8]) -> bool {
        let named = |n: &[u8]| n.len() == name.len() && n.eq_ignore_ascii_case(name);
        self.spans
            .iter()
            .any(|s| s.name.1 as usize == name.len() && named(self.slice(s.name)))
            || self.added.iter().any(|(n, _)| named(n))
    }

    /// Appends the fields to `map`, leaving out those `skip` refuses (it is
    /// given each lowercase name, and whether the field is hop-by-hop).
    pub fn append_to(&self, map: &mut HeaderMap, skip: impl Fn(&HeaderName, bool) -> bool) {
        map.reserve(self.spans.len() + self.added.len());
        // The head's values are slices of its bytes (no copy); added ones are copied.
        let head = self.spans.iter().map(|span| {
            let (start, len) = span.value;
            let value = self.bytes.slice(start as usize..(start + len) as usize);
            (self.slice(span.name), value, span.hop_by_hop)
        });
        let added = self
            .added
            .iter()
            .map(|(name, value)| (name, Bytes::copy_from_slice(value), is_hop_by_hop(name)));
        for (name, value, hop_by_hop) in head.chain(added) {
            let Ok(name) = HeaderName::from_bytes(name) else {
                continue;
            };
            if skip(&name, hop_by_hop) {
                continue;
            }
            if let Ok(value) = HeaderValue::from_maybe_shared(value) {
                map.append(name, value);
            }
        }
    }

    /// The fields a proxy passes on (end to end): every one except the
    /// hop-by-hop fields and those the `Connection` fields name.
    pub fn end_to_end(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let named = self.named_by_connection();
        self.iter_flagged()
            .filter(move |(name, _, hop_by_hop)| {
                !hop_by_hop && !named.iter().any(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|(name, value, _)| (name, value))
    }

    /// How many fields [`RawFields::end_to_end`] yields, counted without its
    /// iterator.
    pub fn end_to_end_len(&self) -> usize {
        if self.names_fields {
            return self.end_to_end().count();
        }
        let added = self.added.iter().filter(|(n, _)| is_hop_by_hop(n)).count();
        self.spans.len() - self.hop_by_hop + self.added.len() - added
    }

    /// Appends the end-to-end fields ([`RawFields::end_to_end`]) to `map`.
    pub fn append_end_to_end_to(&self, map: &mut HeaderMap) {
        let named: Vec<HeaderName> = self
            .named_by_connection()
            .into_iter()
            .filter_map(|n| HeaderName::from_bytes(n).ok())
            .collect();
        self.append_to(map, |name, hop_by_hop| hop_by_hop || named.contains(name));
    }
}

/// Collects the spans of a head's fields while the parser's slices still
/// borrow the read buffer, before the head is split off it and frozen
/// (which keeps the bytes where they are).
pub struct FieldSpans {
    base: usize,
    spans: Vec<Span>,
    names_fields: bool,
    hop_by_hop: usize,
}

impl FieldSpans {
    /// Spans into `base`, the buffer the head starts at, room for `n`.
    pub fn new(base: &[u8], n: usize) -> Self {
        Self {
            base: base.as_ptr() as usize,
            spans: Vec::with_capacity(n),
            names_fields: false,
            hop_by_hop: 0,
        }
    }

    /// Adds the field whose name and value are these slices of the buffer.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let base = self.base;
        let span = |s: &[u8]| ((s.as_ptr() as usize - base) as u32, s.len() as u32);
        let hop_by_hop = is_hop_by_hop(name);
        if hop_by_hop {
            self.hop_by_hop += 1;
            if name.eq_ignore_ascii_case(b"connection") && connection_named(value).next().is_some()
            {
                self.names_fields = true;
            }
        }
        self.spans.push(Span {
            name: span(name),
            value: span(value),
            hop_by_hop,
        });
    }

    /// The fields, over `bytes`: the head, split off the buffer the spans
    /// were taken in.
    pub fn finish(self, bytes: Bytes) -> RawFields {
        debug_assert_eq!(bytes.as_ptr() as usize, self.base);
        RawFields {
            added: HeaderList::new(),
            bytes,
            spans: self.spans,
            names_fields: self.names_fields,
            hop_by_hop: self.hop_by_hop,
        }
    }
}

/// Fields that belong to one connection, not to the message (RFC 9110
/// §7.6.1), plus the legacy ones proxies also drop.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The lengths of the [`HOP_BY_HOP`] names, one bit each.
const HOP_BY_HOP_LENGTHS: u64 = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < HOP_BY_HOP.len() {
        bits |= 1 << HOP_BY_HOP[i].len();
        i += 1;
    }
    bits
};

/// Whether `name` is a hop-by-hop field (ASCII case-insensitive).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names have no hop-by-hop name's length: one bit test rules them out.
    if HOP_BY_HOP_LENGTHS & (1u64 << name.len().min(63)) == 0 {
        return false;
    }
    HOP_BY_HOP
        .iter()
        .any(|h| h.len() == name.len() && h.as_bytes().eq_ignore_ascii_case(name))
}

/// The field names a `Connection` field lists that are not hop-by-hop
/// anyway (`close` and `keep-alive` are options, `upgrade` is in the list).
pub fn connection_named<'a>(value: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_to_end_count_agrees_with_the_fields() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nTE: trailers\r\nX-A: 1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nUpgrade: h2c\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ] {
            let mut fields = fields(raw);
            fields.add([("x-added", "1"), ("keep-alive", "5")].into_iter().collect());
            assert_eq!(fields.end_to_end_len(), fields.end_to_end().count());
            assert!(fields
                .iter_flagged()
                .all(|(name, _, hop_by_hop)| hop_by_hop == is_hop_by_hop(name)));
            assert_eq!(fields.iter_flagged().count(), fields.iter().count());
        }
    }

    #[test]
    fn hop_by_hop_names_are_recognised_in_any_case_and_nothing_else() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
            assert!(
                is_hop_by_hop(name.to_ascii_uppercase().as_bytes()),
                "{name}"
            );
        }
        for name in [
            "",
            "t",
            "tf",
            "trailers",
            "upgrade-",
            "connectionx",
            "keep-alivE2",
            "x-connection",
            "host",
            "content-length",
            "proxy-authenticate",
            "transfer-encodinG ",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name:?}");
        }
    }

    fn fields(raw: &'static [u8]) -> RawFields {
        let bytes = Bytes::from_static(raw);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(&bytes).unwrap().is_complete());
        let pairs: Vec<(&[u8], &[u8])> = resp
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        RawFields::new(bytes.clone(), pairs.into_iter())
    }

    #[test]
    fn added_fields_come_after_the_heads_and_reach_a_map() {
        let mut f = fields(b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\n\r\n");
        f.add([("x-hook", "blue")].into_iter().collect());
        let all: Vec<(&[u8], &[u8])> = f.iter().collect();
        assert_eq!(
            all,
            [
                (&b"Server"[..], &b"up"[..]),
                (b"Connection", b"keep-alive"),
                (b"x-hook", b"blue")
            ]
        );
        let e2e: Vec<&[u8]> = f.end_to_end().map(|(n, _)| n).collect();
        assert_eq!(e2e, [&b"Server"[..], b"x-hook"]);
        assert!(f.contains(b"X-Hook") && !f.contains(b"x-hooks"));
        let mut map = HeaderMap::new();
        f.append_end_to_end_to(&mut map);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("x-hook").map(|v| v.as_bytes()), Some(&b"blue"[..]));
    }

    #[test]
    fn fields_keep_their_order_spelling_and_repeats() {
        let f = fields(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Type: text/plain\r\nx-a: 2\r\n\r\n");
        let all: Vec<(&[u8], &[u8])> = f.iter().collect();
        assert_eq!(
            all,
            [
                (&b"X-A"[..], &b"1"[..]),
                (b"Content-Type", b"text/plain"),
                (b"x-a", b"2")
            ]
        );
        assert_eq!(f.values("x-a").collect::<Vec<_>>(), [b"1", b"2"]);
        assert!(f.contains(b"x-a") && f.contains(b"X-A") && !f.contains(b"x-"));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn the_map_gets_every_field_but_the_skipped_ones() {
        let f = fields(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-A: 1\r\nX-A: \xe9t\xe9\r\n\r\n");
        let mut map = HeaderMap::new();
        f.append_to(&mut map, |n, _| is_hop_by_hop(n.as_str().as_bytes()));
        assert!(map.get("connection").is_none());
        let values: Vec<&[u8]> = map.get_all("x-a").iter().map(|v| v.as_bytes()).collect();
        assert_eq!(values, [&b"1"[..], b"\xe9t\xe9"]);
    }

    #[test]
    fn hop_by_hop_names_and_connection_options() {
        assert!(is_hop_by_hop(b"Transfer-Encoding"));
        assert!(is_hop_by_hop(b"keep-alive"));
        assert!(!is_hop_by_hop(b"content-length"));
        let named: Vec<&[u8]> =
            connection_named(b"keep-alive, Close, X-Secret ,upgrade,").collect();
        assert_eq!(named, [&b"X-Secret"[..]]);
    }
}
