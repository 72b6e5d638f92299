//! Who is calling: `Authorization: Bearer <token>` or `?qstash_token=`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use qstash_core::users::User;
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// The authenticated user of a request, put there by the admission
/// middleware (`routes/whole_body.rs`). Shared, not copied: every request
/// carries one.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<User>);

/// The user a request's headers (or `?qstash_token=`) authenticate.
pub fn caller(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
) -> Result<Arc<User>, ApiError> {
    let token = bearer(headers).or_else(|| query_token(query));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::Unauthorized(
            "missing credentials: send Authorization: Bearer <QSTASH_TOKEN>".into(),
        ));
    };
    state
        .users
        .find(&token)
        .cloned()
        .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))
}

/// The path prefix of workflow webhooks (`context.createWebhook`): the SDK
/// hands `{QSTASH_URL}/v2/workflows/hooks/{userId}/{runId}/{eventId}` to a
/// third party, which calls it without a token; the unguessable run and
/// event ids are the credential, and the path names the user.
pub const HOOKS_PREFIX: &str = "/v2/workflows/hooks/";

/// The user a request acts for: the token's, or, on a workflow webhook
/// path, the user the path names.
pub fn caller_or_hook(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Arc<User>, ApiError> {
    let Some(rest) = uri.path().strip_prefix(HOOKS_PREFIX) else {
        return caller(state, headers, uri.query());
    };
    let user_id = rest.split('/').next().unwrap_or_default();
    state
        .users
        .by_id(user_id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no webhook at {}", uri.path())))
}

/// Users by token. The map is keyed by the token's SipHash under a key
/// drawn at start, so the lookup's timing depends on a hash the caller
/// cannot predict, let alone steer byte by byte; the token itself is then
/// compared in constant time. (It was keyed by the token's SHA-256: the
/// same property, at more cost per request.)
#[derive(Debug, Default)]
pub struct Tokens {
    key: std::hash::RandomState,
    users: std::collections::HashMap<u64, Vec<Arc<User>>>,
}

impl Tokens {
    pub fn new(users: &[User]) -> Self {
        let mut tokens = Self::default();
        for user in users {
            let hash = tokens.hash(&user.token);
            tokens
                .users
                .entry(hash)
                .or_default()
                .push(Arc::new(user.clone()));
        }
        tokens
    }

    fn hash(&self, token: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(token.as_bytes())
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<User>> {
        self.users.values().flatten().find(|u| u.id == id)
    }

    /// The user whose token is `token`; never one with an empty token.
    pub fn find(&self, token: &str) -> Option<&Arc<User>> {
        if token.is_empty() {
            return None;
        }
        self.users
            .get(&self.hash(token))?
            .iter()
            .find(|user| bool::from(user.token.as_bytes().ct_eq(token.as_bytes())))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_whole_and_never_empty() {
        let tokens = Tokens::new(&[
            User::new("a", "secret-a", "c", "n"),
            User::new("blank", "", "c", "n"),
        ]);
        assert_eq!(tokens.find("secret-a").map(|u| u.id.as_str()), Some("a"));
        for bad in ["", "secret-", "secret-a ", "secret-b"] {
            assert!(tokens.find(bad).is_none(), "{bad:?} must not authenticate");
        }
    }

    #[test]
    fn an_empty_or_bare_query_token_is_no_token() {
        assert_eq!(query_token(Some("qstash_token=")), Some(String::new()));
        assert_eq!(query_token(Some("qstash_token")), Some(String::new()));
    }
}
