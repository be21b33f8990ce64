//! The contract's wire conventions: the response envelope, JSON and query
//! extractors that turn every malformed input into a 400 naming the field,
//! ids, timestamps and pagination.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, FieldErrors};

/// The success envelope `{statusCode, message, data}`.
///
/// `data` is serialised once, straight to JSON text, when the envelope is
/// built: no intermediate `serde_json::Value` tree (the hot read paths spend
/// a visible share of their time there otherwise).
pub struct Envelope {
    status: StatusCode,
    message: &'static str,
    /// JSON text of the data.
    data: Vec<u8>,
    /// Top-level fields beside `data` that some lists carry (`metadata`,
    /// `truncated`), in insertion order.
    extra: Vec<(&'static str, Vec<u8>)>,
}

impl Envelope {
    pub fn new(status: StatusCode, message: &'static str, data: impl Serialize) -> Self {
        Envelope {
            status,
            message,
            data: raw(&data),
            extra: Vec::new(),
        }
    }

    /// Adds a top-level field beside `data`.
    pub fn with(mut self, key: &'static str, value: impl Serialize) -> Self {
        self.extra.push((key, raw(&value)));
        self
    }

    /// The response body, written in one pass into one buffer.
    fn body(&self) -> Vec<u8> {
        let extra: usize = self.extra.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(48 + self.message.len() + self.data.len() + extra);
        out.extend_from_slice(b"{\"statusCode\":");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b",\"message\":");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, self.message);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(&self.data);
        for (key, value) in &self.extra {
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        out
    }
}

/// JSON text of `value`; `null` for the (never expected) value serde cannot
/// represent, such as a map with non-string keys.
pub fn raw(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

/// `200` with `data`.
pub fn ok(message: &'static str, data: impl Serialize) -> Envelope {
    Envelope::new(StatusCode::OK, message, data)
}

/// `200` with `data` given as JSON text (from [`raw`]), for data a caller
/// keeps serialised.
pub fn ok_raw(message: &'static str, data: Vec<u8>) -> Envelope {
    Envelope {
        status: StatusCode::OK,
        message,
        data,
        extra: Vec::new(),
    }
}

/// `201` with `data`.
pub fn created(message: &'static str, data: impl Serialize) -> Envelope {
    Envelope::new(StatusCode::CREATED, message, data)
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let body = self.body();
        (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

/// Parses a JSON body; any failure (syntax, type, missing or unknown field,
/// wrong content type, size) is a 400 `VALIDATION_ERROR` naming the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(_) => return Err(ApiError::PayloadTooLarge),
        };
        parse_json(&bytes).map(ApiJson)
    }
}

/// Decodes JSON with the failing field's path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(slice);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // A syntax error is about the body as a whole, wherever it stopped.
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field("body", "malformed JSON");
        }
        let field = if path == "." {
            unknown_field_name(&inner.to_string()).unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        ApiError::field(&field, strip_position(&inner.to_string()))
    })
}

/// serde reports a missing or unknown field at the parent's path; the
/// field's own name is in the message.
fn unknown_field_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Parses the query string; failures are a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(query);
        de.map(ApiQuery)
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // Query values arrive as strings; a JSON object of strings lets the
    // target types parse numbers and booleans with `crate::wire::lenient`.
    let mut map = serde_json::Map::new();
    for (k, v) in form_pairs(query) {
        map.insert(k, Value::String(v));
    }
    let value = Value::Object(map);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        let field = if path == "." {
            unknown_field_name(&inner).unwrap_or_else(|| "query".to_string())
        } else {
            path
        };
        ApiError::field(&field, inner)
    })
}

pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
            {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Serde helpers for query parameters, which always arrive as strings.
pub mod lenient {
    use serde::{Deserialize, Deserializer};

    /// An optional number given as a string.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("must be a non-negative integer")),
        }
    }

    /// An optional boolean given as `true`/`false`.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw.as_deref() {
            None | Some("") => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(_) => Err(serde::de::Error::custom("must be true or false")),
        }
    }
}

/// The query of a sortable, paginated list.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SortedPageQuery {
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub page: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub limit: Option<u64>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    /// Accepted because the SDK may send it on any call; these lists are not
    /// narrowed by realm.
    pub realm_id: Option<String>,
}

