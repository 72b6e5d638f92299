//! The QStash REST API v2 over axum: routes, auth, JSON shapes, errors.
//! Handlers parse and validate the request into domain values, hand them
//! to the engine or the store, and render the answer; nothing else.

mod auth;
mod client_ip;
mod error;
pub mod observe;
mod query;
pub mod rate_limit;
mod routes;
mod views;

use std::sync::Arc;

use axum::Router;
use qstash_core::users::User;
use qstash_engine::Engine;

pub use error::ApiError;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted; larger ones answer 413.
    pub max_body_bytes: usize,
    /// Most items in one `POST /v2/batch`.
    pub max_batch_items: usize,
    /// Most endpoints in one URL group.
    pub max_url_group_endpoints: usize,
    /// Per-user API rate limits, by user id (users not listed have none).
    pub rate_limits: Vec<(String, rate_limit::UserRateLimits)>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the caller.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `api/llm` is delivered to `<llm_base_url>/v1/chat/completions`.
    pub llm_base_url: String,
    /// Time a client has to send a request's body (408 past it).
    pub body_read_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_items: 1000,
            max_url_group_endpoints: 1000,
            rate_limits: Vec::new(),
            trusted_proxies: Vec::new(),
            llm_base_url: "https://api.openai.com".into(),
            body_read_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// What every handler shares. axum clones the state for each extractor
/// and middleware of every request, so it is one `Arc`: a clone is one
/// atomic increment (four `Arc`s cost four, and their drops were about 1.5%
/// of the server's CPU per publish, issue 17).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub engine: Arc<Engine>,
    /// Users by API token.
    users: auth::Tokens,
    limits: rate_limit::RateLimits,
    pub config: ApiConfig,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(engine: Arc<Engine>, users: &[User], config: ApiConfig) -> Self {
        Self(Arc::new(Shared {
            engine,
            users: auth::Tokens::new(users),
            limits: rate_limit::RateLimits::new(config.rate_limits.clone()),
            config,
        }))
    }
}

pub fn router(state: AppState) -> Router {
    routes::router(state)
}
