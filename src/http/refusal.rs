//! How the HTTP layer says no: one GraphQL-shaped JSON error with a
//! contract code, whatever was wrong, and never an echo of the input or a
//! Rust type's Debug text.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: Cow<'static, str>,
    /// The contract's code: BAD_USER_INPUT, or INTERNAL_SERVER_ERROR when
    /// keymeter, not the request, is at fault.
    code: &'static str,
    /// The connection cannot carry another request (its body was not read).
    close: bool,
}

impl Refusal {
    pub const fn new(status: StatusCode, message: &'static str) -> Self {
        Self {
            status,
            message: Cow::Borrowed(message),
            code: "BAD_USER_INPUT",
            close: false,
        }
    }

    /// A refusal whose message is made for the request: it must say what
    /// was wrong without echoing what was sent.
    pub fn owned(status: StatusCode, message: String) -> Self {
        Self {
            message: Cow::Owned(message),
            ..Self::new(status, "")
        }
    }

    /// 503: keymeter cannot decide now (its database is out of reach).
    pub const fn unavailable(message: &'static str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: Cow::Borrowed(message),
            code: "INTERNAL_SERVER_ERROR",
            close: false,
        }
    }

    /// A refusal after which the connection is closed: the body it came with
    /// was left unread, so the next bytes on it are not a request.
    pub const fn closing(status: StatusCode, message: &'static str) -> Self {
        Self {
            status,
            message: Cow::Borrowed(message),
            code: "BAD_USER_INPUT",
            close: true,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{
                "message": self.message,
                "extensions": { "code": self.code },
            }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub const NOT_FOUND: Refusal = Refusal::new(
    StatusCode::NOT_FOUND,
    "no such path: the API is POST /graphql",
);
pub const NOT_METRICS: Refusal = Refusal::new(
    StatusCode::NOT_FOUND,
    "no such path: this address serves GET /metrics only",
);
pub const METHOD_NOT_ALLOWED: Refusal = Refusal::new(
    StatusCode::METHOD_NOT_ALLOWED,
    "method not allowed: send GraphQL requests as POST /graphql",
);
/// For every route but `/graphql`: keymeter's pages, assets, health and
/// metrics are only ever read. (axum adds `Allow: GET,HEAD`.)
pub const GET_ONLY: Refusal = Refusal::new(
    StatusCode::METHOD_NOT_ALLOWED,
    "method not allowed: GET only",
);
pub const NO_SUCH_ASSET: Refusal = Refusal::new(StatusCode::NOT_FOUND, "no such asset");
pub const HEADERS_TOO_LARGE: Refusal = Refusal::closing(
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    "the request's headers are too large",
);

pub async fn not_found() -> Refusal {
    NOT_FOUND
}

pub async fn not_metrics() -> Refusal {
    NOT_METRICS
}

pub async fn method_not_allowed() -> Refusal {
    METHOD_NOT_ALLOWED
}

pub async fn post_only() -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: POST only",
    )
}

pub async fn get_only() -> Refusal {
    GET_ONLY
}
