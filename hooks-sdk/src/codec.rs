//! Pure helpers with no host calls: the header-pair wire format, base64url (JWT
//! segments) and a minimal JSON field reader and string escaper. Tested on the build
//! machine.

/// Encodes `(name, value)` pairs in the proxy-wasm map format.
pub fn encode_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Decodes the proxy-wasm map format; `None` if it is malformed.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    let mut cursor = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::new();
    for i in 0..count {
        let key_len = read_u32(bytes, 4 + i * 8)? as usize;
        let value_len = read_u32(bytes, 8 + i * 8)? as usize;
        let key = bytes.get(cursor..cursor.checked_add(key_len)?)?;
        cursor += key_len + 1;
        let value = bytes.get(cursor..cursor.checked_add(value_len)?)?;
        cursor += value_len + 1;
        out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(out)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// Decodes base64url without padding (JWT segments); padding is tolerated.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The claims of a JWT, *without verifying its signature*: routing on claims is only safe
/// after the proxy's jwt group has verified the token.
pub fn jwt_claims(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    String::from_utf8(base64url_decode(payload)?).ok()
}

/// The value of a top-level field of a flat JSON object, as text: strings unescaped,
/// numbers and booleans as written. Enough for claims and configuration; not a parser.
pub fn json_field(json: &str, field: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let needle = format!("\"{field}\"");
    let mut search = 0;
    while let Some(found) = json[search..].find(&needle) {
        let mut at = search + found + needle.len();
        search = at;
        at = skip_space(bytes, at);
        if bytes.get(at) != Some(&b':') {
            continue;
        }
        at = skip_space(bytes, at + 1);
        return match bytes.get(at)? {
            b'"' => read_json_string(&json[at + 1..]),
            _ => {
                let end = json[at..]
                    .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
                    .map_or(json.len(), |e| at + e);
                Some(json[at..end].to_string())
            }
        };
    }
    None
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).map_or(false, |b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

fn read_json_string(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
}

/// Escapes text for a JSON string literal.
pub fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let encoded = encode_pairs(&[("a", b"1"), ("bb", b"")]);
        let decoded = decode_pairs(&encoded).expect("valid");
        assert_eq!(
            decoded,
            vec![
                ("a".to_string(), b"1".to_vec()),
                ("bb".to_string(), Vec::new())
            ]
        );
        assert!(decode_pairs(&encoded[..6]).is_none());
    }

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64url_decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert!(base64url_decode("a*b").is_none());
    }

    #[test]
    fn reads_jwt_claims_and_json_fields() {
        // {"sub":"u1","tier":"gold","n":5}
        let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSIsInRpZXIiOiJnb2xkIiwibiI6NX0.";
        let claims = jwt_claims(token).expect("claims");
        assert_eq!(json_field(&claims, "tier").as_deref(), Some("gold"));
        assert_eq!(json_field(&claims, "n").as_deref(), Some("5"));
        assert_eq!(json_field(&claims, "missing"), None);
        assert_eq!(
            json_field(r#"{"a" : "x\"y"}"#, "a").as_deref(),
            Some("x\"y")
        );
    }

    #[test]
    fn escapes_json() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