/// Sorts by one of `allowed` fields of the serialized records; `desc` by default.
pub fn sort_values(
    items: &mut [Value],
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    allowed: &[&str],
    default: &str,
) -> Result<(), ApiError> {
    let key = sort_by.unwrap_or(default);
    if !allowed.contains(&key) {
        return Err(ApiError::field(
            "sort_by",
            format!("must be one of {}", allowed.join(", ")),
        ));
    }
    let desc = match sort_order.unwrap_or("desc") {
        "asc" => false,
        "desc" => true,
        _ => return Err(ApiError::field("sort_order", "must be asc or desc")),
    };
    items.sort_by(|a, b| {
        let (x, y) = (&a[key], &b[key]);
        let ord = match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            // Names sort the way people read them: case does not matter.
            _ => {
                let (p, q) = (
                    x.as_str().unwrap_or_default(),
                    y.as_str().unwrap_or_default(),
                );
                p.to_lowercase()
                    .cmp(&q.to_lowercase())
                    .then_with(|| p.cmp(q))
            }
        };
        if desc {
            ord.reverse()
        } else {
            ord
        }
    });
    Ok(())
}

/// `page`/`limit` pagination as most lists use it.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: u64,
    pub limit: u64,
}

impl PageRequest {
    pub const MAX_LIMIT: u64 = 100;

    /// Validates the optional query values (page ≥ 1, 1 ≤ limit ≤ 100).
    pub fn from_query(
        page: Option<u64>,
        limit: Option<u64>,
        default_limit: u64,
    ) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(default_limit);
        if page == 0 {
            return Err(ApiError::field("page", "must be at least 1"));
        }
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(ApiError::field("limit", "must be between 1 and 100"));
        }
        Ok(PageRequest { page, limit })
    }

    /// The slice of `items` for this page.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        let start = ((self.page - 1) * self.limit) as usize;
        items
            .into_iter()
            .skip(start)
            .take(self.limit as usize)
            .collect()
    }
}

/// The `pagination` object: `{total, page, limit, totalPages}`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, utoipa::ToSchema)]
pub struct Pagination {
    pub total: u64,
    pub page: u64,
    pub limit: u64,
    #[serde(rename = "totalPages")]
    pub total_pages: u64,
}

impl Pagination {
    pub fn new(req: PageRequest, total: u64) -> Self {
        Pagination {
            total,
            page: req.page,
            limit: req.limit,
            total_pages: total.div_ceil(req.limit),
        }
    }
}

/// A new 24-hex id laid out like a MongoDB ObjectId: 4 bytes of seconds, 5
/// random bytes fixed per process, 3 bytes of a counter. Ids therefore sort by
/// creation time, and within one process also by creation order inside a
/// second, which lists ordered "by id" rely on.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut b = [0u8; 5];
        rand::thread_rng().fill_bytes(&mut b);
        b
    });
    let counter = COUNTER
        .get_or_init(|| AtomicU32::new(rand::thread_rng().next_u32() & 0x7f_ffff))
        .fetch_add(1, Ordering::Relaxed);
    let secs = time::OffsetDateTime::now_utc().unix_timestamp() as u32;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(process);
    bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
    hex::encode(bytes)
}

/// Checks a path or body id is 24 lowercase hex.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be a 24-character lowercase hex id",
        ))
    }
}

pub fn is_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Now, as RFC 3339 UTC with millisecond precision.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Collects field errors so one response names every bad field.
#[derive(Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_insert_with(|| Value::String(message.into()));
    }

    /// Length in characters within `min..=max`.
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        if n < min || n > max {
            self.fail(
                field,
                format!("length must be between {min} and {max} characters"),
            );
        }
        self
    }

    pub fn check(&mut self, field: &str, ok: bool, message: &str) -> &mut Self {
        if !ok {
            self.fail(field, message);
        }
        self
    }

    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let errors = std::mem::take(&mut self.errors);
        let message = errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("invalid")))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ApiError::Validation {
            message,
            details: errors,
        })
    }
}

/// Characters allowed by patterns like `^[a-zA-Z0-9_-]+$`.
pub fn is_slug(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b))
}

/// A plausible email address: one `@`, non-empty local part, a dotted
/// domain, no spaces. Deliverability is proven by the verification email.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: Option<u32>,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation { details, .. } => details.keys().next().cloned().unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn names_the_field_with_the_wrong_type() {
        let err = parse_json::<Body>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(field_of(err), "count");
    }

    #[test]
    fn names_missing_and_unknown_fields() {
        assert_eq!(field_of(parse_json::<Body>(br#"{}"#).unwrap_err()), "name");
        let err = parse_json::<Body>(br#"{"name":"a","zzz":1}"#).unwrap_err();
        assert_eq!(field_of(err), "zzz");
    }

    #[test]
    fn malformed_json_is_a_validation_error() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\":").unwrap_err(),
            ApiError::Validation { .. }
        ));
    }

    #[test]
    fn ids_are_24_lowercase_hex_and_unique() {
        let a = new_id();
        let b = new_id();
        assert!(is_id(&a));
        assert_ne!(a, b);
        assert!(a < b, "ids made in order sort in order");
        assert!(!is_id("ABCDEFABCDEFABCDEFABCDEF"));
        assert!(!is_id("abc"));
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
