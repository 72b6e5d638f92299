//! The one place errors become HTTP answers: `{"error": "..."}` with a
//! status that says whose fault it was.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    UriTooLong(String),
    /// 429 with the `Burst-RateLimit-*` or `RateLimit-*` headers.
    #[error("{message}")]
    RateLimited {
        message: String,
        headers: Vec<(&'static str, String)>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(e: impl ToString) -> Self {
        Self::BadRequest(e.to_string())
    }

    /// The same error, its message prefixed with `context`.
    pub fn within(self, context: &str) -> Self {
        let add = |m: String| format!("{context}: {m}");
        match self {
            Self::BadRequest(m) => Self::BadRequest(add(m)),
            Self::Unauthorized(m) => Self::Unauthorized(add(m)),
            Self::NotFound(m) => Self::NotFound(add(m)),
            Self::MethodNotAllowed(m) => Self::MethodNotAllowed(add(m)),
            Self::PayloadTooLarge(m) => Self::PayloadTooLarge(add(m)),
            Self::NotImplemented(m) => Self::NotImplemented(add(m)),
            Self::InsufficientStorage(m) => Self::InsufficientStorage(add(m)),
            Self::RequestTimeout(m) => Self::RequestTimeout(add(m)),
            Self::HeadersTooLarge(m) => Self::HeadersTooLarge(add(m)),
            Self::UriTooLong(m) => Self::UriTooLong(add(m)),
            Self::RateLimited { message, headers } => Self::RateLimited {
                message: add(message),
                headers,
            },
            Self::Unavailable(m) => Self::Unavailable(add(m)),
            Self::Internal(m) => Self::Internal(add(m)),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<qstash_store::StoreError> for ApiError {
    fn from(e: qstash_store::StoreError) -> Self {
        use qstash_store::StoreError as E;
        tracing::error!(error = %e, "store error");
        match e {
            E::Unavailable(_) | E::Closed => Self::Unavailable(format!(
                "storage unavailable, nothing was stored; try again: {e}"
            )),
            E::Full(_) => {
                Self::InsufficientStorage(format!("storage full, nothing was stored: {e}"))
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<qstash_engine::PlanError> for ApiError {
    fn from(e: qstash_engine::PlanError) -> Self {
        match e {
            qstash_engine::PlanError::UnknownUrlGroup(_) => Self::NotFound(e.to_string()),
            qstash_engine::PlanError::Denied(_) | qstash_engine::PlanError::Limit(_) => {
                Self::BadRequest(e.to_string())
            }
            qstash_engine::PlanError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(crate::views::ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if let Self::RateLimited { headers, .. } = self {
            for (name, value) in headers {
                if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, v);
                }
            }
        }
        response
    }
}
