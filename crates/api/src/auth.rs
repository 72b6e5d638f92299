//! Who is calling: `Authorization: Bearer <token>` or `?qstash_token=`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use qstash_core::users::User;

use crate::{ApiError, AppState};

/// The authenticated user of a request, put there by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Caller(pub User);

pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(req.headers()).or_else(|| query_token(req.uri().query()));
    let Some(token) = token else {
        return Err(ApiError::Unauthorized(
            "missing credentials: send Authorization: Bearer <QSTASH_TOKEN>".into(),
        ));
    };
    let user = state
        .users
        .get(&token)
        .cloned()
        .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))?;
    req.extensions_mut().insert(Caller(user));
    Ok(next.run(req).await)
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "qstash_token")
        .map(|(_, v)| v.into_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("not authenticated".into()))
    }
}
