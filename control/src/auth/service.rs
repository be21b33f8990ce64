//! Account rules (signup, verification, reset, login). See routes.rs.

use crate::error::ApiError;
use crate::state::AppState;
use crate::users::model::User;

/// Creates an already-verified user (admin bootstrap) with its default
/// project and server records.
pub fn create_verified_user(
    _state: &AppState,
    _email: &str,
    _password: &str,
    _is_admin: bool,
) -> Result<User, ApiError> {
    Err(ApiError::internal(
        "create_verified_user is not implemented yet",
    ))
}
