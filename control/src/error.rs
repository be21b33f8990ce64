//! The one place where failures become HTTP responses.
//!
//! Services return [`ApiError`]; handlers propagate it with `?`; its
//! `IntoResponse` writes the contract's error body
//! `{statusCode, message, code, details?}` with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::store::StoreError;

/// Field-level problems found while validating a request, keyed by field path.
pub type FieldErrors = Map<String, Value>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation {
        message: String,
        details: FieldErrors,
    },
    /// A well-formed request the service cannot act on (a spent or
    /// expired email token, an unsupported mode).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    PreconditionFailed { code: &'static str, message: String },
    #[error("{message}")]
    PreconditionRequired { message: String },
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body is not of the media type the operation takes.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A validation error about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut details = FieldErrors::new();
        details.insert(field.to_string(), Value::String(message.clone()));
        ApiError::Validation {
            message: format!("{field}: {message}"),
            details,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code: "UNAUTHORIZED",
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired { .. } => StatusCode::PRECONDITION_REQUIRED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "VALIDATION_ERROR",
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::PreconditionFailed { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::NotFound(_) | ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::PreconditionRequired { .. } => "PRECONDITION_REQUIRED",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Api(api) => *api,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<runtime::RuntimeError> for ApiError {
    fn from(err: runtime::RuntimeError) -> Self {
        use runtime::RuntimeError as R;
        match err {
            R::NotFound(_) => ApiError::NotFound("container"),
            R::SnapshotNotFound(_) => ApiError::NotFound("snapshot"),
            R::AlreadyExists(id) => ApiError::conflict(
                "CONTAINER_ALREADY_EXISTS",
                format!("container {id} already exists on this server"),
            ),
            R::AlreadyRunning(_) => ApiError::conflict(
                "CONTAINER_ALREADY_RUNNING",
                "the container is already running",
            ),
            R::NotRunning(_) => {
                ApiError::conflict("CONTAINER_NOT_RUNNING", "the container is not running")
            }
            R::Paused(_) => ApiError::conflict("CONTAINER_PAUSED", "the container is paused"),
            R::InvalidSpec(message) => ApiError::bad_request("INVALID_CONTAINER_SPEC", message),
            R::ImageNotFound(image) => ApiError::field(
                "container_image",
                format!("unknown image {image:?}; known: busybox, debian/11, debian/12, debian/13"),
            ),
            R::AddressesExhausted(_) => ApiError::Unavailable {
                code: "SERVER_CAPACITY_EXHAUSTED",
                message: "no free container address left on this server".into(),
            },
            R::KvmUnavailable => ApiError::Unavailable {
                code: "KVM_UNAVAILABLE",
                message: "this server has no /dev/kvm; KVM passthrough is unavailable".into(),
            },
            other => ApiError::Internal(format!("runtime: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Internal details go to the log, never to the client.
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "statusCode": status.as_u16(),
            "message": message,
            "code": self.code(),
        });
        if let ApiError::Validation { details, .. } = &self {
            body["details"] = Value::Object(details.clone());
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
