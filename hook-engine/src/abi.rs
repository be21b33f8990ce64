//! The proxy-wasm ABI v0.2.1 vocabulary: status codes, enum values and the wire format of
//! header maps. Pure data and functions, so the encoding is unit-tested without Wasm.

/// Status codes returned by every host function (`proxy_wasm::types::Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Header and trailer maps a host function can address (`MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

impl MapType {
    /// Maps the ABI number; gRPC and http-call maps are not ours to serve.
    pub fn from_abi(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::RequestHeaders),
            1 => Some(Self::RequestTrailers),
            2 => Some(Self::ResponseHeaders),
            3 => Some(Self::ResponseTrailers),
            _ => None,
        }
    }
}

/// Buffers a host function can address (`BufferType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    RequestBody,
    ResponseBody,
    VmConfiguration,
    PluginConfiguration,
}

impl BufferType {
    pub fn from_abi(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::RequestBody),
            1 => Some(Self::ResponseBody),
            6 => Some(Self::VmConfiguration),
            7 => Some(Self::PluginConfiguration),
            _ => None,
        }
    }
}

/// Log levels of `proxy_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    pub fn from_abi(value: i32) -> Self {
        match value {
            i32::MIN..=0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            _ => Self::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// What a stream callback returns: `0` continue, `1` pause (StopIteration).
pub const ACTION_CONTINUE: i32 = 0;

/// Metric kinds of `proxy_define_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn from_abi(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Counter),
            1 => Some(Self::Gauge),
            2 => Some(Self::Histogram),
            _ => None,
        }
    }
}

/// A header as the engine stores it: lowercase name, raw value bytes.
pub type Header = (String, Vec<u8>);

/// Encodes pairs the way proxy-wasm guests decode them: `u32` count, then per pair the
/// key and value lengths (`u32` little endian), then each key and value NUL-terminated.
pub fn encode_pairs<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut out = Vec::new();
    encode_pairs_into(pairs, &mut out);
    out
}

/// [`encode_pairs`], appended to `out` (a buffer kept between calls allocates
/// nothing once it has grown).
pub fn encode_pairs_into<'a, I>(pairs: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut count = 0u32;
    let mut size = 4;
    for (k, v) in pairs.clone() {
        count += 1;
        size += 8 + k.len() + v.len() + 2;
    }
    out.reserve(size);
    out.extend_from_slice(&count.to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
}

/// Encodes a header list (see [`encode_pairs`]).
pub fn encode_headers(headers: &[Header]) -> Vec<u8> {
    encode_pairs(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
}

/// Decodes the pair encoding; `None` when lengths point outside the buffer.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    let sizes_end = 4usize.checked_add(count.checked_mul(8)?)?;
    if sizes_end > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut cursor = sizes_end;
    for i in 0..count {
        let key_len = read_u32(bytes, 4 + i * 8)? as usize;
        let value_len = read_u32(bytes, 8 + i * 8)? as usize;
        let key = bytes.get(cursor..cursor.checked_add(key_len)?)?.to_vec();
        cursor += key_len + 1;
        let value = bytes.get(cursor..cursor.checked_add(value_len)?)?.to_vec();
        cursor += value_len + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

/// Why a header a guest wants to write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRejection {
    NameNotUtf8,
    InvalidName,
    InvalidValue,
}

/// A header a guest writes, checked (a token name, optionally with one leading `:`; a
/// value without CR, LF or NUL): the name is lowercased in place and the value moved,
/// so a valid header costs no further allocation.
pub fn checked_header_owned(name: Vec<u8>, value: Vec<u8>) -> Result<Header, HeaderRejection> {
    if let Some(why) = header_rejection(&name, &value) {
        return Err(why);
    }
    lowercase_checked(name, value).ok_or(HeaderRejection::NameNotUtf8)
}

/// A header [`header_rejection`] accepted, its name lowercased in place (a token
/// name is ASCII, so `None` only for a name that was never checked).
pub(crate) fn lowercase_checked(name: Vec<u8>, value: Vec<u8>) -> Option<Header> {
    let mut name = String::from_utf8(name).ok()?;
    name.make_ascii_lowercase();
    Some((name, value))
}

/// Why a header may not be written, or `None` when it may.
pub fn header_rejection(name: &[u8], value: &[u8]) -> Option<HeaderRejection> {
    check_header(name, value).err()
}

/// Checks a header a guest writes as [`header_rejection`] does, in one pass over
/// each of name and value; `Ok(true)` when the (valid) name has uppercase letters.
pub(crate) fn check_header(name: &[u8], value: &[u8]) -> Result<bool, HeaderRejection> {
    let bare = name.strip_prefix(b":").unwrap_or(name);
    let class = bare
        .iter()
        .fold(0, |class, b| class | NAME_CLASS[*b as usize]);
    if bare.is_empty() || class & NOT_TOKEN != 0 {
        // Token bytes are ASCII: a name that is not UTF-8 fails here, and says so.
        if std::str::from_utf8(name).is_err() {
            return Err(HeaderRejection::NameNotUtf8);
        }
        return Err(HeaderRejection::InvalidName);
    }
    if !value_allowed(value) {
        return Err(HeaderRejection::InvalidValue);
    }
    Ok(class & UPPERCASE != 0)
}

/// Whether `value` holds no CR, LF or NUL: eight bytes at a time, as values are
/// checked on every header a guest writes.
fn value_allowed(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = value.chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        found |= zero_byte(x) | zero_byte(x ^ (ONES * 0x0d)) | zero_byte(x ^ (ONES * 0x0a));
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0, |bad, b| bad | u8::from(matches!(b, b'\r' | b'\n' | 0)));
    found == 0 && tail == 0
}

