//! keymeter's own pages: `/` and the sign-in callback, and their one script,
//! all built into the binary (nothing loads from elsewhere).

use axum::http::header;
use axum::response::{Html, IntoResponse};

const INDEX: &str = include_str!("pages/index.html");
const CALLBACK: &str = include_str!("pages/callback.html");
const SCRIPT: &str = include_str!("pages/sign-in.js");

/// Who is signed in, or the providers to sign in with (until the dashboard).
pub async fn index() -> impl IntoResponse {
    Html(INDEX)
}

/// `{public URL}/auth/callback`: completes the sign-in the provider sent the browser back from.
pub async fn callback() -> impl IntoResponse {
    Html(CALLBACK)
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}
