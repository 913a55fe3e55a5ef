//! keymeter's own pages: the dashboard at `/`, which is also the page
//! sign-in providers send the browser back to (`/auth/callback`): one page,
//! so a first sign-in lands on the dashboard with its new key's secret.

use axum::response::{Html, IntoResponse};

const DASHBOARD: &str = include_str!("assets/index.html");

/// The dashboard (signed out: sign up, log in, the providers).
pub async fn index() -> impl IntoResponse {
    Html(DASHBOARD)
}

/// `{public URL}/auth/callback`: the dashboard, which completes the sign-in
/// the provider sent the browser back from.
pub async fn callback() -> impl IntoResponse {
    Html(DASHBOARD)
}

/// `{public URL}/invitations/accept#<token>`: the dashboard, which accepts
/// the invitation (the token stays in the fragment: never sent here).
pub async fn accept_invitation() -> impl IntoResponse {
    Html(DASHBOARD)
}