/// `n` in decimal digits, written into `out` without allocating.
pub(crate) fn decimal(mut n: u32, out: &mut [u8; 10]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &out[at..]
}

/// [`NAME_CLASS`] flags: a byte no header name may hold, an uppercase letter.
const NOT_TOKEN: u8 = 1;
const UPPERCASE: u8 = 2;

/// RFC 9110 `tchar`s (and which of them are uppercase), one entry per byte value:
/// every header a guest writes is checked byte by byte, and its name lowercased
/// only when this says it must be.
const NAME_CLASS: [u8; 256] = {
    let mut table = [NOT_TOKEN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            table[b] = if c.is_ascii_uppercase() { UPPERCASE } else { 0 };
        }
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let headers = vec![
            (":path".to_string(), b"/a".to_vec()),
            ("x-empty".to_string(), Vec::new()),
        ];
        let encoded = encode_headers(&headers);
        let decoded = decode_pairs(&encoded).expect("decodes");
        assert_eq!(decoded[0], (b":path".to_vec(), b"/a".to_vec()));
        assert_eq!(decoded[1], (b"x-empty".to_vec(), Vec::new()));
    }

    #[test]
    fn truncated_pairs_are_rejected() {
        let encoded = encode_headers(&[("k".to_string(), b"value".to_vec())]);
        assert!(decode_pairs(&encoded[..encoded.len() - 4]).is_none());
        assert!(decode_pairs(&[9, 0, 0, 0]).is_none());
    }

    #[test]
    fn header_checks_refuse_smuggling() {
        assert_eq!(
            checked_header_owned(b"X-A".to_vec(), b"v".to_vec()).map(|h| h.0),
            Ok("x-a".to_string())
        );
        assert_eq!(
            checked_header_owned(b"x".to_vec(), b"a\r\nb".to_vec()),
            Err(HeaderRejection::InvalidValue)
        );
        assert_eq!(
            checked_header_owned(b"bad name".to_vec(), b"v".to_vec()),
            Err(HeaderRejection::InvalidName)
        );
        assert_eq!(
            checked_header_owned(vec![0xff], b"v".to_vec()),
            Err(HeaderRejection::NameNotUtf8)
        );
        assert!(checked_header_owned(b":path".to_vec(), b"/x".to_vec()).is_ok());
    }

    #[test]
    fn values_with_cr_lf_or_nul_are_refused_wherever_the_byte_is() {
        for len in 0..40 {
            let clean = vec![b'v'; len];
            assert_eq!(check_header(b"x", &clean), Ok(false), "{len}");
            for at in 0..len {
                for bad in [b'\r', b'\n', 0] {
                    let mut value = clean.clone();
                    value[at] = bad;
                    assert_eq!(
                        check_header(b"x", &value),
                        Err(HeaderRejection::InvalidValue),
                        "{len} {at} {bad}"
                    );
                }
            }
        }
        // Bytes next to the refused ones, and high bytes, pass.
        let near: Vec<u8> = [0x01, 0x09, 0x0b, 0x0c, 0x0e, 0x80, 0x8a, 0x8d, 0xff].repeat(3);
        assert_eq!(check_header(b"x", &near), Ok(false));
    }

    #[test]
    fn names_say_whether_they_need_lowercasing() {
        assert_eq!(check_header(b"x-hook", b""), Ok(false));
        assert_eq!(check_header(b"X-Hook", b""), Ok(true));
        assert_eq!(check_header(b":path", b"/"), Ok(false));
        assert_eq!(check_header(b":", b""), Err(HeaderRejection::InvalidName));
        assert_eq!(check_header(b"a:b", b""), Err(HeaderRejection::InvalidName));
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(check_header(&[b], b"").is_ok(), token, "{b}");
        }
    }
}
