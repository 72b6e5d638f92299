//! The QStash REST API v2 over axum: routes, auth, JSON shapes, errors.
//! Handlers parse and validate the request into domain values, hand them
//! to the engine or the store, and render the answer; nothing else.

mod auth;
mod error;
mod query;
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Users by API token.
    users: Arc<auth::Tokens>,
    pub config: ApiConfig,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, users: &[User], config: ApiConfig) -> Self {
        Self {
            engine,
            users: Arc::new(auth::Tokens::new(users)),
            config,
        }
    }
}

pub fn router(state: AppState) -> Router {
    routes::router(state)
}
