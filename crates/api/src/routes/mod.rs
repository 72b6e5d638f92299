//! The route table.

mod keys;
mod messages;
mod publish;
mod schedules;

use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::auth::authenticate;
use crate::{ApiError, AppState};

pub fn router(state: AppState) -> Router {
    let v2 = Router::new()
        .route("/v2/publish/{*destination}", post(publish::publish))
        .route("/v2/batch", post(publish::batch))
        .route("/v2/messages", delete(messages::cancel_many))
        .route(
            "/v2/messages/{id}",
            get(messages::get).delete(messages::cancel_one),
        )
        .route("/v2/keys", get(keys::get))
        .route("/v2/keys/rotate", post(keys::rotate))
        .route("/v2/schedules", get(schedules::list))
        .route(
            "/v2/schedules/{*rest}",
            post(schedules::post)
                .get(schedules::get)
                .delete(schedules::delete)
                .patch(schedules::patch),
        )
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    v2.fallback(not_found).with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}
