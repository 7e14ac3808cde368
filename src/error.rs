//! The one error type handlers return, with a stable mapping to status codes and small JSON
//! bodies. Internals go to logs, never to the sender.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a sender is asked to wait before retrying when Kafka cannot take a record.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed or wrong signature. Deliberately says nothing more.
    #[error("unauthorized")]
    Unauthorized,
    #[error("unknown application")]
    UnknownApp,
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The body did not arrive before the request's deadline.
    #[error("body not received in time")]
    BodyTimeout,
    /// The body arrived more slowly than `body_min_rate`.
    #[error("body arriving too slowly")]
    BodyTooSlow,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Kafka did not acknowledge in time, refused, or the gateway is shedding load.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnknownApp => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout | ApiError::BodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The metrics outcome label for this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::UnknownApp
            | ApiError::BadRequest(_)
            | ApiError::BodyTimeout
            | ApiError::BodyTooSlow => "rejected",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal => "error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Unauthorized => json!({"error": "unauthorized"}),
            ApiError::UnknownApp => json!({"error": "unknown application"}),
            ApiError::TooLarge { limit } => {
                json!({"error": "payload too large", "limit_bytes": limit})
            }
            ApiError::BodyTimeout => json!({"error": "request body not received in time"}),
            ApiError::BodyTooSlow => json!({"error": "request body arrived too slowly"}),
            ApiError::BadRequest(why) => json!({"error": "bad request", "detail": why}),
            ApiError::Unavailable(_) => json!({"error": "temporarily unavailable, retry later"}),
            ApiError::Internal => json!({"error": "internal error"}),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
