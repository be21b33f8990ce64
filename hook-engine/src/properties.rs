//! `proxy_get_property`: Envoy's attribute names (`request.path`, `source.address`...)
//! answered from the request being served. Paths arrive NUL-separated (`request\0path`)
//! as the SDKs send them; dotted strings are accepted too.

use crate::abi::{encode_headers, Header};
use crate::state::HostState;

/// Splits a property path into its segments.
pub(crate) fn parse_path(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let parts: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).collect();
    if parts.len() == 1 {
        return split_dotted(parts[0]);
    }
    parts.into_iter().map(str::to_string).collect()
}

/// `request.headers.x-user` → `["request", "headers", "x-user"]`: header names may hold
/// dots, so everything after `headers.` stays one segment.
fn split_dotted(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some((head, tail)) = rest.split_once('.') {
        out.push(head.to_string());
        rest = tail;
        if head == "headers" {
            break;
        }
    }
    out.push(rest.to_string());
    out
}

/// The property's value, or `None` for `NotFound`. Integers are 8-byte little endian as
/// in Envoy.
pub(crate) fn resolve(state: &HostState, path: &[String]) -> Option<Vec<u8>> {
    if !state.call.properties.is_empty() {
        if let Some(value) = state.call.properties.get(&path.join(".")) {
            return Some(value.clone());
        }
    }
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let call = &state.call;
    match segments.as_slice() {
        ["request", rest @ ..] => request_property(&call.request_headers, rest, state),
        ["response", "code"] => pseudo(&call.response_headers, ":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<i64>().ok())
            .map(|code| code.to_le_bytes().to_vec()),
        ["response", "headers"] => Some(encode_headers(&regular(&call.response_headers))),
        ["response", "headers", name] => header(&call.response_headers, name),
        ["source", "address"] => call.context.source.map(address_text),
        ["source", "port"] => call
            .context
            .source
            .map(|a| i64::from(a.port()).to_le_bytes().to_vec()),
        ["destination", "address"] => call.context.destination.map(address_text),
        ["destination", "port"] => call
            .context
            .destination
            .map(|a| i64::from(a.port()).to_le_bytes().to_vec()),
        ["plugin_name"] => Some(state.plugin.name.clone().into_bytes()),
        ["plugin_root_id"] | ["plugin_vm_id"] => Some(state.plugin.root_id.clone().into_bytes()),
        ["hoody", "matched_group"] => call.context.matched_group.clone().map(String::into_bytes),
        ["hoody", "container_id"] => Some(state.plugin.container_id.clone().into_bytes()),
        _ => None,
    }
}

fn request_property(headers: &[Header], rest: &[&str], state: &HostState) -> Option<Vec<u8>> {
    match rest {
        ["path"] => pseudo(headers, ":path"),
        ["url_path"] => pseudo(headers, ":path").map(|p| strip_query(&p).to_vec()),
        ["query"] => pseudo(headers, ":path").map(|p| query(&p).to_vec()),
        ["method"] => pseudo(headers, ":method"),
        ["host"] => pseudo(headers, ":authority"),
        ["scheme"] => pseudo(headers, ":scheme"),
        ["id"] => state
            .call
            .context
            .request_id
            .clone()
            .map(String::into_bytes),
        ["headers"] => Some(encode_headers(&regular(headers))),
        ["headers", name] => header(headers, name),
        _ => None,
    }
}

/// `ip:port` (`[ip]:port` for IPv6). IPv4 is written by hand: the generic
/// `Display` of a socket address formats through a temporary buffer and shows
/// up in profiles of hooks that read `source.address` on every request.
fn address_text(address: std::net::SocketAddr) -> Vec<u8> {
    let std::net::SocketAddr::V4(v4) = address else {
        return address.to_string().into_bytes();
    };
    let mut out = Vec::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_decimal(&mut out, u32::from(octet));
    }
    out.push(b':');
    push_decimal(&mut out, u32::from(v4.port()));
    out
}

fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn pseudo(headers: &[Header], name: &str) -> Option<Vec<u8>> {
    header(headers, name)
}

fn header(headers: &[Header], name: &str) -> Option<Vec<u8>> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn regular(headers: &[Header]) -> Vec<Header> {
    headers
        .iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .cloned()
        .collect()
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
            assert_eq!(address_text(address), text.as_bytes());
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
    }

    #[test]
    fn splits_query_from_path() {
        assert_eq!(strip_query(b"/a?b=1"), b"/a");
        assert_eq!(query(b"/a?b=1"), b"b=1");
        assert_eq!(query(b"/a"), b"");
    }
}
