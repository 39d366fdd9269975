//! Bearer-token authentication for the API.

use crate::api_tokens::recognise;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

/// Lets a request through only with `Authorization: Bearer <token>`: the shared token (compared
/// in constant time) or a live person token (see [`crate::api_tokens`]). The handler finds who
/// called in the request's [`Caller`](crate::api_tokens::Caller) extension.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = presented else {
        return Err(ApiError::Unauthorized);
    };
    let engine = &state.engine;
    let now = engine.clock().now();
    let caller = recognise(
        engine.store().as_ref(),
        engine.config(),
        &state.api_token,
        token,
        now,
    )
    .await?
    .ok_or(ApiError::Unauthorized)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}
