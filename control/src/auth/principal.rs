//! Who is calling. The `authenticate` middleware resolves the
//! `Authorization` header once per request (JWT access token or `hdy_` API
//! token) into an [`AuthState`] kept in the request extensions; handlers
//! take [`Authed<P>`], which turns that state into a [`Principal`] holding
//! permission `P`, or the right 401/403.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::cache;
use super::permission::{grants, Permission};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::model::ApiToken;
use crate::users::model::User;

/// The credential a request was authenticated with.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A JWT access token from login or refresh.
    Session { family: String },
    /// A long-lived API token.
    ApiToken(Box<ApiToken>),
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
    /// The realm chosen with `?realm_id=`, if any.
    pub realm_id: Option<String>,
    pub ip: IpAddr,
    /// `users.me` data as JSON text, built on first use: a cached
    /// principal (`auth::cache`) answers many requests with it, and it
    /// depends on nothing but the fields above.
    pub me_json: OnceLock<Vec<u8>>,
}

impl Principal {
    pub fn user_id(&self) -> &str {
        &self.user.id
    }

    pub fn token(&self) -> Option<&ApiToken> {
        match &self.credential {
            Credential::ApiToken(t) => Some(t),
            Credential::Session { .. } => None,
        }
    }

    /// Whether this caller may use permission `path`.
    pub fn may(&self, path: &[&str]) -> bool {
        match &self.credential {
            Credential::Session { .. } => {
                // Admin leaves are for admins only, whatever the credential.
                path.first() != Some(&"admin") || self.user.is_admin
            }
            Credential::ApiToken(t) => {
                grants(&t.permissions, path)
                    && (path.first() != Some(&"admin") || self.user.is_admin)
            }
        }
    }

    /// A key that identifies the credential for per-credential budgets.
    pub fn rate_key(&self) -> String {
        match &self.credential {
            Credential::Session { family } => format!("s:{family}"),
            Credential::ApiToken(t) => format!("t:{}", t.id),
        }
    }
}

/// The outcome of resolving the request's credentials.
#[derive(Debug, Clone)]
pub enum AuthState {
    Anonymous,
    Authenticated(Arc<Principal>),
    Rejected(ApiError),
}

/// The raw credential in `Authorization`: `Bearer X` or a bare `hdy_…`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
        Some(value[7..].trim())
    } else if value.starts_with(crate::tokens::secret::PREFIX) {
        Some(value)
    } else {
        None
    }
}

/// `realm_id` from the query string, when given.
pub fn realm_from_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "realm_id")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Resolves the credentials of one request.
pub fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    ip: IpAddr,
) -> AuthState {
    let Some(raw) = headers.get(axum::http::header::AUTHORIZATION) else {
        return AuthState::Anonymous;
    };
    if raw.is_empty() {
        return AuthState::Anonymous;
    }
    let Some(token) = bearer(headers) else {
        return AuthState::Rejected(ApiError::Unauthorized {
            code: "INVALID_TOKEN",
            message: "unsupported Authorization scheme; use Bearer".into(),
        });
    };
    let realm_id = realm_from_query(query);
    if token.starts_with(crate::tokens::secret::PREFIX) {
        return resolve_api_token(state, token, realm_id, ip);
    }
    match crate::auth::session::authenticate(state, token) {
        Ok((user, credential)) => AuthState::Authenticated(Arc::new(Principal {
            user,
            credential,
            realm_id,
            ip,
            me_json: OnceLock::new(),
        })),
        Err(err) => AuthState::Rejected(err),
    }
}

/// An `hdy_` token: from the principal cache when its records have not
/// changed, else from the store (and then cached).
fn resolve_api_token(
    state: &AppState,
    token: &str,
    realm_id: Option<String>,
    ip: IpAddr,
) -> AuthState {
    let key = cache::token_key(token);
    // Read before the records, so a write racing with this request leaves
    // the entry below already stale.
    let versions = cache::versions(&state.store);
    if let Some(p) = state
        .principals
        .get(&key, ip, realm_id.as_deref(), versions)
    {
        return AuthState::Authenticated(p);
    }
    match crate::tokens::service::authenticate(state, token, ip, realm_id.as_deref()) {
        Ok((user, credential)) => {
            let expires_at = match &credential {
                Credential::ApiToken(t) => {
                    t.expires_at.as_deref().and_then(crate::wire::parse_time)
                }
                Credential::Session { .. } => None,
            };
            let principal = Arc::new(Principal {
                user,
                credential,
                realm_id,
                ip,
                me_json: OnceLock::new(),
            });
            state
                .principals
                .put(key, principal.clone(), versions, expires_at);
            AuthState::Authenticated(principal)
        }
        Err(err) => AuthState::Rejected(err),
    }
}

/// An authenticated caller holding permission `P`.
pub struct Authed<P: Permission = super::permission::AnyCaller> {
    pub principal: Arc<Principal>,
    _perm: PhantomData<P>,
}

impl<P: Permission> std::ops::Deref for Authed<P> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Authed<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Authenticated(principal)) => {
                if !principal.may(P::PATH) {
                    return Err(ApiError::forbidden(
                        "INSUFFICIENT_PERMISSIONS",
                        format!("this credential lacks the permission {}", P::PATH.join(".")),
                    ));
                }
                Ok(Authed {
                    principal: principal.clone(),
                    _perm: PhantomData,
                })
            }
            Some(AuthState::Rejected(err)) => Err(err.clone()),
            Some(AuthState::Anonymous) | None => Err(ApiError::Unauthorized {
                code: "UNAUTHORIZED",
                message: "authentication required".into(),
            }),
        }
    }
}

/// The caller if authenticated, for routes that also serve anonymous callers.
pub struct MaybeAuthed(pub Option<Arc<Principal>>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Authenticated(p)) => Ok(MaybeAuthed(Some(p.clone()))),
            Some(AuthState::Rejected(err)) => Err(err.clone()),
            _ => Ok(MaybeAuthed(None)),
        }
    }
}

/// The client's address, as the connection reports it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| ApiError::internal("client address missing"))
    }
}
