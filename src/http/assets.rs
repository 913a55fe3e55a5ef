//! The files keymeter's pages load, built into the binary with
//! `include_bytes!`: a fresh clone serves the dashboard and GraphiQL with
//! no build step, no Node and no network.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

struct Asset {
    path: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, body: include_bytes!(concat!("assets/", $path)) }),*]
    };
}

/// Every file under `/assets/`. The dashboard is plain ES modules: what is
/// here is exactly what runs.
const ASSETS: &[Asset] = assets![
    "app.css",
    "app.js",
    "api.js",
    "queries.js",
    "dom.js",
    "auth.js",
    "account.js",
    "keys.js",
    "usage.js",
    "secret.js",
    "chart.js",
    "format.js",
    "graphiql.css",
    "graphiql.js",
    "vendor/graphiql-3.8.3.min.css",
    "vendor/graphiql-3.8.3.min.js",
    "vendor/react-18.3.1.production.min.js",
    "vendor/react-dom-18.3.1.production.min.js",
];

/// `GET /assets/{path}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Vendored files carry their version in their name and never change;
    // our own may change with any release, so browsers check them again.
    let cache = if path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_no_third_party_url() {
        for asset in ASSETS {
            assert_ne!(content_type(asset.path), "application/octet-stream");
            if !asset.path.starts_with("vendor/") {
                let text = std::str::from_utf8(asset.body).unwrap();
                assert!(
                    !text.contains("https://"),
                    "{} loads from elsewhere",
                    asset.path
                );
            }
        }
    }
}
