//! The OpenAPI document at `/api/v1/openapi.json` and the reference page at `/docs`.

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
